"""Label math (accel.utils.segmath): NumPy fallback and compiled Cython kernels agree.

The NumPy path is tested whether or not the Cython module is built; only the comparisons
with the compiled kernels skip without it (a missing build must not hide a NumPy failure)."""
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label, name2label

from accel.dataset.camvid import CAMVID_PALETTE, CAMVID_VOID
from accel.dataset.base import train_id_codec
from accel.dataset.cityscapes import PALETTE as CS_PALETTE, label_id_codec
from accel.utils import segmath
from accel.utils.image import read_label

REPO = Path(__file__).resolve().parents[1]
SAMPLE_LABELS = sorted((REPO / "sample_data" / "camvid" / "valannot").glob("*.png"))

try:
    from accel.cython import segmath_cy as cy
except ImportError:  # not built: the NumPy tests below still run
    cy = None
needs_cython = pytest.mark.skipif(cy is None, reason="Cython utilities not built (run sh init.sh)")


def test_backend_is_cython_exactly_when_built():
    assert segmath.BACKEND == ("numpy" if cy is None else "cython")


def _random_labels(rng, shape=(97, 131), high=256):
    return rng.integers(0, high, size=shape, dtype=np.uint8)


def _lut_case():
    rng = np.random.default_rng(0)
    lut = rng.integers(0, 256, size=256, dtype=np.uint8)
    lab = _random_labels(rng)
    return lab, lut, np.array([[lut[v] for v in row] for row in lab], dtype=np.uint8)


@needs_cython
def test_compiled_lut_apply_known_answer():
    lab, lut, expected = _lut_case()
    np.testing.assert_array_equal(cy.lut_apply(lab, lut), expected)


def test_lut_apply_agrees_random_and_real():
    lab, lut, expected = _lut_case()
    np.testing.assert_array_equal(segmath.numpy_lut_apply(lab, lut), expected)
    np.testing.assert_array_equal(segmath.lut_apply(lab, lut), expected)
    codec = train_id_codec(11, [CAMVID_VOID])
    for path in SAMPLE_LABELS[:3]:
        real = read_label(str(path))
        out = segmath.lut_apply(real, codec.lut)
        np.testing.assert_array_equal(out, segmath.numpy_lut_apply(real, codec.lut))
        assert ((out == 255) == (real == CAMVID_VOID)).all()
        assert (out[real < CAMVID_VOID] == real[real < CAMVID_VOID]).all()


def test_cityscapes_label_ids_follow_cityscapesscripts():
    codec = label_id_codec()
    ids = np.array([[i for i in range(34)]], dtype=np.uint8)
    out = segmath.lut_apply(ids, codec.lut)
    for i in range(34):
        train = id2label[i].trainId
        assert out[0, i] == (train if 0 <= train < 255 else 255)
    assert codec.valid[:34].all() and not codec.valid[34:].any()


def test_lut_rejects_bad_inputs():
    with pytest.raises(ValueError, match="uint8"):
        segmath.lut_apply(np.zeros((3, 3), np.int32), np.zeros(256, np.uint8))
    with pytest.raises(ValueError, match="256"):
        segmath.lut_apply(np.zeros((3, 3), np.uint8), np.zeros(255, np.uint8))


def _brute_confusion(pred, label, n, ignore=255):
    conf = np.zeros((n, n), np.int64)
    for p, l in zip(pred.ravel(), label.ravel()):
        if l != ignore:
            conf[l, p] += 1
    return conf


@pytest.mark.parametrize("fn", [segmath.numpy_accumulate_confusion, segmath.accumulate_confusion])
def test_confusion_known_answer_and_accumulation(fn):
    rng = np.random.default_rng(1)
    n = 11
    label = rng.integers(0, n, size=(40, 50)).astype(np.uint8)
    label[rng.random(label.shape) < 0.2] = 255
    pred = rng.integers(0, n, size=(40, 50))
    conf = np.zeros((n, n), np.int64)
    fn(conf, pred, label)
    expected = _brute_confusion(pred, label, n)
    np.testing.assert_array_equal(conf, expected)
    assert conf.sum() == (label != 255).sum()
    fn(conf, pred, label)  # accumulates
    np.testing.assert_array_equal(conf, 2 * expected)


