"""CUDA flow warp: the kernels of ``operator_cxx/`` run through CuPy.

Functions here take and return CuPy arrays. CuPy is imported on first use, so this module
imports on machines without it; like ``reference``, it never imports MXNet. Each ``.cu``
file is compiled once per process (``cupy.RawModule``, whose on-disk cache also spares
later processes the compile).
"""
import functools
import logging
import math
from pathlib import Path
from typing import Any, Tuple

from accel.operators.reference import check_shape, check_warp_shapes

__all__ = ["cuda_source_dir", "import_cupy", "warp_forward_cuda", "warp_backward_cuda"]

log = logging.getLogger(__name__)

# kernel templates defined in each source file
_KERNELS = {
    "flow_warp.cu": ("flow_warp_forward", "flow_warp_backward"),
}
_CTYPES = {"float32": "float", "float64": "double"}
_THREADS = 256
_MAX_BLOCKS = 65535 * 16  # the kernels use grid-stride loops, so any cap is correct
# Channels one backward thread of the warp handles: trades atomics on grad_flow against
# parallelism. 16 is an untuned first guess: no GPU was available when it was written;
# time it with experiments/benchmark_warp.py on a GPU before relying on it.
WARP_BACKWARD_CHANNELS_PER_THREAD = 16


def cuda_source_dir() -> Path:
    """The repository's operator_cxx/ directory (lib/accel/operators/ -> repo root)."""
    path = Path(__file__).resolve().parents[3] / "operator_cxx"
    if not path.is_dir():
        raise FileNotFoundError(f"CUDA sources not found: expected the directory {path} "
                                f"(operator_cxx/ at the repository root)")
    return path


def import_cupy() -> Any:
    """Import CuPy, or raise ImportError saying how the GPU install provides it."""
    try:
        import cupy
    except ImportError as err:
        raise ImportError("the accel GPU operators need CuPy, which is not installed; "
                          "`sh init.sh --gpu` installs it (for PyTorch's CUDA; `--mxnet-gpu`: "
                          "cupy-cuda11x)") from err
    return cupy


@functools.lru_cache(maxsize=None)
def _module(source: str) -> Any:
    cupy = import_cupy()
    path = cuda_source_dir() / source
    log.info("compiling %s with CuPy %s", path, cupy.__version__)
    code = path.read_text()
    names = [f"{kernel}<{ctype}>" for kernel in _KERNELS[source] for ctype in _CTYPES.values()]
    return cupy.RawModule(code=code, options=("-std=c++11",), name_expressions=names)


def _kernel(source: str, kernel: str, dtype: Any) -> Any:
    ctype = _CTYPES.get(str(dtype))
    if ctype is None:
        raise TypeError(f"{source}: {kernel} supports float32 and float64, got {dtype}")
    return _module(source).get_function(f"{kernel}<{ctype}>")


def _launch(kernel: Any, total: int, args: Tuple) -> None:
    blocks = max(1, min(math.ceil(total / _THREADS), _MAX_BLOCKS))
    kernel((blocks,), (_THREADS,), args)


def _prepare(*arrays: Any) -> Tuple:
    """Contiguous copies (where needed) of arrays that must share one dtype."""
    cupy = import_cupy()
    dtypes = {str(a.dtype) for a in arrays}
    if len(dtypes) != 1:
        raise TypeError(f"operator inputs must share one dtype, got {sorted(dtypes)}")
    return tuple(cupy.ascontiguousarray(a) for a in arrays)


def warp_forward_cuda(feat: Any, flow: Any, out: Any = None) -> Any:
    """Warp feat (N, C, H, W) by flow (N, 2, H, W) in pixels on the GPU, into out if given.

    out: a C-contiguous array of feat's shape and dtype (e.g. a PyTorch tensor's memory seen
    through DLPack, so that its owner allocates it); a new CuPy array when None.
    """
    check_warp_shapes(feat.shape, flow.shape)
    feat, flow = _prepare(feat, flow)
    if out is None:
        out = import_cupy().empty_like(feat)
    elif out.shape != feat.shape or out.dtype != feat.dtype or not out.flags.c_contiguous:
        raise ValueError(f"flow warp out must be a C-contiguous {feat.dtype} array of shape "
                         f"{feat.shape}, got {out.dtype} {out.shape} "
                         f"(C-contiguous: {out.flags.c_contiguous})")
    n, c, h, w = feat.shape
    _launch(_kernel("flow_warp.cu", "flow_warp_forward", feat.dtype), feat.size,
            (feat, flow, out, *_ints(n, c, h, w)))
    return out


def warp_backward_cuda(feat: Any, flow: Any, grad_out: Any) -> Tuple[Any, Any]:
    """Gradients (d feat, d flow) of sum(grad_out * warp(feat, flow)) on the GPU."""
    check_warp_shapes(feat.shape, flow.shape)
    check_shape("flow warp output gradient", feat.shape, grad_out.shape)
    cupy = import_cupy()
    feat, flow, grad_out = _prepare(feat, flow, grad_out)
    grad_feat = cupy.zeros_like(feat)
    grad_flow = cupy.zeros_like(flow)
    n, c, h, w = feat.shape
    per_thread = WARP_BACKWARD_CHANNELS_PER_THREAD
    total = n * math.ceil(c / per_thread) * h * w
    _launch(_kernel("flow_warp.cu", "flow_warp_backward", feat.dtype), total,
            (feat, flow, grad_out, grad_feat, grad_flow, *_ints(n, c, h, w, per_thread)))
    return grad_feat, grad_flow


def _ints(*values: int) -> Tuple:
    return tuple(import_cupy().int32(v) for v in values)

