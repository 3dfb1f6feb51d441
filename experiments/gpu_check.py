"""Check a GPU machine end to end, in one run of a few minutes; a report as Markdown and JSON.

    python experiments/gpu_check.py [--out output/gpu_check] [--repeat 20]

Always (NumPy, SciPy and CuPy only, so also without MXNet and on numpy 2): the CUDA kernels
of operator_cxx/ (flow warp, correlation) against the NumPy references, forward and
backward in float32 and float64, and their kernel times (CUDA events).
Where MXNet's GPU build runs on the device (accel.utils.gpu.check_gpu_supported): the same
kernels timed against MXNet's built-ins (GridGenerator + BilinearSampler, Correlation), the
oracle fixtures (tests/fixtures/oracle_128x256) on the GPU, Accel-18 / DFF / DeepLab-101
demo timing at 1024x2048 (the paper, on a K80: Accel-18 0.44 s, DeepLab-101 0.74 s per
frame), one epoch of the sample config (6 training steps) on GPU 0 and, with two GPUs,
on both with `kvstore: device`. Exits 1 when a check fails.
"""
import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from accel.operators import cuda, reference

log = logging.getLogger("gpu_check")
REPO = Path(__file__).resolve().parents[1]

# (N, C, H, W, flow scale in pixels): odd sizes, flows leaving the image, res5-like
WARP_CASES = [(2, 3, 7, 9, 3.0), (3, 2, 11, 8, 12.0), (1, 256, 33, 65, 6.0)]
CORRELATION_CASES = [
    dict(kernel_size=1, max_displacement=20, stride1=1, stride2=2, pad_size=20, is_multiply=True),
    dict(kernel_size=3, max_displacement=2, stride1=2, stride2=1, pad_size=3, is_multiply=True),
    dict(kernel_size=3, max_displacement=3, stride1=3, stride2=1, pad_size=2, is_multiply=False),
]
# res5 features of 1024x2048 and 512x1024 frames; FlowNetC's corr on conv3 of 384x512
TIMED_WARPS = [(1, 2048, 64, 128), (1, 2048, 32, 64)]
TIMED_CORRELATION = ((1, 256, 48, 64), CORRELATION_CASES[0])
# largest |error| allowed, relative to max(1, largest |reference|)
TOLERANCE = {"float32": 1e-4, "float64": 1e-10}
DEMO_SIZE = (1024, 2048)
DEMO_VERSIONS = ("18", "dff", "deeplab")
PAPER_SECONDS = {"18": 0.44, "deeplab": 0.74}  # Accel paper, K80, 1024x2048
SAMPLE_CFG = REPO / "experiments" / "dff_deeplab" / "cfgs" / "accel_18_camvid_sample.yaml"
TRAIN_RUNNER = REPO / "experiments" / "dff_deeplab" / "dff_deeplab_end2end_train_test.py"


# ---------------------------------------------------------------- CuPy kernels vs NumPy


def error_cells(got: Sequence, want: Sequence, dtype: str, cupy) -> Dict[str, Any]:
    """Largest absolute differences of output/gradients and whether all are in tolerance."""
    errors, ok = [], True
    for g, w in zip(got, want):
        err = float(np.abs(cupy.asnumpy(g) - w).max())
        ok &= err <= TOLERANCE[dtype] * max(1.0, float(np.abs(w).max()))
        errors.append(err)
    return {"errors": errors, "ok": bool(ok)}


