"""The runtime check of a machine (experiments/gpu_check.py): kernels, fixtures, timing.

Needs PyTorch and NumPy only (CuPy where the device is a GPU), so it runs on a lent GPU
machine that has neither MXNet nor a compiler. Three parts, each a list of rows:

* `kernel_parity(device)`: the flow warp (our CUDA kernel through CuPy on a GPU) and the
  deformable convolution on `device` against the CPU reference (float64: the same PyTorch
  operators on the CPU, which the tests hold to NumPy and MXNet), largest error;
* `oracle_fixtures(folder, device)`: the official networks' outputs (accel.oracle);
* `time_versions(...)`: per-frame time of every version at `interval` per precision (CUDA
  events on a GPU, the segmenter's clock on the CPU), keyframes and others apart, with the
  argmax agreement of each precision against fp32 and the paper's K80 time beside it.

Weights are synthetic (no released checkpoint travels to such a machine;
accel.oracle.synthetic_params): the oracle rule for every parameter and the released models'
bilinear upsampling kernels, so agreement
between precisions is measured on small score margins, a harder case than trained weights.
"""
import logging
import platform
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from accel.core.inference import VideoSegmenter
from accel.core.timing import WARMUP_FRAMES, summarize
from accel.networks import accel_network
from accel.oracle import compare, manifest, run_torch, synthetic_params
from accel.runtime import make_runtime
from accel.runtime.torch_ops import deformable_conv2d, flow_warp, warp_backend
from accel.symbols.versions import REFERENCE, get_version

__all__ = ["WARP_CASES", "machine", "kernel_parity", "oracle_fixtures", "time_versions",
           "check_machine", "markdown", "failures"]

log = logging.getLogger(__name__)

# (N, C, H, W, flow scale in pixels): odd sizes, flows leaving the image, res5 of 1024x2048
WARP_CASES = [(2, 3, 7, 9, 3.0), (3, 2, 11, 8, 12.0), (1, 2048, 64, 128, 6.0)]
# (data shape, deformable groups, stride, dilation): the reference res5, the update branches
DEFORMABLE_CASES = [((1, 64, 17, 23), 1, 1, 2), ((1, 32, 16, 20), 4, 2, 2),
                    ((1, 512, 64, 128), 1, 1, 2)]
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-10}  # relative to max(1, max |ref|)


