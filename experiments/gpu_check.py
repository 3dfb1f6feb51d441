"""Check the PyTorch runtime on a GPU machine in one run; report.md and report.json.

    python experiments/gpu_check.py --out DIR              # GPU 0, 1024x2048 (about 5 min)
    python experiments/gpu_check.py --out DIR --dry-run    # the same on the CPU, small

Runs where the lent machines are: PyTorch, NumPy, OpenCV, PyYAML and CuPy only (no MXNet,
no compiler, no init.sh; `PYTHONPATH=lib:. python experiments/gpu_check.py ...`). Checks,
in order, printing progress: the CUDA warp (operator_cxx/, through CuPy) and the deformable
convolution against the CPU reference; the oracle fixtures on the GPU; per-frame time of
DeepLab-101, DFF and Accel-18/34/50/101 at interval 5 in fp32, tf32, bf16 and fp16, with each
precision's argmax agreement against fp32 and the paper's K80 times (accel.core.runtime_check).
Exits 1 when a kernel or a fixture fails.
"""
import argparse
import logging
import os
import platform
from pathlib import Path
from typing import Optional, Sequence

from accel.cli import REPO_ROOT, run

SAMPLE_FRAMES = os.path.join(REPO_ROOT, "sample_data", "camvid", "val")
FIXTURES = os.path.join(REPO_ROOT, "tests", "fixtures", "oracle_128x256")
VERSIONS = ("deeplab", "dff", "18", "34", "50", "101")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for report.md and report.json")
    parser.add_argument("--dry-run", action="store_true",
                        help="run everything on the CPU at 64x128 (fp32, bf16), 2 versions")
    parser.add_argument("--gpu", type=int, default=0, help="CUDA device (default 0)")
    parser.add_argument("--size", type=int, nargs=2, default=(1024, 2048), metavar=("H", "W"))
    parser.add_argument("--frames", type=int, default=22, help="frames per run, warm-up in")
    parser.add_argument("--versions", nargs="+", default=list(VERSIONS), choices=VERSIONS)
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--fixtures", default=FIXTURES, help="oracle fixture folder")
    return parser


def machine(device: str) -> dict:
    import numpy
    import torch

    from accel.runtime.torch_ops import warp_backend

    info = {"device": "CPU (%s)" % platform.processor() or "cpu", "torch": torch.__version__,
            "numpy": numpy.__version__, "python": platform.python_version(),
            "warp": warp_backend(device)}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(device)
        info.update(device=props.name, capability="%d.%d" % (props.major, props.minor),
                    cuda=torch.version.cuda, memory_gib=round(props.total_memory / 2**30, 1))
        try:
            import cupy
            info["cupy"] = cupy.__version__
        except ImportError:
            info["cupy"] = "not installed"
    return info


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from accel.dataset import VideoFrames
    from accel.core import runtime_check as check
    from accel.utils.image import image_to_tensor, resize_image
    from accel.utils.io import write_json, write_text

    if args.dry_run:
        args.size, args.frames, gpu, device = (64, 128), 6, None, "cpu"
        args.versions = [v for v in args.versions if v in ("deeplab", "18")]
        args.precisions = [p for p in args.precisions if p in ("fp32", "bf16")]
    else:
        gpu, device = args.gpu, "cuda:%d" % args.gpu
    log = logging.getLogger("gpu_check")
    report = {"machine": machine(device), "dry_run": args.dry_run}
    log.info("machine: %s", report["machine"])
    report["kernels"] = check.kernel_parity(device, small=args.dry_run)
    log.info("kernels: %d of %d within tolerance", sum(r["ok"] for r in report["kernels"]),
             len(report["kernels"]))
    report["fixtures"] = check.oracle_fixtures(args.fixtures, device)
    means = (103.06, 115.90, 123.15)
    clip = [image_to_tensor(resize_image(f, tuple(args.size)), means)
            for f in VideoFrames(SAMPLE_FRAMES)]
    frames = [clip[i % len(clip)] for i in range(args.frames)]
    report["timing_settings"] = {"size": list(args.size), "interval": 5, "path": "fast",
                                 "frames": args.frames - 2, "weights": "synthetic"}
    report["timing"] = check.time_versions(frames, args.versions, args.precisions, gpu)
    report["failures"] = check.failures(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(str(out / "report.json"), report)
    write_text(str(out / "report.md"), check.markdown(report))
    log.info("report in %s: %s", out, "; ".join(report["failures"]) or "all checks passed")
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    run(main, mxnet="never")
