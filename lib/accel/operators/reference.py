"""NumPy implementations of the flow warp and the correlation, forward and backward.

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
- Correlation: ``mx.sym.Correlation`` (FlowNetC). Both inputs are zero-padded by
  ``pad_size``; output ``(N, (2r+1)^2, top_h, top_w)`` with ``r = max_displacement //
  stride2``, ``top_h = ceil((H + 2 pad - 2 border) / stride1)``, ``border =
  max_displacement + (kernel_size - 1) // 2``. Channel ``ty * (2r+1) + tx`` holds the
  displacement ``((ty - r) stride2, (tx - r) stride2)`` (rows, cols) of ``data2`` against
  ``data1``; values are summed over the kernel window and channels and divided by
  ``kernel_size^2 * C``. ``is_multiply=False`` sums ``|a - b|``; its gradient takes
  ``sign(a - b)`` as +1 where ``a == b``, as MXNet does.
"""
from typing import NamedTuple, Tuple

import numpy as np

__all__ = ["check_shape", "check_warp_shapes", "warp_numpy", "warp_backward_numpy",
           "CorrelationGeometry", "correlation_geometry", "correlation_numpy",
           "correlation_backward_numpy"]


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


class CorrelationGeometry(NamedTuple):
    """Derived sizes of a correlation: output grid, displacement radius and normaliser."""

    top_h: int
    top_w: int
    radius: int
    grid: int
    sumelems: int

    def displacement(self, channel: int, stride2: int) -> Tuple[int, int]:
        """(dy, dx) of data2 against data1 for output channel ``channel``."""
        return ((channel // self.grid - self.radius) * stride2,
                (channel % self.grid - self.radius) * stride2)


def correlation_geometry(data_shape: Tuple[int, ...], kernel_size: int, max_displacement: int,
                         stride1: int, stride2: int, pad_size: int) -> CorrelationGeometry:
    """Output geometry of mx.sym.Correlation for inputs of shape data_shape (N, C, H, W)."""
    if len(data_shape) != 4:
        raise ValueError(f"correlation expects (N, C, H, W) inputs, got {tuple(data_shape)}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"correlation kernel_size must be odd and >= 1, got {kernel_size}")
    if stride1 < 1 or stride2 < 1 or max_displacement < 0 or pad_size < 0:
        raise ValueError(f"correlation needs stride1, stride2 >= 1 and max_displacement, "
                         f"pad_size >= 0; got stride1={stride1} stride2={stride2} "
                         f"max_displacement={max_displacement} pad_size={pad_size}")
    _, channels, height, width = data_shape
    border = max_displacement + (kernel_size - 1) // 2
    top_h = -(-(height + 2 * pad_size - 2 * border) // stride1)
    top_w = -(-(width + 2 * pad_size - 2 * border) // stride1)
    if top_h < 1 or top_w < 1:
        raise ValueError(f"correlation input {tuple(data_shape)} is too small for "
                         f"max_displacement={max_displacement}, kernel_size={kernel_size}, "
                         f"pad_size={pad_size} (output would be {top_h}x{top_w})")
    radius = max_displacement // stride2
    return CorrelationGeometry(top_h, top_w, radius, 2 * radius + 1,
                               kernel_size * kernel_size * channels)


def _correlation_windows(geom: CorrelationGeometry, kernel_size: int, max_displacement: int,
                         stride1: int, stride2: int):
    """Yield (channel, slices into padded data1, slices into padded data2).

    Each pair of slices picks, for one displacement and one kernel offset, the element of
    every output position's window in data1 and its displaced partner in data2.
    """
    for channel in range(geom.grid * geom.grid):
        dy, dx = geom.displacement(channel, stride2)
        for ky in range(kernel_size):
            for kx in range(kernel_size):
                y1, x1 = max_displacement + ky, max_displacement + kx
                rows1 = slice(y1, y1 + (geom.top_h - 1) * stride1 + 1, stride1)
                cols1 = slice(x1, x1 + (geom.top_w - 1) * stride1 + 1, stride1)
                rows2 = slice(y1 + dy, y1 + dy + (geom.top_h - 1) * stride1 + 1, stride1)
                cols2 = slice(x1 + dx, x1 + dx + (geom.top_w - 1) * stride1 + 1, stride1)
                yield (channel, (Ellipsis, rows1, cols1), (Ellipsis, rows2, cols2))


def _pad(data: np.ndarray, pad_size: int) -> np.ndarray:
    return np.pad(data, ((0, 0), (0, 0), (pad_size, pad_size), (pad_size, pad_size)))


def correlation_numpy(data1: np.ndarray, data2: np.ndarray, kernel_size: int = 1,
                      max_displacement: int = 1, stride1: int = 1, stride2: int = 1,
                      pad_size: int = 0, is_multiply: bool = True) -> np.ndarray:
    """FlowNetC correlation of data1, data2 (N, C, H, W) -> (N, (2r+1)^2, top_h, top_w)."""
    check_shape("correlation data2 (same as data1)", data1.shape, data2.shape)
    geom = correlation_geometry(data1.shape, kernel_size, max_displacement, stride1, stride2,
                                pad_size)
    pad1, pad2 = _pad(data1, pad_size), _pad(data2, pad_size)
    out = np.zeros((data1.shape[0], geom.grid * geom.grid, geom.top_h, geom.top_w),
                   dtype=data1.dtype)
    for channel, win1, win2 in _correlation_windows(geom, kernel_size, max_displacement,
                                                    stride1, stride2):
        a, b = pad1[win1], pad2[win2]
        if is_multiply:
            out[:, channel] += np.einsum("nchw,nchw->nhw", a, b)
        else:
            out[:, channel] += np.abs(a - b).sum(axis=1)
    out /= geom.sumelems
    return out


def correlation_backward_numpy(data1: np.ndarray, data2: np.ndarray, grad_out: np.ndarray,
                               kernel_size: int = 1, max_displacement: int = 1,
                               stride1: int = 1, stride2: int = 1, pad_size: int = 0,
                               is_multiply: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Gradients (d data1, d data2), both (N, C, H, W), of sum(grad_out * correlation)."""
    check_shape("correlation data2 (same as data1)", data1.shape, data2.shape)
    geom = correlation_geometry(data1.shape, kernel_size, max_displacement, stride1, stride2,
                                pad_size)
    expected = (data1.shape[0], geom.grid * geom.grid, geom.top_h, geom.top_w)
    check_shape("correlation output gradient", expected, grad_out.shape)
    pad1, pad2 = _pad(data1, pad_size), _pad(data2, pad_size)
    grad1, grad2 = np.zeros_like(pad1), np.zeros_like(pad2)
    scaled = grad_out / grad_out.dtype.type(geom.sumelems)
    for channel, win1, win2 in _correlation_windows(geom, kernel_size, max_displacement,
                                                    stride1, stride2):
        g = scaled[:, channel][:, None]
        if is_multiply:
            grad1[win1] += g * pad2[win2]
            grad2[win2] += g * pad1[win1]
        else:
            sign = np.where(pad1[win1] >= pad2[win2], g, -g)
            grad1[win1] += sign
            grad2[win2] -= sign
    height, width = data1.shape[2:]
    crop = (Ellipsis, slice(pad_size, pad_size + height), slice(pad_size, pad_size + width))
    return np.ascontiguousarray(grad1[crop]), np.ascontiguousarray(grad2[crop])
