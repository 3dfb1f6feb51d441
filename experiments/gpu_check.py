"""Check the PyTorch runtime on a GPU machine in one run; report.md and report.json.

    python experiments/gpu_check.py --out DIR              # GPU 0, 1024x2048 (about 5 min)
    python experiments/gpu_check.py --out DIR --dry-run    # the same on the CPU, small

Runs where the lent machines are: PyTorch, NumPy, OpenCV, PyYAML and CuPy only (no MXNet,
no compiler, no init.sh; `PYTHONPATH=lib:. python experiments/gpu_check.py ...`). Checks,
in order, logging progress: the CUDA warp (operator_cxx/, through CuPy) and the deformable
convolution against the CPU reference; the oracle fixtures on the GPU; per-frame time of
DeepLab-101, DFF and Accel-18/34/50/101 at interval 5 in fp32, tf32, bf16 and fp16, with each
precision's argmax agreement against fp32 and the paper's K80 times (accel.core.runtime_check).
Exits 1 when a kernel or a fixture fails.
"""
import argparse
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

from accel.cli import REPO_ROOT, run
from accel.cli.flags import add_debug_flag, nonnegative_int, positive_int
from accel.runtime import PRECISIONS
from accel.symbols.versions import ACCEL_VERSIONS, REFERENCE

SAMPLE_FRAMES = os.path.join(REPO_ROOT, "sample_data", "camvid", "val")
FIXTURES = os.path.join(REPO_ROOT, "tests", "fixtures", "oracle_128x256")  # data files
VERSIONS = (REFERENCE.name,) + ACCEL_VERSIONS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for report.md and report.json")
    parser.add_argument("--dry-run", action="store_true",
                        help="run everything on the CPU at 64x128 (fp32, bf16), 2 versions")
    parser.add_argument("--gpu", type=nonnegative_int, default=0, help="CUDA device (default 0)")
    parser.add_argument("--size", type=positive_int, nargs=2, default=(1024, 2048),
                        metavar=("H", "W"))
    parser.add_argument("--frames", type=positive_int, default=22,
                        help="frames per run, warm-up in")
    parser.add_argument("--versions", nargs="+", default=list(VERSIONS), choices=VERSIONS)
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--fixtures", default=FIXTURES, help="oracle fixture folder")
    add_debug_flag(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the check; writes report.json and report.md into --out; 1 when something failed."""
    args = build_parser().parse_args(argv)
    from accel.cli.benchmark import sample_frames
    from accel.core.runtime_check import check_machine, markdown
    from accel.utils.io import write_json, write_text

    device = "cpu" if args.dry_run else "cuda:%d" % args.gpu
    if args.dry_run:
        args.size, args.frames = (64, 128), 6
        args.versions = [v for v in args.versions if v in (REFERENCE.name, "18")]
        args.precisions = [p for p in args.precisions if p in ("fp32", "bf16")]
    report = check_machine(device, args.fixtures, sample_frames(args.size, args.frames,
                                                                SAMPLE_FRAMES),
                           args.versions, args.precisions, small=args.dry_run)
    report["dry_run"] = args.dry_run
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(str(out / "report.json"), report)
    write_text(str(out / "report.md"), markdown(report))
    logging.getLogger("gpu_check").info("report in %s: %s", out,
                                        "; ".join(report["failures"]) or "all checks passed")
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    run(main, mxnet="never")
