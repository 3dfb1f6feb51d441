"""The fused flow warp (accel.operators) against the official GridGenerator +
BilinearSampler (experiments/benchmark_warp.py).

Both operators are timed in the same run, through bound executors, forward alone and
forward plus backward (the median of `repeat` runs after one warm-up, from
accel.core.timing.summarize), on the CPU and on GPU 0 too when MXNet has a GPU and CuPy is
installed.
"""
import logging
import time
from typing import Callable, Dict, List, Sequence, Tuple

import mxnet as mx
import numpy as np

import accel.operators as ops
from accel.core.timing import summarize
from accel.operators import cuda

__all__ = ["WARPS", "builtin_warp", "devices", "time_executor", "markdown_table",
           "warp_table"]

logger = logging.getLogger(__name__)


def builtin_warp(data: mx.sym.Symbol, flow: mx.sym.Symbol, name: str) -> mx.sym.Symbol:
    """The official warp: GridGenerator(transform_type='warp') + BilinearSampler."""
    grid = mx.sym.GridGenerator(data=flow, transform_type="warp", name=name + "_grid")
    return mx.sym.BilinearSampler(data=data, grid=grid, name=name)


# operator name -> symbol builder with the signature of accel.operators.flow_warp
WARPS: Dict[str, Callable[..., mx.sym.Symbol]] = {
    "GridGenerator+BilinearSampler": builtin_warp,
    "fused flow_warp": ops.flow_warp,
}


def devices() -> List[mx.Context]:
    """CPU, plus GPU 0 where both MXNet and CuPy can use it."""
    found = [mx.cpu()]
    if mx.context.num_gpus() > 0:
        try:
            cuda.import_cupy()
            found.append(mx.gpu(0))
        except ImportError as err:
            logger.warning("skipping the GPU: %s", err)
    return found


def time_executor(build: Callable[..., mx.sym.Symbol], shape: Tuple[int, ...],
                  ctx: mx.Context, repeat: int) -> Tuple[float, float]:
    """Median seconds of (forward, forward + backward) of one warp at feature shape."""
    rng = np.random.default_rng(0)
    flow_shape = (shape[0], 2) + shape[2:]
    sym = build(mx.sym.var("data"), mx.sym.var("flow"), name="warp")
    exe = sym.simple_bind(ctx, data=shape, flow=flow_shape)
    exe.arg_dict["data"][:] = rng.standard_normal(shape).astype(np.float32)
    # flows of a few pixels, some leaving the image, like DFF's on res5
    exe.arg_dict["flow"][:] = (rng.standard_normal(flow_shape) * 3).astype(np.float32)
    grad = mx.nd.ones(shape, ctx=ctx)

    def forward():
        exe.forward(is_train=False)
        exe.outputs[0].wait_to_read()

    def forward_backward():
        exe.forward(is_train=True)
        exe.backward(grad)
        for g in exe.grad_arrays:
            g.wait_to_read()

    result = []
    for step in (forward, forward_backward):
        step()  # warm-up: allocation, CuPy compilation
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        result.append(summarize(times)["p50"])
    return result[0], result[1]


def markdown_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """Rows of cells as a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)

def warp_table(sizes: Sequence[Tuple[int, ...]], repeat: int = 5) -> str:
    """Markdown table of both warps at each feature size on each device (`devices`); ratio =
    built-in time / fused time (above 1: fused is faster)."""
    rows = []
    for ctx in devices():
        for shape in sizes:
            times = {name: time_executor(build, shape, ctx, repeat)
                     for name, build in WARPS.items()}
            (b_fwd, b_both), (f_fwd, f_both) = times.values()
            rows.append([str(ctx), "x".join(map(str, shape)),
                         f"{b_fwd * 1e3:.1f}", f"{f_fwd * 1e3:.1f}", f"{b_fwd / f_fwd:.2f}",
                         f"{b_both * 1e3:.1f}", f"{f_both * 1e3:.1f}",
                         f"{b_both / f_both:.2f}"])
            logger.info("done %s %s", ctx, shape)
    return markdown_table(rows, ["device", "features", "builtin fwd ms", "fused fwd ms",
                                 "fwd ratio", "builtin fwd+bwd ms", "fused fwd+bwd ms",
                                 "fwd+bwd ratio"])
