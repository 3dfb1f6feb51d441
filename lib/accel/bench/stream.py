"""Per-frame network time of DeepLab-101, DFF and Accel-18/34/50/101 on several runtime
paths, measured in one process, frame by frame in turns so that machine noise hits all
paths alike.

A path (`PATHS`) is a runtime (accel.runtime.make_runtime) and a choice of graphs: the
official ones, or the fast rewrites (accel.networks.FastAccelGraphs):
* reference: MXNet, the official graphs, each frame's host work as the original demo did it
  (fresh input array, full score map copied to the host, argmax in NumPy);
* fast: MXNet, the fast graphs (inputs copied in place, our CPU deformable convolution,
  score fusion at stride 16, the fc6 state propagated, upsampling fused with the argmax);
* fast, INT8 key / fast, INT8 all: the fast path with INT8 trunks (accel.runtime.quantize);
* torch / torch reference / torch bf16: PyTorch (fp32 fast graphs, fp32 official graphs,
  bf16 autocast on the fast graphs: emulated, and slow, on a CPU without avx512_bf16 or
  amx_bf16);
* onnxruntime / onnxruntime reference: ONNX Runtime on the fast or the official graphs.
The timing protocol is accel.core.timing's (batch 1, forward + argmax + copy to the host,
the first WARMUP_FRAMES frames left out). Weights are synthetic (accel.oracle), with the
released models' bilinear upsampling: timing does not depend on them.
"""
import logging
import multiprocessing as mp
import resource
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from accel.core.inference import VideoSegmenter
from accel.core.timing import WARMUP_FRAMES, summarize
from accel.dataset.cityscapes import NUM_CLASSES     # as the paper's timings
from accel.networks import accel_network
from accel.oracle import synthetic_params
from accel.runtime import make_runtime
from accel.symbols.versions import ACCEL_VERSIONS, REFERENCE

__all__ = ["BenchPath", "PATHS", "DEFAULT_PATHS", "VERSIONS", "INT8_PATH", "stats_ms",
           "segmenter", "time_in_turns", "time_versions", "peak_rss"]

log = logging.getLogger(__name__)

VERSIONS = (REFERENCE.name,) + ACCEL_VERSIONS   # 'deeplab' = the keyframe network per frame


@dataclass(frozen=True)
class BenchPath:
    """A runtime (`runtime` with `options`) and the graphs it runs (`fast` or official),
    with INT8 trunks (`int8` scope, MXNet's fast path) where asked."""

    runtime: str
    fast: bool
    options: Dict[str, Any] = field(default_factory=dict)
    int8: Optional[str] = None


PATHS: Dict[str, BenchPath] = {
    "reference": BenchPath("mxnet", False, {"original_io": True}),
    "fast": BenchPath("mxnet", True),
    "fast, INT8 key": BenchPath("mxnet", True, int8="key"),
    "fast, INT8 all": BenchPath("mxnet", True, int8="all"),
    "torch": BenchPath("torch", True),
    "torch reference": BenchPath("torch", False),
    "torch bf16": BenchPath("torch", True, {"precision": "bf16"}),
    "onnxruntime": BenchPath("onnxruntime", True),
    "onnxruntime reference": BenchPath("onnxruntime", False),
}
DEFAULT_PATHS = ("reference", "fast")
INT8_PATH = "fast, INT8 %s"      # the path of --int8 SCOPE


def stats_ms(seconds: Sequence[float]) -> Optional[Dict[str, float]]:
    """accel.core.timing.summarize in milliseconds ('n' frames); None without frames."""
    s = summarize(seconds)
    if not s["frames"]:
        return None
    return {**{k: 1000.0 * s[k] for k in ("mean", "p50", "p99", "max")}, "n": s["frames"]}


