"""Flow warp and correlation operators: CUDA kernels through CuPy on GPU, NumPy on CPU.

``flow_warp`` and ``correlation`` build MXNet symbols (custom operators registered in
``custom_ops``). They are loaded on first access so that ``reference`` and ``cuda``, which
need neither MXNet nor (until called) CuPy, import on machines without MXNet.
"""
from typing import Any

from accel.operators.reference import (correlation_backward_numpy, correlation_numpy,
                                       warp_backward_numpy, warp_numpy)

__all__ = ["flow_warp", "correlation", "warp_numpy", "warp_backward_numpy",
           "correlation_numpy", "correlation_backward_numpy"]

_MXNET_API = ("flow_warp", "correlation")


def __getattr__(name: str) -> Any:
    if name in _MXNET_API:
        from accel.operators import custom_ops
        return getattr(custom_ops, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
