"""NumPy implementation of the flow warp, forward and backward.

They are the CPU path of the MXNet custom operators and the references the CUDA kernels in
``operator_cxx/`` are tested against. This module must not import MXNet: the GPU check
runs it on machines that have CuPy but no MXNet. SciPy is imported only by the warp
functions that need it, so that the shape checks import on the MXNet-free PyTorch install
(accel.runtime.torch_ops), which has no SciPy.

Conventions (shared with ``operator_cxx/*.cu``):

- Flow warp: ``feat`` is ``(N, C, H, W)``, ``flow`` is ``(N, 2, H, W)`` in feature pixels,
  channel 0 = x (width) displacement, channel 1 = y. Output pixel ``(y, x)`` samples
  ``feat`` bilinearly at ``(y + flow_y, x + flow_x)``; neighbours outside the image
  contribute zero. This is ``GridGenerator(transform_type='warp')`` followed by
  ``BilinearSampler`` in MXNet 1.9.1 (align-corners normalisation), computed without the
  round trip through the normalised grid.
"""
from typing import Tuple

import numpy as np

__all__ = ["check_shape", "check_warp_shapes", "warp_numpy", "warp_backward_numpy"]


def check_warp_shapes(feat_shape: Tuple[int, ...], flow_shape: Tuple[int, ...]) -> None:
    """Raise ValueError unless feat is (N, C, H, W) and flow is (N, 2, H, W)."""
    feat_shape, flow_shape = tuple(feat_shape), tuple(flow_shape)
    ok = (len(feat_shape) == 4 and len(flow_shape) == 4 and flow_shape[1] == 2
          and feat_shape[0] == flow_shape[0] and feat_shape[2:] == flow_shape[2:])
    if not ok:
        raise ValueError(f"flow warp expects data (N, C, H, W) and flow (N, 2, H, W) with the "
                         f"same N, H, W; got data {feat_shape} and flow {flow_shape}")


def check_shape(what: str, expected: Tuple[int, ...], got: Tuple[int, ...]) -> None:
    """Raise ValueError naming both shapes unless got == expected."""
    if tuple(got) != tuple(expected):
        raise ValueError(f"{what} must have shape {tuple(expected)}, got {tuple(got)}")


def _warp_matrices(flow: np.ndarray, shape_hw: Tuple[int, int]):
    """Per batch item, sparse matrices of the warp and of its derivative in the position.

    ``sample`` is (H*W, H*W): row ``q`` holds the four bilinear weights with which output
    pixel ``q`` reads input pixels (zero for neighbours outside the image), so that a
    warped channel is ``sample @ channel``. ``slope`` is (2*H*W, H*W): the derivatives of
    those weights with respect to the sampling x (first H*W rows) and y (last H*W rows).
    """
    import scipy.sparse  # here, not at the top: see the module docstring

    height, width = shape_hw
    pixels = height * width
    dtype = flow.dtype
    xs = np.arange(width, dtype=dtype)[None, None, :] + flow[:, 0]
    ys = np.arange(height, dtype=dtype)[None, :, None] + flow[:, 1]
    x0 = np.floor(xs)
    y0 = np.floor(ys)
    wx1, wy1 = xs - x0, ys - y0
    wx0, wy0 = 1 - wx1, 1 - wy1
    x0 = x0.astype(np.int64)
    y0 = y0.astype(np.int64)
    rows = np.tile(np.arange(pixels), 4)
    # (row offset, col offset, weight in y, weight in x, d weight_x / dx, d weight_y / dy)
    corners = ((0, 0, wy0, wx0, -1, -1), (0, 1, wy0, wx1, 1, -1),
               (1, 0, wy1, wx0, -1, 1), (1, 1, wy1, wx1, 1, 1))
    mats = []
    for n in range(flow.shape[0]):
        cols, value, slope_x, slope_y = [], [], [], []
        for oy, ox, wy, wx, sx, sy in corners:
            yi, xi = y0[n] + oy, x0[n] + ox
            inside = ((yi >= 0) & (yi < height) & (xi >= 0) & (xi < width)).ravel()
            cols.append((np.clip(yi, 0, height - 1) * width + np.clip(xi, 0, width - 1)).ravel())
            value.append(np.where(inside, (wy[n] * wx[n]).ravel(), 0))
            slope_x.append(np.where(inside, sx * wy[n].ravel(), 0))
            slope_y.append(np.where(inside, sy * wx[n].ravel(), 0))
        cols_all = np.concatenate(cols)
        # duplicate (row, col) pairs are summed, which only happens for zero weights
        sample = scipy.sparse.csr_matrix((np.concatenate(value).astype(dtype),
                                          (rows, cols_all)), shape=(pixels, pixels))
        slope = scipy.sparse.csr_matrix(
            (np.concatenate(slope_x + slope_y).astype(dtype),
             (np.concatenate([rows, rows + pixels]), np.tile(cols_all, 2))),
            shape=(2 * pixels, pixels))
        mats.append((sample, slope))
    return mats


# The loops below go channel by channel: a sparse matrix times one contiguous channel
# keeps NCHW memory order, where one product with all channels would need two transposes
# of the feature map that cost more than the products (measured at 2048 x 64 x 128).


def warp_numpy(feat: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Warp feat (N, C, H, W) by flow (N, 2, H, W) in pixels; returns (N, C, H, W)."""
    check_warp_shapes(feat.shape, flow.shape)
    n_batch, channels, height, width = feat.shape
    flow = flow.astype(feat.dtype, copy=False)
    out = np.empty(feat.shape, dtype=feat.dtype)
    for n, (sample, _) in enumerate(_warp_matrices(flow, (height, width))):
        f = feat[n].reshape(channels, -1)
        o = out[n].reshape(channels, -1)
        for c in range(channels):
            o[c] = sample @ f[c]
    return out


def warp_backward_numpy(feat: np.ndarray, flow: np.ndarray,
                        grad_out: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Gradients (d feat (N, C, H, W), d flow (N, 2, H, W)) of sum(grad_out * warp)."""
    check_warp_shapes(feat.shape, flow.shape)
    check_shape("flow warp output gradient", feat.shape, grad_out.shape)
    n_batch, channels, height, width = feat.shape
    flow = flow.astype(feat.dtype, copy=False)
    grad_feat = np.empty(feat.shape, dtype=feat.dtype)
    grad_flow = np.zeros((n_batch, 2, height * width), dtype=feat.dtype)
    for n, (sample, slope) in enumerate(_warp_matrices(flow, (height, width))):
        scatter = sample.T.tocsr()
        g = grad_out[n].reshape(channels, -1)
        f = feat[n].reshape(channels, -1)
        gf = grad_feat[n].reshape(channels, -1)
        for c in range(channels):
            gf[c] = scatter @ g[c]
            grad_flow[n] += (slope @ f[c]).reshape(2, -1) * g[c]
    return grad_feat, grad_flow.reshape(n_batch, 2, height, width)
