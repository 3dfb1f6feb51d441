# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Deformable-convolution im2col for the CPU, parallel over channels (OpenMP).

Same sampling as MXNet's DeformableConvolution (Dai et al. 2017, DCN v1): tap (i, j) of output
pixel (y, x) reads the input at (y*s - p + i*d + dy, x*s - p + j*d + dx) bilinearly; a position
outside [0, H) x [0, W) gives 0, and one past the last row or column is clamped onto it.
A NaN or infinite offset or flow samples nothing (0), as a position outside the map: it is
never cast to an index (a diverged network gives NaN offsets; issue #25.9).
The bilinear weights depend only on (deformable group, tap, pixel), so they are computed once
and shared by the group's channels; the convolution is then one matrix product.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport floor

ctypedef cnp.float32_t f32


cdef struct Neighbours:
    int lower       # the row (column) at or before the sample
    int upper       # the one after it
    float frac      # the weight of `upper`


cdef inline Neighbours _neighbours(float pos, int size) noexcept nogil:
    """The two rows (or columns) a sample at `pos` in [0, size) reads; on the last one the
    sample is clamped onto it (MXNet's DCN v1 rule)."""
    cdef Neighbours n
    n.lower = <int>floor(pos)
    if n.lower >= size - 1:
        n.lower = size - 1
        n.upper = n.lower
        n.frac = 0
    else:
        n.upper = n.lower + 1
        n.frac = pos - n.lower
    return n


def sampling_table(const f32[:, :, ::1] offset, int height, int width, int kh, int kw,
                   int stride, int pad, int dilate):
    """Corner indices (G, K, P, 4) int32 and weights (G, K, P, 4) float32 for one image.

    offset: (G * 2 * K, Hout, Wout), channel 2k = dy and 2k+1 = dx of tap k = i * kw + j.
    """
    cdef int kk = kh * kw
    cdef int groups = offset.shape[0] // (2 * kk)
    cdef int hout = offset.shape[1], wout = offset.shape[2]
    cdef int npix = hout * wout
    idx_arr = np.zeros((groups, kk, npix, 4), dtype=np.int32)
    wts_arr = np.zeros((groups, kk, npix, 4), dtype=np.float32)
    cdef int[:, :, :, ::1] idx = idx_arr
    cdef f32[:, :, :, ::1] wts = wts_arr
    cdef int g, k, p, y, x
    cdef float h_im, w_im
    cdef Neighbours ny, nx
    for g in prange(groups * kk, nogil=True):
        k = g % kk
        for p in range(npix):
            y = p // wout
            x = p % wout
            h_im = y * stride - pad + (k // kw) * dilate + offset[(g // kk) * 2 * kk + 2 * k, y, x]
            w_im = x * stride - pad + (k % kw) * dilate + offset[(g // kk) * 2 * kk + 2 * k + 1, y, x]
            # Written so that NaN fails the test (every comparison with NaN is false).
            if not (h_im >= 0 and w_im >= 0 and h_im < height and w_im < width):
                continue
            ny = _neighbours(h_im, height)
            nx = _neighbours(w_im, width)
            idx[g // kk, k, p, 0] = ny.lower * width + nx.lower
            wts[g // kk, k, p, 0] = (1 - ny.frac) * (1 - nx.frac)
            idx[g // kk, k, p, 1] = ny.lower * width + nx.upper
            wts[g // kk, k, p, 1] = (1 - ny.frac) * nx.frac
            idx[g // kk, k, p, 2] = ny.upper * width + nx.lower
            wts[g // kk, k, p, 2] = ny.frac * (1 - nx.frac)
            idx[g // kk, k, p, 3] = ny.upper * width + nx.upper
            wts[g // kk, k, p, 3] = ny.frac * nx.frac
    return idx_arr, wts_arr


def im2col(const f32[:, ::1] data, const int[:, :, :, ::1] idx, const f32[:, :, :, ::1] wts,
           f32[:, ::1] columns):
    """columns[c * K + k, p] = sum_q wts[g, k, p, q] * data[c, idx[g, k, p, q]], g = group of c.

    data: (C, H * W); columns: (C * K, P), written in place.
    """
    cdef int channels = data.shape[0]
    cdef int groups = idx.shape[0], kk = idx.shape[1], npix = idx.shape[2]
    cdef int per_group = channels // groups
    cdef int c, g, k, p
    for c in prange(channels, nogil=True, schedule="static"):
        g = c // per_group
        for k in range(kk):
            for p in range(npix):
                columns[c * kk + k, p] = (
                    wts[g, k, p, 0] * data[c, idx[g, k, p, 0]]
                    + wts[g, k, p, 1] * data[c, idx[g, k, p, 1]]
                    + wts[g, k, p, 2] * data[c, idx[g, k, p, 2]]
                    + wts[g, k, p, 3] * data[c, idx[g, k, p, 3]])


def warp_table(const f32[:, :, ::1] flow):
    """Corner indices (1, 1, P, 4) int32 and weights (1, 1, P, 4) float32 of a flow warp, for
    `im2col` with one group and one tap: output pixel (y, x) reads (y + flow[1], x + flow[0])
    bilinearly and each corner outside the map weighs 0 (MXNet's BilinearSampler, the
    convention of accel.operators.reference.warp_numpy).
    """
    cdef int height = flow.shape[1], width = flow.shape[2]
    cdef int npix = height * width
    idx_arr = np.zeros((1, 1, npix, 4), dtype=np.int32)
    wts_arr = np.zeros((1, 1, npix, 4), dtype=np.float32)
    cdef int[:, :, :, ::1] idx = idx_arr
    cdef f32[:, :, :, ::1] wts = wts_arr
    cdef int p, y, x, y0, x0, q, yi, xi
    cdef float ys, xs, ly, lx, wy, wx
    for p in prange(npix, nogil=True, schedule="static"):
        y = p // width
        x = p % width
        ys = y + flow[1, y, x]
        xs = x + flow[0, y, x]
        # Every corner outside the map (and NaN, inf: never cast to an index): weight 0.
        if not (ys > -1 and xs > -1 and ys < height and xs < width):
            continue
        y0 = <int>floor(ys)
        x0 = <int>floor(xs)
        ly = ys - y0
        lx = xs - x0
        for q in range(4):
            yi = y0 + q // 2
            xi = x0 + q % 2
            if yi < 0 or yi >= height or xi < 0 or xi >= width:
                continue
            wy = ly if q // 2 else 1 - ly
            wx = lx if q % 2 else 1 - lx
            idx[0, 0, p, q] = yi * width + xi
            wts[0, 0, p, q] = wy * wx
    return idx_arr, wts_arr