def machine(device: str) -> Dict[str, Any]:
    """The device, PyTorch, NumPy and Python versions, and which warp kernel runs."""
    info = {"device": "CPU (%s)" % (platform.processor() or "cpu"), "torch": torch.__version__,
            "numpy": np.__version__, "python": platform.python_version(),
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


def _row(name: str, got: torch.Tensor, want: np.ndarray, dtype, backend: str) -> Dict:
    err = float(np.abs(got.double().cpu().numpy() - want).max())
    tol = TOLERANCE[dtype] * max(1.0, float(np.abs(want).max()))
    return {"kernel": name, "dtype": str(dtype).replace("torch.", ""), "backend": backend,
            "max_error": err, "tolerance": tol, "ok": err <= tol}


def kernel_parity(device: str, small: bool = False) -> List[Dict[str, Any]]:
    """Warp and deformable convolution on `device` against the CPU reference (`small`:
    without the full-size res5 cases, for a dry run)."""
    rng = np.random.default_rng(0)
    rows = []
    for n, c, h, w, scale in WARP_CASES[:-1] if small else WARP_CASES:
        feat = rng.standard_normal((n, c, h, w))
        flow = rng.standard_normal((n, 2, h, w)) * scale
        # The CPU reference in float64 (tests/test_torch_ops.py holds it to
        # accel.operators.reference.warp_numpy, which needs SciPy, absent on such machines).
        want = flow_warp(torch.from_numpy(feat), torch.from_numpy(flow)).numpy()
        for dtype in (torch.float32, torch.float64):
            got = flow_warp(torch.from_numpy(feat).to(device, dtype),
                            torch.from_numpy(flow).to(device, dtype))
            rows.append(_row(f"flow warp {(n, c, h, w)}", got, want, dtype,
                             warp_backend(device)))
    for shape, groups, stride, dilate in DEFORMABLE_CASES[:-1] if small else DEFORMABLE_CASES:
        data = torch.from_numpy(rng.standard_normal(shape))
        ho = (shape[2] + 2 * dilate - 2 * dilate - 1) // stride + 1
        wo = (shape[3] + 2 * dilate - 2 * dilate - 1) // stride + 1
        offset = torch.from_numpy(rng.standard_normal((1, 18 * groups, ho, wo)) * 4)
        weight = torch.from_numpy(rng.standard_normal((shape[1], shape[1], 3, 3)) * 0.05)
        want = deformable_conv2d(data, offset, weight, None, stride, dilate, dilate, 1,
                                 groups).numpy()
        got = deformable_conv2d(*(t.to(device, torch.float32) for t in (data, offset, weight)),
                                None, stride, dilate, dilate, 1, groups)
        rows.append(_row(f"deformable conv {shape} g{groups} s{stride}", got, want,
                         torch.float32, "torch"))
    return rows


def oracle_fixtures(folder, device: str, names: Optional[Sequence[str]] = None
                    ) -> List[Dict[str, Any]]:
    """Every fixture of `folder` (or `names`) run on `device` and compared."""
    rows = []
    for name in names or sorted(manifest(folder)["fixtures"]):
        t0 = time.perf_counter()
        result = compare(*run_torch(folder, name, device))
        rows.append({"fixture": name, "ok": all(r["ok"] for r in result.values()),
                     "seconds": time.perf_counter() - t0, "outputs": result})
        log.info("fixture %s: %s", name, "ok" if rows[-1]["ok"] else "FAILED")
    return rows


def _timed_steps(seg: VideoSegmenter, frames, cuda: bool):
    """(is_key, seconds, pred) per frame; CUDA events around each step on a GPU."""
    out = []
    for frame in frames:
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            result = seg.step(frame)
            end.record()
            end.synchronize()
            seconds = start.elapsed_time(end) / 1000.0
        else:
            result = seg.step(frame)
            seconds = result.network_s
        out.append((result.is_key, seconds, result.pred))
    return out


def time_versions(frames: Sequence[np.ndarray], versions: Sequence[str],
                  precisions: Sequence[str], gpu: Optional[int], interval: int = 5,
                  num_classes: int = 19, fast: bool = True) -> List[Dict[str, Any]]:
    """One row per (version, precision): per-frame stats (s), keyframes and others apart,
    argmax agreement with fp32 over the timed frames, the paper's K80 seconds."""
    rows = []
    shape = tuple(frames[0].shape)
    for version in versions:
        row_version = get_version(version)
        accel = "18" if row_version is REFERENCE else version
        k = 1 if row_version is REFERENCE else interval
        args, aux = synthetic_params(accel_network(accel, num_classes), shape,
                                     make_runtime("torch"))
        reference_preds = None
        for precision in precisions:
            runtime = make_runtime("torch", gpu=gpu, precision=precision)
            seg = VideoSegmenter(accel_network(accel, num_classes, fast), args, aux, k,
                                 runtime=runtime, allow_extra=True)
            steps = _timed_steps(seg, frames, gpu is not None)[WARMUP_FRAMES:]
            preds = [p for _, _, p in steps]
            reference_preds = preds if precision == "fp32" else reference_preds
            agree = (float(np.mean([(a == b).mean() for a, b in zip(preds, reference_preds)]))
                     if reference_preds is not None else None)
            rows.append({
                "version": version, "method": row_version.method, "precision": precision,
                "interval": k, "path": "fast" if seg.fast else "reference",
                "all": summarize([s for _, s, _ in steps]),
                "key": summarize([s for key, s, _ in steps if key]),
                "nonkey": summarize([s for key, s, _ in steps if not key]),
                "agreement_vs_fp32": agree,
                "paper_k80_s": row_version.paper[1] if row_version.paper else None})
            log.info("%s %s: %.1f ms per frame (agreement with fp32: %s)", row_version.method,
                     precision, 1e3 * rows[-1]["all"]["mean"],
                     "-" if agree is None else "%.4f" % agree)
            del seg, runtime
    return rows


def check_machine(device: str, fixtures, frames: Sequence[np.ndarray],
                  versions: Sequence[str], precisions: Sequence[str], small: bool = False
                  ) -> Dict[str, Any]:
    """The whole check on `device` ('cpu' or 'cuda:N'): the machine, the kernels, the
    fixtures of folder `fixtures`, the timing of `versions` x `precisions` on `frames`
    (interval 5, fast graphs) and what failed; `small`: a dry run's smaller kernel cases."""
    gpu = int(device.split(":")[1]) if device.startswith("cuda") else None
    report: Dict[str, Any] = {"machine": machine(device)}
    log.info("machine: %s", report["machine"])
    report["kernels"] = kernel_parity(device, small=small)
    log.info("kernels: %d of %d within tolerance", sum(r["ok"] for r in report["kernels"]),
             len(report["kernels"]))
    report["fixtures"] = oracle_fixtures(fixtures, device)
    report["timing_settings"] = {"size": list(frames[0].shape[2:]), "interval": 5,
                                 "path": "fast", "frames": len(frames) - WARMUP_FRAMES,
                                 "weights": "synthetic"}
    report["timing"] = time_versions(frames, versions, precisions, gpu)
    report["failures"] = failures(report)
    return report


def _ms(stats: Dict[str, float]) -> str:
    if not stats.get("frames"):
        return "-"
    return "%.1f / %.1f / %.1f" % tuple(1e3 * stats[k] for k in ("mean", "p50", "p99"))


def markdown(report: Dict[str, Any]) -> str:
    """report.md: the machine, then one table per part."""
    m = report["machine"]
    lines = [f"# Runtime check: {m.get('device')}", "",
             ", ".join(f"{k} {v}" for k, v in m.items() if k != "device"), ""]
    lines += ["## Kernels against the CPU reference", "",
              "| kernel | dtype | backend | max error | tolerance | ok |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['kernel']} | {r['dtype']} | {r['backend']} | {r['max_error']:.3g} | "
              f"{r['tolerance']:.3g} | {'yes' if r['ok'] else '**NO**'} |"
              for r in report["kernels"]]
    lines += ["", "## Oracle fixtures", "", "| fixture | ok | seconds |", "|---|---|---|"]
    lines += [f"| {r['fixture']} | {'yes' if r['ok'] else '**NO**'} | {r['seconds']:.1f} |"
              for r in report["fixtures"]]
    t = report["timing_settings"]
    lines += ["", f"## Per-frame time at {t['size'][0]}x{t['size'][1]}, interval "
                  f"{t['interval']} ({t['path']} graphs; ms: mean / p50 / p99, "
                  f"{t['frames']} frames after {WARMUP_FRAMES} warm-up)", "",
              "| network | precision | all frames | keyframes | non-key | agreement vs fp32 "
              "| paper, K80 (s) |", "|---|---|---|---|---|---|---|"]
    for r in report["timing"]:
        agree = "-" if r["agreement_vs_fp32"] is None else "%.4f" % r["agreement_vs_fp32"]
        lines.append(f"| {r['method']} | {r['precision']} | {_ms(r['all'])} | {_ms(r['key'])} "
                     f"| {_ms(r['nonkey'])} | {agree} | {r['paper_k80_s'] or '-'} |")
    if report.get("failures"):
        lines += ["", "## Failures", ""] + [f"- {f}" for f in report["failures"]]
    return "\n".join(lines) + "\n"


def failures(report: Dict[str, Any]) -> List[str]:
    """What failed: kernels out of tolerance, fixtures that do not match."""
    out = [f"kernel {r['kernel']} ({r['dtype']}): error {r['max_error']:.3g} > "
           f"{r['tolerance']:.3g}" for r in report["kernels"] if not r["ok"]]
    out += [f"fixture {r['fixture']}" for r in report["fixtures"] if not r["ok"]]
    return out
