"""Speed of the compiled label math against its NumPy fallback, and of the training loader.

    python experiments/benchmark_cython.py [--repeat 20] [--data sample_data/camvid]

Prints one table measured in this run: milliseconds per call for each operation on a
Cityscapes-size (1024 x 2048) label map, NumPy vs Cython, and the speed-up; then the
prefetching loader's throughput on the CamVid sample clip (training samples and frames
per second), to compare with the training iteration rate (accel.bench.labels).
"""
import argparse
import os
import sys
from typing import Optional, Sequence

from accel.cli import REPO_ROOT, run
from accel.cli.flags import add_debug_flag, positive_int


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Measure; the table goes to standard output."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=positive_int, default=20,
                        help="timed calls per operation")
    parser.add_argument("--data", default=os.path.join(REPO_ROOT, "sample_data", "camvid"),
                        help="CamVid root (SegNet layout) for the loader benchmark")
    parser.add_argument("--key-interval", type=positive_int, default=5)
    parser.add_argument("--batches", type=positive_int, default=60)
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    from accel.bench.labels import label_math_report

    sys.stdout.write(label_math_report(args.repeat, args.data, args.key_interval,
                                       args.batches) + "\n")
    return 0


if __name__ == "__main__":
    run(main, mxnet="never")