def check_warp(cupy, dtype) -> List[Dict[str, Any]]:
    """Warp rows: forward, d feat, d flow against warp_numpy / warp_backward_numpy."""
    rng = np.random.default_rng(0)
    rows = []
    for n, c, h, w, scale in WARP_CASES:
        feat = rng.standard_normal((n, c, h, w)).astype(dtype)
        flow = (rng.standard_normal((n, 2, h, w)) * scale).astype(dtype)
        grad = rng.standard_normal(feat.shape).astype(dtype)
        got = [cuda.warp_forward_cuda(cupy.asarray(feat), cupy.asarray(flow)),
               *cuda.warp_backward_cuda(cupy.asarray(feat), cupy.asarray(flow),
                                        cupy.asarray(grad))]
        want = [reference.warp_numpy(feat, flow),
                *reference.warp_backward_numpy(feat, flow, grad)]
        name = np.dtype(dtype).name
        rows.append({"operator": "flow_warp", "dtype": name, "case": str((n, c, h, w)),
                     **error_cells(got, want, name, cupy)})
    return rows


def check_correlation(cupy, dtype) -> List[Dict[str, Any]]:
    """Correlation rows: forward, d data1, d data2 against the NumPy reference."""
    rng = np.random.default_rng(1)
    rows = []
    for params in CORRELATION_CASES:
        a, b = rng.standard_normal((2, 2, 16, 24, 31)).astype(dtype)
        out = reference.correlation_numpy(a, b, **params)
        grad = rng.standard_normal(out.shape).astype(dtype)
        da, db = cupy.asarray(a), cupy.asarray(b)
        got = [cuda.correlation_forward_cuda(da, db, **params),
               *cuda.correlation_backward_cuda(da, db, cupy.asarray(grad), **params)]
        want = [out, *reference.correlation_backward_numpy(a, b, grad, **params)]
        name = np.dtype(dtype).name
        label = ",".join(f"{k}={int(v)}" for k, v in params.items())
        rows.append({"operator": "correlation", "dtype": name, "case": label,
                     **error_cells(got, want, name, cupy)})
    return rows


def time_gpu(cupy, step: Callable[[], object], repeat: int) -> float:
    """Median milliseconds of step() by CUDA events, after one warm-up."""
    step()
    cupy.cuda.Device().synchronize()
    times = []
    for _ in range(repeat):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        step()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop))
    return float(np.median(times))


def time_mxnet(mx, step: Callable[[], object], repeat: int) -> float:
    """Median milliseconds of step() + mx.nd.waitall(), after one warm-up."""
    step()
    mx.nd.waitall()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        step()
        mx.nd.waitall()
        times.append((time.perf_counter() - t0) * 1000.0)
    return float(np.median(times))


def _train_step(mx, exe, ctx, train: bool) -> Callable[[], None]:
    def step():
        exe.forward(is_train=train)
        if train:
            exe.backward(mx.nd.ones(exe.outputs[0].shape, ctx))
    return step


def builtin_warp(mx, ctx, shape) -> Dict[str, Callable[[], None]]:
    """MXNet's official warp (GridGenerator + BilinearSampler) on `ctx`, random inputs."""
    from accel.symbols.flownet import warp
    rng = np.random.default_rng(3)
    flow_shape = (shape[0], 2) + tuple(shape[2:])
    exe = warp(mx.sym.var("data"), mx.sym.var("flow"), "w", op="builtin").simple_bind(
        ctx, data=shape, flow=flow_shape)
    exe.arg_dict["data"][:] = rng.standard_normal(shape)
    exe.arg_dict["flow"][:] = rng.standard_normal(flow_shape) * 3
    return {"warp forward": _train_step(mx, exe, ctx, False),
            "warp forward+backward": _train_step(mx, exe, ctx, True)}


def builtin_correlation(mx, ctx, shape, params) -> Dict[str, Callable[[], None]]:
    """mx.sym.Correlation on `ctx`, random inputs."""
    rng = np.random.default_rng(4)
    exe = mx.sym.Correlation(mx.sym.var("a"), mx.sym.var("b"), **params).simple_bind(
        ctx, a=shape, b=shape)
    exe.arg_dict["a"][:] = rng.standard_normal(shape)
    exe.arg_dict["b"][:] = rng.standard_normal(shape)
    return {"correlation forward": _train_step(mx, exe, ctx, False),
            "correlation forward+backward": _train_step(mx, exe, ctx, True)}