@pytest.mark.parametrize("fn", [segmath.numpy_accumulate_confusion, segmath.accumulate_confusion])
@pytest.mark.parametrize("bad", ["label", "pred"])
def test_confusion_out_of_range_raises_and_leaves_totals(fn, bad):
    n = 4
    label = np.array([[0, 1, 255, 3]], np.uint8)
    pred = np.array([[0, 1, 2, 3]])
    if bad == "label":
        label[0, 3] = 7
    else:
        pred[0, 1] = 9
    conf = np.ones((n, n), np.int64)
    with pytest.raises(ValueError, match="pixel .* expected both in \\[0, 4\\)"):
        fn(conf, pred, label)
    assert (conf == 1).all()


def test_confusion_agrees_on_real_labels():
    rng = np.random.default_rng(2)
    codec = train_id_codec(11, [CAMVID_VOID])
    a, b = np.zeros((11, 11), np.int64), np.zeros((11, 11), np.int64)
    for path in SAMPLE_LABELS:
        label = segmath.lut_apply(read_label(str(path)), codec.lut)
        pred = np.where(rng.random(label.shape) < 0.7, np.minimum(label, 10),
                        rng.integers(0, 11, size=label.shape))
        segmath.numpy_accumulate_confusion(a, pred, label)
        cy_conf = b.copy()
        segmath.accumulate_confusion(b, pred, label)
        assert (b - cy_conf).sum() == (label != 255).sum()
    np.testing.assert_array_equal(a, b)


@needs_cython
def test_compiled_colorize_agrees_with_numpy():
    rng = np.random.default_rng(3)
    lab = _random_labels(rng, high=20)
    lab[0, 0] = 255
    np.testing.assert_array_equal(cy.colorize(lab, CS_PALETTE), segmath.numpy_colorize(lab, CS_PALETTE))


def test_colorize_agrees_and_uses_palettes():
    rng = np.random.default_rng(3)
    lab = _random_labels(rng, high=20)
    lab[0, 0] = 255
    rgb = segmath.colorize(lab, CS_PALETTE)
    assert rgb.shape == lab.shape + (3,) and (rgb[0, 0] == 0).all()
    road = name2label["road"]
    assert tuple(rgb[lab == road.trainId][0]) == road.color
    bgr = segmath.colorize(lab, CS_PALETTE, bgr=True)
    np.testing.assert_array_equal(bgr, rgb[..., ::-1])
    real = read_label(str(SAMPLE_LABELS[0]))
    out = segmath.colorize(real, CAMVID_PALETTE)
    np.testing.assert_array_equal(out, segmath.numpy_colorize(real, CAMVID_PALETTE))
    assert (out[real == CAMVID_VOID] == 0).all()
    assert (out[real == 3] == CAMVID_PALETTE[3]).all()


def test_cityscapes_palette_from_cityscapesscripts():
    train = sorted((l for l in id2label.values() if 0 <= l.trainId < 255), key=lambda l: l.trainId)
    assert [tuple(c) for c in CS_PALETTE] == [l.color for l in train]
    assert len(CS_PALETTE) == 19


def test_public_functions_fall_back_to_numpy(monkeypatch):
    """Without the compiled module the public API gives the same answers through NumPy."""
    rng = np.random.default_rng(4)
    lab = _random_labels(rng, high=19)
    pred = rng.integers(0, 19, size=lab.shape)
    lut = label_id_codec().lut
    monkeypatch.setattr(segmath, "_cy", None)
    np.testing.assert_array_equal(segmath.lut_apply(lab, lut), lut[lab])
    np.testing.assert_array_equal(segmath.colorize(lab, CS_PALETTE), CS_PALETTE[lab])
    conf = np.zeros((19, 19), np.int64)
    segmath.accumulate_confusion(conf, pred, lab)
    np.testing.assert_array_equal(conf, _brute_confusion(pred, lab, 19))
