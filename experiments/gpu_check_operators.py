"""Check the CUDA kernels of operator_cxx/ against the NumPy reference, and time them.

Needs NumPy and CuPy only (no MXNet), so it runs on GPU machines without MXNet's GPU
build:

    PYTHONPATH=lib python experiments/gpu_check_operators.py

Prints Markdown tables: the largest absolute error of every output and gradient (float32
and float64), and the median kernel times (CUDA events) of the warp at res5 sizes.
"""
import argparse
import logging
from typing import Callable, Dict, List, Sequence

import numpy as np

from accel.operators import cuda, reference

log = logging.getLogger("gpu_check_operators")

# (N, C, H, W, flow scale in pixels): odd sizes, flows leaving the image, res5-like
WARP_CASES = [(2, 3, 7, 9, 3.0), (3, 2, 11, 8, 12.0), (1, 256, 33, 65, 6.0)]
CORRELATION_CASES = [
    dict(kernel_size=1, max_displacement=20, stride1=1, stride2=2, pad_size=20, is_multiply=True),
    dict(kernel_size=3, max_displacement=2, stride1=2, stride2=1, pad_size=3, is_multiply=True),
    dict(kernel_size=3, max_displacement=3, stride1=3, stride2=1, pad_size=2, is_multiply=False),
]
TIMED_WARPS = [(1, 2048, 64, 128), (1, 2048, 32, 64)]


def max_errors(got: Sequence, want: Sequence, cupy) -> List[str]:
    """Largest absolute difference of each pair, formatted."""
    return [f"{float(np.abs(cupy.asnumpy(g) - w).max()):.2e}" for g, w in zip(got, want)]


def check_warp(cupy, dtype) -> List[List[str]]:
    """Error rows for the warp: forward, d feat, d flow."""
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
        rows.append(["flow_warp", np.dtype(dtype).name, f"{(n, c, h, w)}"]
                    + max_errors(got, want, cupy))
    return rows


def check_correlation(cupy, dtype) -> List[List[str]]:
    """Error rows for the correlation: forward, d data1, d data2."""
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
        label = ",".join(f"{k}={int(v)}" for k, v in params.items())
        rows.append(["correlation", np.dtype(dtype).name, label] + max_errors(got, want, cupy))
    return rows


def time_gpu(cupy, step: Callable[[], object], repeat: int) -> float:
    """Median milliseconds of step() by CUDA events, after one warm-up."""
    step()
    times = []
    for _ in range(repeat):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        step()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop))
    return float(np.median(times))


def time_warps(cupy, repeat: int) -> List[List[str]]:
    """Kernel times of the warp at res5 sizes."""
    rng = np.random.default_rng(2)
    rows = []
    for shape in TIMED_WARPS:
        feat = cupy.asarray(rng.standard_normal(shape).astype(np.float32))
        flow = cupy.asarray((rng.standard_normal((shape[0], 2) + shape[2:]) * 3)
                            .astype(np.float32))
        grad = cupy.ones_like(feat)
        steps: Dict[str, Callable[[], object]] = {
            "forward": lambda: cuda.warp_forward_cuda(feat, flow),
            "backward": lambda: cuda.warp_backward_cuda(feat, flow, grad),
        }
        rows.append(["x".join(map(str, shape))]
                    + [f"{time_gpu(cupy, s, repeat):.3f}" for s in steps.values()])
    return rows


def markdown_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """Rows of cells as a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per kernel")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    cupy = cuda.import_cupy()
    log.info("device: %s", cupy.cuda.runtime.getDeviceProperties(0)["name"].decode())
    rows: List[List[str]] = []
    for dtype in (np.float32, np.float64):
        rows += check_warp(cupy, dtype) + check_correlation(cupy, dtype)
    print(markdown_table(rows, ["operator", "dtype", "case", "max |err| output",
                                "max |err| grad input 1", "max |err| grad input 2"]))
    print()
    print(markdown_table(time_warps(cupy, args.repeat),
                         ["features", "warp forward ms", "warp backward ms"]))


if __name__ == "__main__":
    main()
