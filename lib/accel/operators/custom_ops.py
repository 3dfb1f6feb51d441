"""The MXNet custom operator of the flow warp, and its symbol builder.

On CPU contexts the warp's forward runs a compiled kernel (``accel.cython.deform_cy``, the
bilinear gather the fast deformable convolution uses) and everything else the NumPy
implementation (``reference``, which the tests hold both to); on GPU contexts the
CUDA kernels of ``operator_cxx/`` through CuPy (``cuda``), exchanging buffers with MXNet
by DLPack. A GPU context without CuPy fails when the operator is created, never falls
back to the CPU.
"""
from typing import Any, Callable, Dict, List, Sequence

import mxnet as mx
import numpy as np

from accel.operators import cuda, reference
from accel.operators.cpu import warp_forward_cpu

__all__ = ["flow_warp"]

FLOW_WARP_OP = "accel_flow_warp"


# Implementation of each computation per MXNet device type.
_IMPLEMENTATIONS: Dict[str, Dict[str, Callable]] = {
    "cpu": {
        "warp_forward": warp_forward_cpu,
        "warp_backward": reference.warp_backward_numpy,
    },
    "gpu": {
        "warp_forward": cuda.warp_forward_cuda,
        "warp_backward": cuda.warp_backward_cuda,
    },
}


def _check_context(ctx: mx.Context) -> None:
    if ctx.device_type not in _IMPLEMENTATIONS:
        raise ValueError(f"accel operators run on cpu or gpu contexts, not {ctx}")
    if ctx.device_type == "gpu":
        cuda.import_cupy()


def _run(computation: str, inputs: Sequence[mx.nd.NDArray], **params: Any) -> List[Any]:
    """Run one computation on the device of inputs.

    Returns NumPy arrays on CPU (``_store`` copies them straight into MXNet's buffers) and
    NDArrays sharing CuPy's memory on GPU.
    """
    ctx = inputs[0].context
    function = _IMPLEMENTATIONS[ctx.device_type][computation]
    if ctx.device_type == "cpu":
        results = function(*(x.asnumpy() for x in inputs), **params)
        return list(results) if isinstance(results, tuple) else [results]
    cupy = cuda.import_cupy()
    with cupy.cuda.Device(ctx.device_id):
        # to_dlpack_for_read waits until MXNet has finished writing the input
        arrays = [cupy.from_dlpack(x.to_dlpack_for_read()) for x in inputs]
        results = function(*arrays, **params)
        results = results if isinstance(results, tuple) else (results,)
        # MXNet reads the results on its own stream: finish ours first
        cupy.cuda.get_current_stream().synchronize()
        return [mx.nd.from_dlpack(r.toDlpack()) for r in results]


def _store(op: mx.operator.CustomOp, dst: mx.nd.NDArray, req: str, src: Any) -> None:
    """op.assign(dst, req, src), copying a NumPy src into dst without a temporary NDArray."""
    if isinstance(src, np.ndarray):
        if req in ("write", "inplace"):
            dst[:] = src
            return
        src = mx.nd.array(src, ctx=dst.context, dtype=src.dtype)
    op.assign(dst, req, src)


def _all_known(shapes: Sequence[Sequence[int]]) -> bool:
    """Whether every shape is fully known (MXNet marks unknown dimensions with 0)."""
    return all(len(s) > 0 and all(d > 0 for d in s) for s in shapes)


class FlowWarp(mx.operator.CustomOp):
    """Bilinear warp of data (N, C, H, W) by flow (N, 2, H, W) in pixels (x first)."""

    def forward(self, is_train, req, in_data, out_data, aux):
        (out,) = _run("warp_forward", in_data)
        _store(self, out_data[0], req[0], out)

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        grad_feat, grad_flow = _run("warp_backward", [in_data[0], in_data[1], out_grad[0]])
        _store(self, in_grad[0], req[0], grad_feat)
        _store(self, in_grad[1], req[1], grad_flow)


@mx.operator.register(FLOW_WARP_OP)
class FlowWarpProp(mx.operator.CustomOpProp):
    """Shapes and types of FlowWarp: two inputs of one dtype, the output of data's shape and
    dtype; the backward needs the inputs and the output gradient but not the output."""

    def __init__(self):
        super().__init__(need_top_grad=True)

    def list_arguments(self):
        return ["data", "flow"]

    def list_outputs(self):
        return ["output"]

    def infer_shape(self, in_shape):
        if _all_known(in_shape):
            reference.check_warp_shapes(in_shape[0], in_shape[1])
        return in_shape, [in_shape[0]], []

    def infer_type(self, in_type):
        return [in_type[0], in_type[0]], [in_type[0]], []

    def declare_backward_dependency(self, out_grad, in_data, out_data):
        return list(out_grad) + list(in_data)

    def create_operator(self, ctx, in_shapes, in_dtypes):
        _check_context(ctx)
        return FlowWarp()


def flow_warp(data: mx.sym.Symbol, flow: mx.sym.Symbol, name: str) -> mx.sym.Symbol:
    """Fused GridGenerator(transform_type='warp') + BilinearSampler: warp data by flow.

    data (N, C, H, W); flow (N, 2, H, W) in pixels of data, channel 0 = x displacement;
    output pixel (y, x) samples data at (y + flow_y, x + flow_x), zeros outside.
    """
    return mx.sym.Custom(data=data, flow=flow, op_type=FLOW_WARP_OP, name=name)

