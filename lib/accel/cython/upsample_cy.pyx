# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Separable upsampling of class scores fused with the per-pixel argmax (OpenMP over rows).

The fast path's heads stop at stride 16; the label map needs, per output pixel, only the
class with the largest upsampled score. Each output row is a weighted sum of a few rows of
the column-upsampled scores (the filter spans `taps` input rows), so the full-resolution
score volume is never stored.
"""
from cython.parallel cimport prange
from libc.stdlib cimport free, malloc

ctypedef float f32


def upsample_argmax(const f32[:, :, ::1] columns, const int[:, ::1] row_index,
                    const f32[:, ::1] row_weight, const f32[::1] bias,
                    unsigned char[:, ::1] labels):
    """labels[y, x] = argmax_c (sum_t row_weight[y, t] * columns[c, row_index[y, t], x] + bias[c]).

    columns: (C, h, W) scores already upsampled along x; row_index / row_weight: (H, T) the
    input rows and weights of each output row; bias: (C,); labels: (H, W) uint8, written in
    place. The first class wins ties (as NumPy's argmax).
    """
    cdef int num_classes = columns.shape[0], width = columns.shape[2]
    cdef int height = labels.shape[0], taps = row_index.shape[1]
    cdef int y, c, t, x, r
    cdef f32 w, b
    cdef f32 *row
    cdef f32 *best
    if labels.shape[1] != width or row_index.shape[0] != height or bias.shape[0] != num_classes:
        raise ValueError("upsample_argmax: inconsistent shapes")
    if num_classes > 255:
        raise ValueError("upsample_argmax: at most 255 classes fit a uint8 label map")
    for y in prange(height, nogil=True, schedule="static"):
        row = <f32 *> malloc(2 * width * sizeof(f32))
        best = row + width
        for c in range(num_classes):
            b = bias[c]
            for x in range(width):
                row[x] = b
            for t in range(taps):
                w = row_weight[y, t]
                if w != 0:
                    r = row_index[y, t]
                    for x in range(width):
                        row[x] = row[x] + w * columns[c, r, x]
            if c == 0:
                for x in range(width):
                    best[x] = row[x]
                    labels[y, x] = 0
            else:
                for x in range(width):
                    if row[x] > best[x]:
                        best[x] = row[x]
                        labels[y, x] = c
        free(row)
