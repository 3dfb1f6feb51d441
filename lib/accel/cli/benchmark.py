"""The benchmark's command line (experiments/benchmark.py): flags, the report and its
Markdown table; the measurements are accel.bench.stream's.

Frames are real CamVid frames of sample_data/ resized to --size; --int8 calibrates on
sample_data's training frames (timing only: the accuracy change is measured on labelled
data by experiments/int8_camvid.sh). The report (--json) holds per version and path the
per-frame stats in ms (mean, p50, p99, max, n) for all frames, keyframes and non-key
frames, the argmax agreement with the first path, the ratios of the performance issue, the
building blocks (`parts`, given by the runner: dff_deeplab/parts.py) and, with --rss, the
peak memory of a fresh process per version and path.
"""
import argparse
import logging
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from accel.cli import REPO_ROOT, bootstrap
from accel.cli.flags import add_debug_flag, positive_int
from accel.core.timing import WARMUP_FRAMES
from accel.dataset import VideoFrames
from accel.symbols.versions import REFERENCE, get_version
from accel.utils.image import PIXEL_MEANS, image_to_tensor, resize_image
from accel.utils.io import write_json
from accel.utils.provenance import cpu_has_native_bf16

__all__ = ["SAMPLE", "SAMPLE_TRAIN", "build_parser", "sample_frames", "machine", "markdown",
           "benchmark"]

log = logging.getLogger("accel.benchmark")

SAMPLE = os.path.join(REPO_ROOT, "sample_data", "camvid", "val")
SAMPLE_TRAIN = os.path.join(REPO_ROOT, "sample_data", "camvid", "train")
Parts = Callable[[Sequence[int], int], Dict[str, Dict[str, float]]]


def build_parser(description: str = "") -> argparse.ArgumentParser:
    """The benchmark's flags."""
    from accel.bench.stream import DEFAULT_PATHS, PATHS, VERSIONS

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--size", type=positive_int, nargs=2, default=[512, 1024],
                        metavar=("H", "W"))
    parser.add_argument("--interval", type=positive_int, default=5)
    parser.add_argument("--frames", type=positive_int, default=10,
                        help="timed frames per version")
    parser.add_argument("--versions", nargs="+", default=list(VERSIONS), choices=VERSIONS)
    parser.add_argument("--paths", nargs="+", default=list(DEFAULT_PATHS), choices=list(PATHS),
                        metavar="PATH",
                        help="runtime paths, timed frame by frame in turns: %s (default: %s; "
                             "'torch bf16' is emulated, and slow, on a CPU without native "
                             "BF16)" % (", ".join(repr(p) for p in PATHS),
                                        " ".join(DEFAULT_PATHS)))
    parser.add_argument("--no-parts", action="store_true", help="skip the building blocks")
    parser.add_argument("--repeat", type=positive_int, default=5,
                        help="runs per building block")
    parser.add_argument("--int8", nargs="*", choices=("key", "all"), default=[],
                        help="also time the fast path with INT8 trunks (keyframe trunk / "
                             "every trunk), calibrated on sample_data's training frames")
    parser.add_argument("--rss", action="store_true", help="peak RSS per version (slow)")
    parser.add_argument("--json", default=None, help="write the report here as JSON")
    parser.add_argument("--mxnet-version", default=None, metavar="NAME",
                        help="MXNet package to import (external/mxnet/NAME; default: the "
                             "installed one)")
    add_debug_flag(parser)
    return parser


def sample_frames(size: Sequence[int], count: int, folder: str = SAMPLE) -> List:
    """`count` real consecutive frames of `folder` resized to `size`, preprocessed
    (1, 3, H, W); the folder's frames repeat if it has fewer."""
    clip = list(VideoFrames(folder))
    return [image_to_tensor(resize_image(clip[i % len(clip)], tuple(size)), PIXEL_MEANS)
            for i in range(count)]


def machine() -> Tuple[str, bool]:
    """(a line naming the machine, whether its CPU has native BF16)."""
    parts = ["%d CPU cores" % os.cpu_count()]
    for name, label in (("mxnet", "MXNet"), ("torch", "PyTorch")):
        module = sys.modules.get(name)
        if module is not None:
            parts.append("%s %s" % (label, module.__version__))
    parts.append("OMP_NUM_THREADS=%s" % os.environ.get("OMP_NUM_THREADS", "unset"))
    return ", ".join(parts), cpu_has_native_bf16()


def _fmt(s: Optional[Dict[str, float]]) -> str:
    return "%.0f / %.0f / %.0f / %.0f" % (s["mean"], s["p50"], s["p99"], s["max"]) if s else "-"


def _bf16_line(native: bool) -> str:
    return ("CPU BF16: native (avx512_bf16 or amx_bf16)" if native else
            "CPU BF16: not native (no avx512_bf16 or amx_bf16: 'torch bf16' is emulated)")