def time_kernels(cupy, repeat: int, mx=None, ctx=None) -> List[Dict[str, Any]]:
    """CuPy kernel times at res5 / FlowNetC sizes; MXNet's built-ins beside them when given."""
    rng = np.random.default_rng(2)
    jobs = []
    for shape in TIMED_WARPS:
        feat = cupy.asarray(rng.standard_normal(shape).astype(np.float32))
        flow = cupy.asarray((rng.standard_normal((shape[0], 2) + shape[2:]) * 3)
                            .astype(np.float32))
        grad = cupy.ones_like(feat)
        steps = {"warp forward": lambda f=feat, v=flow: cuda.warp_forward_cuda(f, v),
                 "warp forward+backward": lambda f=feat, v=flow, g=grad: (
                     cuda.warp_forward_cuda(f, v), cuda.warp_backward_cuda(f, v, g))}
        jobs.append((shape, steps, lambda s=shape: builtin_warp(mx, ctx, s)))
    shape, params = TIMED_CORRELATION
    a, b = (cupy.asarray(rng.standard_normal(shape).astype(np.float32)) for _ in "ab")
    grad = cupy.ones_like(cuda.correlation_forward_cuda(a, b, **params))
    steps = {"correlation forward": lambda: cuda.correlation_forward_cuda(a, b, **params),
             "correlation forward+backward": lambda: (
                 cuda.correlation_forward_cuda(a, b, **params),
                 cuda.correlation_backward_cuda(a, b, grad, **params))}
    jobs.append((shape, steps, lambda: builtin_correlation(mx, ctx, shape, params)))
    rows = []
    for shape, steps, make_builtins in jobs:
        builtins = make_builtins() if mx is not None else {}
        for what, step in steps.items():
            rows.append({"what": what, "shape": "x".join(map(str, shape)),
                         "cupy_ms": time_gpu(cupy, step, repeat),
                         "mxnet_builtin_ms": (time_mxnet(mx, builtins[what], repeat)
                                              if what in builtins else None)})
    return rows


# ---------------------------------------------------------------- MXNet on the GPU


def mxnet_status() -> Dict[str, Any]:
    """Whether MXNet's GPU build runs here: {'runs': bool, 'reason': str}."""
    from accel.utils import gpu
    gpu.preload_cuda_libraries()
    try:
        import mxnet as mx
    except (ImportError, OSError) as err:
        return {"runs": False, "reason": f"mxnet does not import: {err}"}
    if mx.context.num_gpus() < 1:
        return {"runs": False, "reason": f"mxnet {mx.__version__} sees no GPU "
                                         f"(a CPU build, or no driver)"}
    try:
        gpu.check_gpu_supported(0)
    except gpu.GPUUnsupportedError as err:
        return {"runs": False, "reason": str(err)}
    return {"runs": True, "reason": f"mxnet {mx.__version__} on {mx.context.num_gpus()} GPU(s)"}


