"""Label-map arithmetic: id lookup tables, confusion matrices, palette colouring.

Each operation has a NumPy implementation here and a compiled one in
`accel.cython.segmath_cy` (built by init.sh). The public functions use the compiled kernel
when it imports and NumPy otherwise; both give identical results (tests/test_segmath.py).
`BACKEND` says which one is active; `numpy_*` functions are always the NumPy path.
"""
import logging
import numpy as np

logger = logging.getLogger(__name__)

# The label value of ignored pixels (void), as in the original; defined here only.
IGNORE_LABEL = 255

try:
    from accel.cython import segmath_cy as _cy
    BACKEND = "cython"
except (ImportError, ValueError) as _err:  # not built (a checkout without init.sh), or
    # built against another NumPy ABI (ValueError: the MXNet-free install on numpy 2)
    _cy = None
    BACKEND = "numpy"
    logger.debug("accel.cython.segmath_cy not importable (%s); using NumPy label math", _err)
else:
    logger.debug("using compiled Cython label math (accel.cython.segmath_cy)")


def _check_label_u8(label: np.ndarray, what: str) -> np.ndarray:
    label = np.asarray(label)
    if label.ndim != 2 or label.dtype != np.uint8:
        raise ValueError(f"{what}: expected a (H, W) uint8 label map, got shape "
                         f"{label.shape} dtype {label.dtype}")
    return np.ascontiguousarray(label)


def _check_lut(lut: np.ndarray) -> np.ndarray:
    lut = np.asarray(lut)
    if lut.shape != (256,) or lut.dtype != np.uint8:
        raise ValueError(f"lookup table: expected shape (256,) uint8, got {lut.shape} {lut.dtype}")
    return np.ascontiguousarray(lut)


def numpy_lut_apply(label: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Map every pixel v of a uint8 (H, W) label map to lut[v] (NumPy)."""
    return _check_lut(lut)[_check_label_u8(label, "lut_apply")]


def lut_apply(label: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Map every pixel v of a uint8 (H, W) label map to lut[v]; returns uint8 (H, W)."""
    if _cy is None:
        return numpy_lut_apply(label, lut)
    return _cy.lut_apply(_check_label_u8(label, "lut_apply"), _check_lut(lut))


def _confusion_inputs(conf: np.ndarray, pred: np.ndarray, label: np.ndarray):
    conf = np.asarray(conf)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1] or conf.dtype != np.int64:
        raise ValueError(f"confusion matrix: expected square int64, got {conf.shape} {conf.dtype}")
    pred, label = np.asarray(pred), np.asarray(label)
    if pred.shape != label.shape:
        raise ValueError(f"prediction shape {pred.shape} != label shape {label.shape}")
    return (np.ascontiguousarray(pred, dtype=np.int32).ravel(),
            np.ascontiguousarray(label, dtype=np.int32).ravel())


def _raise_bad_pixel(pred: np.ndarray, label: np.ndarray, k: int, num_classes: int,
                     ignore_label: int):
    raise ValueError(f"confusion matrix: pixel {k} has label {label[k]} and prediction "
                     f"{pred[k]}; expected both in [0, {num_classes}) (label {ignore_label} "
                     f"is ignored)")


def numpy_accumulate_confusion(conf: np.ndarray, pred: np.ndarray, label: np.ndarray,
                               ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """Add counts of (label, prediction) pairs into conf[label, pred] in place (NumPy)."""
    p_all, l_all = _confusion_inputs(conf, pred, label)
    n = conf.shape[0]
    keep = l_all != ignore_label
    p, l = p_all[keep], l_all[keep]
    bad = (l < 0) | (l >= n) | (p < 0) | (p >= n)
    if bad.any():
        _raise_bad_pixel(p_all, l_all, int(np.flatnonzero(keep)[np.argmax(bad)]), n,
                         ignore_label)
    conf += np.bincount(l * n + p, minlength=n * n).reshape(n, n)
    return conf


def accumulate_confusion(conf: np.ndarray, pred: np.ndarray, label: np.ndarray,
                         ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """Add counts of (label, prediction) pairs into conf[label, pred] in place; returns conf.

    conf is (C, C) int64 (rows = ground truth); pred and label are integer arrays of the
    same shape; pixels labelled `ignore_label` are skipped; any other value outside
    [0, C) raises ValueError and leaves conf unchanged.
    """
    if _cy is None or not conf.flags.c_contiguous:
        return numpy_accumulate_confusion(conf, pred, label, ignore_label)
    p, l = _confusion_inputs(conf, pred, label)
    bad = _cy.accumulate_confusion(conf, p, l, int(ignore_label))
    if bad >= 0:
        _raise_bad_pixel(p, l, bad, conf.shape[0], ignore_label)
    return conf


def _check_palette(palette: np.ndarray) -> np.ndarray:
    palette = np.asarray(palette)
    if palette.ndim != 2 or palette.shape[1] != 3 or not 0 < palette.shape[0] <= 256:
        raise ValueError(f"palette: expected (N<=256, 3) colours, got shape {palette.shape}")
    return np.ascontiguousarray(palette, dtype=np.uint8)


def numpy_colorize(label: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Colour a uint8 (H, W) label map with an (N, 3) palette; values >= N are black (NumPy)."""
    label, palette = _check_label_u8(label, "colorize"), _check_palette(palette)
    full = np.zeros((256, 3), dtype=np.uint8)
    full[:palette.shape[0]] = palette
    return full[label]


def colorize(label: np.ndarray, palette: np.ndarray, bgr: bool = False) -> np.ndarray:
    """Colour a uint8 (H, W) label map with an (N, 3) RGB palette; values >= N are black.

    Returns (H, W, 3) uint8, RGB, or BGR when `bgr` (for cv2.imwrite).
    """
    if _cy is None:
        out = numpy_colorize(label, palette)
    else:
        out = _cy.colorize(_check_label_u8(label, "colorize"), _check_palette(palette))
    return out[:, :, ::-1].copy() if bgr else out


def values_outside(label: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Return the sorted values present in a uint8 label map that `allowed` (bool[256]) rejects."""
    present = np.flatnonzero(np.bincount(np.asarray(label, dtype=np.uint8).ravel(),
                                         minlength=256))
    return present[~allowed[present]]