def segmenter(path: str, version: str, params, interval: int,
              calibration: Optional[Sequence[np.ndarray]] = None,
              num_classes: int = NUM_CLASSES) -> VideoSegmenter:
    """The segmenter of `version` on `path` (PATHS) at keyframe `interval` ('deeplab' = the
    keyframe network of Accel-18 on every frame); `calibration`: INT8 frames."""
    spec = PATHS[path]
    accel = "18" if version == REFERENCE.name else version
    return VideoSegmenter(accel_network(accel, num_classes, spec.fast), *params,
                          1 if version == REFERENCE.name else interval,
                          runtime=make_runtime(spec.runtime, **spec.options),
                          int8_calibration=calibration if spec.int8 else None,
                          int8_scope=spec.int8 or "key", allow_extra=True)


def time_in_turns(segmenters: Mapping[str, Any], frames: Sequence[np.ndarray],
                  warmup: int = WARMUP_FRAMES) -> Dict[str, Dict[str, Any]]:
    """{name: {'all', 'key', 'nonkey': stats_ms, 'agreement'}}: each frame through every
    segmenter in turn, the first `warmup` frames left out; agreement = the share of pixels
    whose label is the first segmenter's."""
    times = {name: {"key": [], "nonkey": [], "all": []} for name in segmenters}
    agree: Dict[str, List[float]] = {name: [] for name in segmenters}
    for i, frame in enumerate(frames):
        first = None
        for name, seg in segmenters.items():
            result = seg.step(frame)
            first = result.pred if first is None else first
            if i >= warmup:
                times[name]["key" if result.is_key else "nonkey"].append(result.network_s)
                times[name]["all"].append(result.network_s)
                agree[name].append(float((result.pred == first).mean()))
    return {name: {**{kind: stats_ms(v) for kind, v in t.items()},
                   "agreement": float(np.mean(agree[name])) if agree[name] else None}
            for name, t in times.items()}


def time_versions(versions: Sequence[str], frames: Sequence[np.ndarray], interval: int,
                  paths: Sequence[str], calibration: Optional[Sequence[np.ndarray]] = None
                  ) -> Dict[str, Dict[str, Any]]:
    """{version: {path: times, 'interval': k}} for every version on every path (reference
    first, for the agreement), frames in turns between the paths."""
    shape = tuple(frames[0].shape)
    paths = sorted(paths, key=lambda p: p != "reference")
    results = {}
    for version in versions:
        accel = "18" if version == REFERENCE.name else version
        params = synthetic_params(accel_network(accel, NUM_CLASSES), shape,
                                  make_runtime(PATHS[paths[0]].runtime))
        segs = {p: segmenter(p, version, params, interval, calibration) for p in paths}
        results[version] = time_in_turns(segs, frames)
        results[version]["interval"] = 1 if version == REFERENCE.name else interval
        log.info("%s: %s", version, ", ".join("%s %.0f ms" % (p, results[version][p]["all"]
                                                               ["mean"]) for p in paths))
        del segs, params
    return results


def _rss_child(path: str, version: str, frames: List[np.ndarray], interval: int,
               queue) -> None:
    params = synthetic_params(accel_network("18" if version == REFERENCE.name else version,
                                            NUM_CLASSES), frames[0].shape,
                              make_runtime(PATHS[path].runtime))
    seg = segmenter(path, version, params, interval)
    del params
    for frame in frames:
        seg.step(frame)
    queue.put(_peak_rss_mib())


def _peak_rss_mib() -> float:
    """This process's peak resident memory. Linux: VmHWM, the high-water mark of the current
    address space. (ru_maxrss is not usable here: Linux carries it across fork and exec, so a
    spawned child reports its parent's peak.)"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def peak_rss(versions: Sequence[str], frames: Sequence[np.ndarray], interval: int,
             paths: Sequence[str]) -> Dict[str, Dict[str, Optional[float]]]:
    """Peak resident memory (MiB) of a fresh process segmenting `frames`, per version and
    path (None where the child failed)."""
    ctx = mp.get_context("spawn")
    out: Dict[str, Dict[str, Optional[float]]] = {}
    for version in versions:
        for path in paths:
            queue = ctx.Queue()
            proc = ctx.Process(target=_rss_child, args=(path, version, list(frames),
                                                        interval, queue))
            proc.start()
            proc.join()
            out.setdefault(version, {})[path] = queue.get() if proc.exitcode == 0 else None
    return out