def check_oracle_fixtures(mx, ctx) -> List[Dict[str, Any]]:
    """The official networks' oracle fixtures reproduced on `ctx` (tests/test_reference.py's
    tolerance: 1e-4 * mean|x| + 1e-6, >= 99.9% argmax agreement)."""
    sys.path.insert(0, str(REPO / "tests"))
    from oracle import oracle_value
    from test_reference import FIXTURE_DIR, MANIFEST, fixture_symbol
    rows = []
    for name, entry in sorted(MANIFEST["fixtures"].items()):
        data = np.load(FIXTURE_DIR / (name + ".npz"))
        inputs = {k[len("input__"):]: data[k] for k in data.files if k.startswith("input__")}
        internals = fixture_symbol(name).get_internals()
        wanted = list(entry["outputs"])
        group = mx.sym.Group([internals[o] for o in wanted])
        inputs = {k: v for k, v in inputs.items() if k in group.list_arguments()}
        arg_shapes, _, aux_shapes = group.infer_shape(**{k: v.shape for k, v in inputs.items()})
        args = {n: mx.nd.array(inputs[n] if n in inputs else oracle_value(n, s), ctx)
                for n, s in zip(group.list_arguments(), arg_shapes)}
        aux = {n: mx.nd.array(oracle_value(n, s), ctx)
               for n, s in zip(group.list_auxiliary_states(), aux_shapes)}
        outputs = group.bind(ctx, args=args, aux_states=aux, grad_req="null").forward()
        worst, agree, ok = 0.0, 1.0, True
        for out, got in zip(wanted, (o.asnumpy() for o in outputs)):
            spec = entry["outputs"][out]
            err = np.abs(got.reshape(-1)[data["index__" + out]] - data["sample__" + out])
            ratio = float(err.max() / (1e-4 * spec["abs_mean"] + 1e-6))
            worst = max(worst, ratio)
            ok &= list(got.shape) == spec["shape"] and ratio <= 1.0
            if spec.get("argmax"):
                agree = min(agree, float((got.argmax(axis=1).astype(np.uint8)
                                          == data["argmax__" + out]).mean()))
        rows.append({"fixture": name, "max_error_over_tolerance": worst,
                     "argmax_agreement": agree, "ok": bool(ok and agree >= 0.999)})
    return rows


def demo_timing(mx, ctx, frames: int) -> List[Dict[str, Any]]:
    """Per-frame seconds of the reference graphs (the original demo's host work) at
    1024x2048 on `ctx`, random weights, real CamVid frames resized."""
    sys.path.insert(0, str(REPO / "experiments"))
    import benchmark
    from accel.core.inference import VideoSegmenter
    shape = (1, 3) + DEMO_SIZE
    clip = benchmark.frames(DEMO_SIZE, frames + benchmark.WARMUP)
    rows = []
    for version in DEMO_VERSIONS:
        network, fixed = benchmark.network_for(version)
        interval = fixed or network.version.key_interval
        args, aux = benchmark.random_params(network, shape)
        seg = VideoSegmenter(network, args, aux, interval, ctx=ctx, original_io=True)
        times = [seg.step(f).network_s for f in clip][benchmark.WARMUP:]
        rows.append({"version": version, "interval": interval,
                     "mean_s": float(np.mean(times)), "max_s": float(np.max(times)),
                     "paper_k80_s": PAPER_SECONDS.get(version)})
        log.info("demo %s: %.3f s per frame", version, rows[-1]["mean_s"])
        del seg, args, aux
        mx.nd.waitall()
    return rows


def train_sample(gpus: str, kvstore: str = "device") -> Dict[str, Any]:
    """One epoch (6 steps) of the sample config on `gpus`, in a child process."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, str(TRAIN_RUNNER), "--cfg", str(SAMPLE_CFG), "--no-test",
               f"gpus={gpus}", "TRAIN.end_epoch=1", f"default.kvstore={kvstore}",
               f"output_path={out}"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
        seconds = time.perf_counter() - t0
        params = sorted(Path(out).rglob("*-0001.params"))
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    return {"gpus": gpus, "kvstore": kvstore, "ok": proc.returncode == 0 and bool(params),
            "seconds": seconds, "log_tail": tail}


# ---------------------------------------------------------------- report


def markdown_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """Rows of cells as a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def _ms(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.3f}"


