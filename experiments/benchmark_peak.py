"""What this CPU's convolutions reach per precision, and what a graph's convolutions cost.

    python experiments/benchmark_peak.py                  # 256 -> 256 3x3 on 64x128, 10 repeats
    python experiments/benchmark_peak.py --gflop          # also DeepLab-101's GFLOP at 512x1024

One large 3x3 convolution (MKL-DNN subgraph fusion on, as the fast path runs) is timed in
float32, bfloat16 (MXNet's AMP, only where the CPU has native BF16: else the row says why)
and INT8 (accel.runtime.quantize, calibrated on the input itself), the precisions
interleaved repeat by repeat so that machine noise hits all of them; --gflop counts a
graph's convolution and transposed-convolution work (2 FLOP per multiply-add) from its
inferred shapes: the denominators of a "fraction of peak" (accel.bench.peak).
"""
import argparse
import sys
from typing import Optional, Sequence

from accel.cli import run
from accel.cli.flags import add_debug_flag, positive_int


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Time the convolution per precision; the table goes to standard output."""
    # Imported here, after run() has imported MXNET_VERSION's mxnet.
    from accel.bench.peak import PRECISIONS, conv_gflop, conv_peaks, peak_table

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--channels", type=positive_int, default=256)
    parser.add_argument("--size", type=positive_int, nargs=2, default=[64, 128],
                        metavar=("H", "W"))
    parser.add_argument("--repeats", type=positive_int, default=10)
    parser.add_argument("--gflop", action="store_true",
                        help="also print DeepLab-101's convolution GFLOP at 512x1024")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    results = conv_peaks(args.precisions, args.channels, tuple(args.size), args.repeats)
    text = peak_table(results, args.channels, tuple(args.size))
    if args.gflop:
        from accel.symbols.deeplab import SCORES, deeplab_symbol

        sym = deeplab_symbol("deeplab_resnet_v1_101", 19).get_internals()[SCORES]
        text += ("\nDeepLab-101 at 512x1024: %.1f GFLOP of convolution"
                 % conv_gflop(sym, {"data": (1, 3, 512, 1024)}))
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    run(main)