def markdown(report: Dict[str, Any]) -> str:
    """The README table: per-frame times, ratios, parts, memory."""
    res, size, k = report["versions"], report["size"], report["interval"]
    lines = ["Per-frame network time (ms: mean / p50 / p99 / max), %dx%d, interval %d, "
             "%d frames after %d warm-up, %s" % (size[0], size[1], k, report["frames"],
                                                WARMUP_FRAMES, report["machine"]),
             "", _bf16_line(report.get("cpu_native_bf16")), "",
             "| network | path | all frames | keyframes | non-key frames | / reference |",
             "|---|---|---|---|---|---|"]
    names = {v: get_version(v).method for v in res}
    if REFERENCE.name in names:
        names[REFERENCE.name] += " (frame by frame)"
    paths = report["paths"]
    for version, r in res.items():
        ref = r.get("reference")
        for path in paths:
            ratio = ("%.2f" % (r[path]["all"]["mean"] / ref["all"]["mean"])
                     if ref and path != "reference" else "")
            lines.append("| %s | %s | %s | %s | %s | %s |" % (
                names[version], path, _fmt(r[path]["all"]), _fmt(r[path]["key"]),
                _fmt(r[path]["nonkey"]), ratio))
    if report["ratios"]:
        lines += ["", "| ratio | %s |" % " | ".join(paths), "|---|%s" % ("---|" * len(paths))]
    for name, value in report["ratios"].items():
        lines.append("| %s | %s |" % (name, " | ".join(
            "%.2f" % value[p] if value.get(p) is not None else "-" for p in paths)))
    if report.get("parts"):
        lines += ["", "| building block (ms, median of %d, timed in turns) | reference | fast |"
                  % report["repeat"], "|---|---|---|"]
        for name, value in report["parts"].items():
            ref, fast = value.get("reference"), value.get("fast")
            lines.append("| %s | %s | %s |" % (name, "%.0f" % ref if ref else "-",
                                                "%.0f" % fast if fast else "-"))
    if report.get("peak_rss_mib"):
        lines += ["", "| peak RSS (MiB), fresh process | %s |" % " | ".join(paths),
                  "|---|%s" % ("---|" * len(paths))]
        for version, value in report["peak_rss_mib"].items():
            lines.append("| %s | %s |" % (names[version], " | ".join(
                "%.0f" % value[p] if value.get(p) else "-" for p in paths)))
    return "\n".join(lines)


def ratios(res: Dict[str, Any], paths: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """The targets of the performance issue, per path."""
    out: Dict[str, Dict[str, float]] = {"Accel-18 / DeepLab-101 at the interval": {}}
    if "18" in res and REFERENCE.name in res:
        for path in paths:
            out["Accel-18 / DeepLab-101 at the interval"][path] = (
                res["18"][path]["all"]["mean"] / res[REFERENCE.name][path]["all"]["mean"])
    return out


def benchmark(argv: Optional[Sequence[str]], description: str = "",
              parts: Optional[Parts] = None) -> Tuple[Dict[str, Any], str]:
    """(the report, its Markdown table); writes the report to --json when asked. `parts`
    times the building blocks (skipped with --no-parts or when not given)."""
    args = build_parser(description).parse_args(argv)
    from accel.bench import stream

    if args.size[0] % 32 or args.size[1] % 32:
        raise ValueError(f"--size {args.size[0]} {args.size[1]}: must be multiples of 32 (the "
                         f"flow and feature grids must agree)")
    paths = list(dict.fromkeys(args.paths + [stream.INT8_PATH % s for s in args.int8]))
    wants_parts = parts is not None and not args.no_parts
    if wants_parts or any(stream.PATHS[p].runtime != "torch" for p in paths):
        # MXNET_VERSION's MXNet (--mxnet-version), before anything imports it
        bootstrap(list(sys.argv[1:] if argv is None else argv))
    frames = sample_frames(args.size, args.frames + WARMUP_FRAMES)
    calibration = (sample_frames(args.size, 8, SAMPLE_TRAIN)
                   if any(stream.PATHS[p].int8 for p in paths) else None)
    report: Dict[str, Any] = {"size": args.size, "interval": args.interval,
                              "frames": args.frames}
    report["versions"] = stream.time_versions(args.versions, frames, args.interval, paths,
                                              calibration)
    report["machine"], report["cpu_native_bf16"] = machine()
    report["paths"] = paths
    report["ratios"] = ratios(report["versions"], paths)
    if wants_parts:
        report["repeat"] = args.repeat
        report["parts"] = p = parts(args.size, args.repeat)
        twin = p["plain-dilated trunk (twin)"]["reference"]
        report["ratios"]["deformable trunk / plain-dilated twin"] = {
            path: p["reference trunk (deformable res5)"][path] / twin
            for path in ("reference", "fast")}
    if args.rss:
        report["peak_rss_mib"] = stream.peak_rss(args.versions, frames[:3], args.interval,
                                                 paths)
    if args.json:
        write_json(args.json, report)
    return report, markdown(report)
