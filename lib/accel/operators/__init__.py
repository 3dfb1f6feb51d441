"""The flow warp operator: CUDA kernels through CuPy on GPU, compiled/NumPy on CPU.

``flow_warp`` builds an MXNet symbol (a custom operator registered in ``custom_ops``). It is
loaded on first access so that ``reference`` and ``cuda``, which need neither MXNet nor
(until called) CuPy, import on machines without MXNet. The deformable convolution of the
fast path is ``accel.operators.deformable``.
"""
from typing import Any

from accel.operators.reference import warp_backward_numpy, warp_numpy

__all__ = ["flow_warp", "warp_numpy", "warp_backward_numpy"]

_MXNET_API = ("flow_warp",)


def __getattr__(name: str) -> Any:
    if name in _MXNET_API:
        from accel.operators import custom_ops
        return getattr(custom_ops, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
