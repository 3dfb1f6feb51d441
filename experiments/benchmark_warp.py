"""Time the fused flow warp against GridGenerator + BilinearSampler; print a Markdown table.

    python experiments/benchmark_warp.py [--sizes 1x2048x64x128 1x2048x32x64] [--repeat 5]

Runs on the CPU, and on GPU 0 too when MXNet has a GPU and CuPy is installed. Both
operators are timed in the same run, through bound executors, forward alone and forward
plus backward; the ratio is built-in time / fused time (above 1: fused is faster).
Measurements: accel.bench.warp.
"""
import argparse
import sys
from typing import Optional, Sequence, Tuple

from accel.cli import run
from accel.cli.flags import add_debug_flag, positive_int


def feature_shape(text: str) -> Tuple[int, ...]:
    """'1x2048x64x128' -> (1, 2048, 64, 128)."""
    try:
        shape = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"feature size must be NxCxHxW, got '{text}'")
    return shape


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Time both warps; the table goes to standard output."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=feature_shape,
                        default=[(1, 2048, 64, 128), (1, 2048, 32, 64)],
                        help="feature sizes NxCxHxW (default: res5 of 1024x2048 and 512x1024)")
    parser.add_argument("--repeat", type=positive_int, default=5,
                        help="timed runs per measurement")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    # Imported here, after run() has imported MXNET_VERSION's mxnet.
    from accel.bench.warp import warp_table

    sys.stdout.write(warp_table(args.sizes, args.repeat) + "\n")
    return 0


if __name__ == "__main__":
    run(main)
