"""The compiled CPU kernels of the flow warp and the deformable convolution, over NumPy.

Both run the bilinear gather of accel.cython.deform_cy (OpenMP over channels): the warp
(`warp_forward_cpu`) and the deformable convolution (`deformable_conv_numpy`: the sampling
table computed once per group, tap and pixel, the column buffer filled in parallel, one
BLAS product). MXNet's CPU custom operators (accel.operators.custom_ops, .deformable) and the
PyTorch runtime on the CPU (accel.runtime.torch_ops) share them. No MXNet here; `available()`
says whether the Cython extension is built (not on the MXNet-free install).
"""
import numpy as np

from accel.operators import reference

__all__ = ["available", "warp_forward_cpu", "deformable_conv_numpy"]


def _kernels():
    from accel.cython import deform_cy
    return deform_cy


def available() -> bool:
    """Whether the compiled kernels import (built by init.sh, for this NumPy)."""
    try:
        _kernels()
    except (ImportError, ValueError):  # not built, or built against another NumPy
        return False
    return True


def warp_forward_cpu(feat: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``reference.warp_numpy`` computed by the compiled gather (OpenMP over channels) for
    float32; other dtypes (the float64 gradient checks) by ``reference.warp_numpy``."""
    if feat.dtype != np.float32:
        return reference.warp_numpy(feat, flow)
    deform_cy = _kernels()
    reference.check_warp_shapes(feat.shape, flow.shape)
    feat = np.ascontiguousarray(feat)
    out = np.empty(feat.shape, np.float32)
    for n in range(feat.shape[0]):
        idx, wts = deform_cy.warp_table(np.ascontiguousarray(flow[n], np.float32))
        deform_cy.im2col(feat[n].reshape(feat.shape[1], -1), idx, wts,
                         out[n].reshape(feat.shape[1], -1))
    return out


def deformable_conv_numpy(data: np.ndarray, offset: np.ndarray, weight: np.ndarray,
                          stride: int, pad: int, dilate: int) -> np.ndarray:
    """Deformable 3x3 (or kh x kw) convolution, no bias: (N, C, H, W) -> (N, O, Ho, Wo).

    offset: (N, 2 * G * kh * kw, Ho, Wo) as MXNet's operator takes it (dy, dx per tap).
    """
    deform_cy = _kernels()
    n, c, h, w = data.shape
    out_c, in_c, kh, kw = weight.shape
    if in_c != c:
        raise ValueError("weight expects %d input channels, data has %d (data %s, weight %s)"
                         % (in_c, c, data.shape, weight.shape))
    groups = offset.shape[1] // (2 * kh * kw)
    if groups * 2 * kh * kw != offset.shape[1] or c % groups:
        raise ValueError("offset has %d channels: expected 2 * groups * %d with groups "
                         "dividing %d channels" % (offset.shape[1], kh * kw, c))
    ho, wo = offset.shape[2:]
    wmat = np.ascontiguousarray(weight.reshape(out_c, c * kh * kw), dtype=np.float32)
    columns = np.empty((c * kh * kw, ho * wo), dtype=np.float32)
    out = np.empty((n, out_c, ho, wo), dtype=np.float32)
    for i in range(n):
        idx, wts = deform_cy.sampling_table(np.ascontiguousarray(offset[i], np.float32),
                                            h, w, kh, kw, stride, pad, dilate)
        deform_cy.im2col(np.ascontiguousarray(data[i].reshape(c, h * w), np.float32),
                         idx, wts, columns)
        np.matmul(wmat, columns, out=out[i].reshape(out_c, ho * wo))
    return out