def markdown(report: Dict[str, Any]) -> str:
    """The report as Markdown."""
    dev = report["device"]
    parts = [f"# GPU check: {dev['name']} (compute capability {dev['capability']})",
             f"CuPy {report['cupy']}, numpy {report['numpy']}; MXNet: {report['mxnet']['reason']}",
             "## CuPy kernels against the NumPy references (max |error|)",
             markdown_table([[r["operator"], r["dtype"], r["case"],
                              *(f"{e:.2e}" for e in r["errors"]), "ok" if r["ok"] else "FAIL"]
                             for r in report["kernels"]],
                            ["operator", "dtype", "case", "output", "grad input 1",
                             "grad input 2", "within tolerance"]),
             "## Kernel times (median ms, float32)",
             markdown_table([[r["what"], r["shape"], _ms(r["cupy_ms"]),
                              _ms(r["mxnet_builtin_ms"])] for r in report["timing"]],
                            ["what", "shape", "CuPy kernel", "MXNet built-in"])]
    if report.get("fixtures"):
        parts += ["## Oracle fixtures on the GPU",
                  markdown_table([[r["fixture"], f"{r['max_error_over_tolerance']:.3f}",
                                   f"{r['argmax_agreement']:.4f}", "ok" if r["ok"] else "FAIL"]
                                  for r in report["fixtures"]],
                                 ["fixture", "max error / tolerance", "argmax agreement", ""])]
    if report.get("demo"):
        parts += [f"## Demo timing at {DEMO_SIZE[0]}x{DEMO_SIZE[1]} (s per frame)",
                  markdown_table([[r["version"], r["interval"], f"{r['mean_s']:.3f}",
                                   f"{r['max_s']:.3f}", r["paper_k80_s"] or "-"]
                                  for r in report["demo"]],
                                 ["version", "keyframe interval", "mean", "max",
                                  "paper (K80)"])]
    if report.get("training"):
        parts += ["## Training, sample config, one epoch (6 steps)",
                  markdown_table([[r["gpus"], r["kvstore"], f"{r['seconds']:.1f}",
                                   "ok" if r["ok"] else "FAIL: " + " / ".join(r["log_tail"])]
                                  for r in report["training"]],
                                 ["gpus", "kvstore", "seconds (with start-up)", ""])]
    return "\n\n".join(parts) + "\n"


def failures(report: Dict[str, Any]) -> List[str]:
    """What did not pass."""
    rows = report["kernels"] + report.get("fixtures", []) + report.get("training", [])
    return [r.get("fixture") or r.get("gpus") or f"{r['operator']} {r['dtype']} {r['case']}"
            for r in rows if not r["ok"]]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "output" / "gpu_check"),
                        help="folder for report.md and report.json")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per kernel")
    parser.add_argument("--frames", type=int, default=10, help="timed demo frames per version")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        cupy = cuda.import_cupy()
    except ImportError as err:
        log.error("%s", err)
        return 2
    props = cupy.cuda.runtime.getDeviceProperties(0)
    report: Dict[str, Any] = {
        "device": {"name": props["name"].decode(),
                   "capability": f"{props['major']}.{props['minor']}",
                   "count": cupy.cuda.runtime.getDeviceCount()},
        "cupy": cupy.__version__, "numpy": np.__version__}
    log.info("device: %s", report["device"])
    report["kernels"] = [row for dtype in (np.float32, np.float64)
                         for row in check_warp(cupy, dtype) + check_correlation(cupy, dtype)]
    report["mxnet"] = mxnet_status()
    log.info("MXNet: %s", report["mxnet"]["reason"])
    mx = ctx = None
    if report["mxnet"]["runs"]:
        import mxnet as mx
        ctx = mx.gpu(0)
    report["timing"] = time_kernels(cupy, args.repeat, mx, ctx)
    if mx is not None:
        report["fixtures"] = check_oracle_fixtures(mx, ctx)
        report["demo"] = demo_timing(mx, ctx, args.frames)
        report["training"] = [train_sample("0")]
        if mx.context.num_gpus() >= 2:
            report["training"].append(train_sample("0,1", "device"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(markdown(report))
    print(markdown(report))
    failed = failures(report)
    if failed:
        log.error("failed: %s", ", ".join(failed))
    log.info("report: %s", out / "report.md")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
