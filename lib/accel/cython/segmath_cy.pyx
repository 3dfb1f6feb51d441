# cython: boundscheck=False, wraparound=False, cdivision=True
"""Compiled kernels for label maps: id lookup, confusion-matrix accumulation, colouring.

Same contracts as the NumPy versions in `accel.utils.segmath`, which validates the
arguments (dtypes, shapes, contiguity) before calling in here.
"""
import numpy as np
cimport numpy as cnp

cnp.import_array()


def lut_apply(const cnp.uint8_t[:, ::1] label, const cnp.uint8_t[::1] lut):
    """Return lut[label] for a uint8 (H, W) label map and a 256-entry uint8 table."""
    cdef Py_ssize_t h = label.shape[0], w = label.shape[1], i, j
    out = np.empty((h, w), dtype=np.uint8)
    cdef cnp.uint8_t[:, ::1] o = out
    with nogil:
        for i in range(h):
            for j in range(w):
                o[i, j] = lut[label[i, j]]
    return out


def accumulate_confusion(cnp.int64_t[:, ::1] conf, const cnp.int32_t[::1] pred,
                         const cnp.int32_t[::1] label, int ignore_label):
    """Add (label, pred) pair counts into conf[label, pred]; skip ignore_label.

    Returns -1 when all values are valid (conf updated), else the flat index of the first
    bad pixel (label or prediction outside [0, num_classes)) with conf left unchanged, so
    the caller can raise without having corrupted its running totals.
    """
    cdef Py_ssize_t n = pred.shape[0], k
    cdef int nc = conf.shape[0]
    cdef int l, p
    cdef Py_ssize_t bad = -1
    with nogil:
        for k in range(n):
            l = label[k]
            if l == ignore_label:
                continue
            p = pred[k]
            if l < 0 or l >= nc or p < 0 or p >= nc:
                bad = k
                break
        if bad < 0:
            for k in range(n):
                l = label[k]
                if l != ignore_label:
                    conf[l, pred[k]] += 1
    return bad


def colorize(const cnp.uint8_t[:, ::1] label, const cnp.uint8_t[:, ::1] palette):
    """Return an (H, W, 3) uint8 image, palette[label]; values past the palette are black."""
    cdef Py_ssize_t h = label.shape[0], w = label.shape[1], i, j
    cdef int n = palette.shape[0], v
    out = np.zeros((h, w, 3), dtype=np.uint8)
    cdef cnp.uint8_t[:, :, ::1] o = out
    with nogil:
        for i in range(h):
            for j in range(w):
                v = label[i, j]
                if v < n:
                    o[i, j, 0] = palette[v, 0]
                    o[i, j, 1] = palette[v, 1]
                    o[i, j, 2] = palette[v, 2]
    return out
