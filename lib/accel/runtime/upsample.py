"""The heads' fixed x16 bilinear upsampling, done on the host and fused with the argmax.

The fast CPU graphs (dff_deeplab/fast_symbol.py) stop at stride-16 scores; when every
`*upsampling_weight` of a checkpoint is the same separable kernel outer(k1, k1) (the
released models' fixed bilinear kernel), upsampling + crop + argmax run here instead.
"""
from typing import Any, Mapping, Optional, Tuple

import numpy as np

from accel.utils.arrays import as_numpy

__all__ = ["bilinear_kernel", "separable_upsampling_filter", "upsampling_matrix",
           "SeparableUpsampler"]


def bilinear_kernel(num_classes: int, kernel: int = 32) -> np.ndarray:
    """The fixed bilinear upsampling filter of the `upsampling` layers, (C, 1, k, k).

    Same construction as FCN's `upsample_filt`: a separable triangle centred on the
    kernel, so Deconvolution(kernel=2f, stride=f) interpolates bilinearly.
    """
    factor = (kernel + 1) // 2
    center = factor - 1 if kernel % 2 == 1 else factor - 0.5
    og = np.arange(kernel, dtype=np.float64)
    filt1d = 1 - np.abs(og - center) / factor
    filt = np.outer(filt1d, filt1d).astype(np.float32)
    return np.tile(filt[None, None], (num_classes, 1, 1, 1))


def separable_upsampling_filter(arg_params: Mapping[str, Any]) -> Optional[np.ndarray]:
    """The 1-D filter k if every `*upsampling_weight` (the heads' fixed x16 kernels, not the
    learned `feat_upsampling`) is outer(k, k) for every class, else None."""
    kernels = [as_numpy(v) for k, v in arg_params.items()
               if k.endswith("upsampling_weight") and not k.endswith("feat_upsampling_weight")]
    if not kernels:
        return None
    first = kernels[0][0, 0].astype(np.float64)
    total = first.sum()
    if total <= 0:
        return None
    k1 = first.sum(axis=1) / np.sqrt(total)
    if not np.allclose(np.outer(k1, k1), first, rtol=0, atol=1e-7):
        return None
    if any(not np.array_equal(kern, np.broadcast_to(kernels[0][0, 0], kern.shape))
           for kern in kernels):
        return None
    return k1.astype(np.float32)


def upsampling_matrix(k1: np.ndarray, n_out: int, n_in: int, stride: int = 16,
                      offset: int = 8) -> np.ndarray:
    """(n_out, n_in) matrix A with A @ s equal, along one axis, to the transposed convolution
    (kernel len(k1), `stride`) of s cropped at `offset` to n_out samples."""
    a = np.zeros((n_out, n_in), np.float32)
    for i in range(n_in):
        for y in range(max(0, stride * i - offset), min(n_out, stride * i - offset + len(k1))):
            a[y, i] = k1[y + offset - stride * i]
    return a


class SeparableUpsampler:
    """The heads' fixed x16 `upsampling` + `croped_score`, for a kernel outer(k1, k1) shared
    by every class, applied on the host to stride-16 scores (C, h, w):
    up(s)_c = R @ s_c @ C with R (H, h), C (w, W) from `upsampling_matrix`.

    `labels` fuses it with the argmax (accel.cython.upsample_cy): each output row mixes a
    few rows of s_c @ C, so the (C, H, W) score volume is never built; `scores` builds it.
    `bias` (C,), when given, is added after upsampling (the score-level fusion's bias).
    """

    def __init__(self, k1: np.ndarray, out_hw: Tuple[int, int], in_hw: Tuple[int, int]):
        from accel.cython import upsample_cy  # the fast path needs the compiled kernels
        self._kernel = upsample_cy.upsample_argmax
        self.out_hw, self.in_hw = tuple(out_hw), tuple(in_hw)
        self.rows = upsampling_matrix(k1, out_hw[0], in_hw[0])
        self.cols = np.ascontiguousarray(upsampling_matrix(k1, out_hw[1], in_hw[1]).T)
        taps = max(1, int((self.rows != 0).sum(axis=1).max()))
        self.row_index = np.zeros((out_hw[0], taps), np.int32)
        self.row_weight = np.zeros((out_hw[0], taps), np.float32)
        for y, row in enumerate(self.rows):
            nz = np.flatnonzero(row)
            self.row_index[y, :nz.size], self.row_weight[y, :nz.size] = nz, row[nz]

    def _columns(self, low: np.ndarray) -> np.ndarray:
        low = np.asarray(low, np.float32)
        if low.ndim != 3 or low.shape[1:] != self.in_hw:
            raise ValueError("expected scores (C, %d, %d), got %s" % (self.in_hw + (low.shape,)))
        c, h, _ = low.shape
        return (low.reshape(c * h, -1) @ self.cols).reshape(c, h, -1)

    @staticmethod
    def _bias(bias, num_classes: int) -> np.ndarray:
        if bias is None:
            return np.zeros(num_classes, np.float32)
        return np.ascontiguousarray(np.asarray(bias, np.float32).reshape(num_classes))

    def scores(self, low: np.ndarray, bias=None) -> np.ndarray:
        """Upsampled scores (C, H, W) float32."""
        cols = self._columns(low)
        out = np.einsum("yh,chx->cyx", self.rows, cols, optimize=True)
        return out + self._bias(bias, low.shape[0])[:, None, None]

    def labels(self, low: np.ndarray, bias=None) -> np.ndarray:
        """argmax over classes of `scores(low, bias)`, (H, W) uint8, computed row by row."""
        cols = self._columns(low)
        labels = np.empty(self.out_hw, np.uint8)
        self._kernel(cols, self.row_index, self.row_weight, self._bias(bias, low.shape[0]),
                     labels)
        return labels
