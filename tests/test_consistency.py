"""Temporal consistency: warping known answers, and scores that separate steady from
flickering predictions on a real frame moved by a known shift."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from accel.core.consistency import TemporalConsistency, warp_labels

FRAME = Path(__file__).resolve().parents[1] / "sample_data" / "camvid" / "val" / "0016E5_07959.png"
LABEL = FRAME.parents[1] / "valannot" / FRAME.name


def test_warp_labels_known_answers():
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    same, inside = warp_labels(labels, np.zeros((3, 4, 2), np.float32))
    assert (same == labels).all() and inside.all()
    flow = np.zeros((3, 4, 2), np.float32)
    flow[..., 0] = 2.0  # every pixel samples two columns to its right
    moved, inside = warp_labels(labels, flow)
    assert (moved[:, :2] == labels[:, 2:]).all()
    assert inside[:, :2].all() and not inside[:, 2:].any()
    with pytest.raises(ValueError, match="does not match"):
        warp_labels(labels, np.zeros((3, 5, 2), np.float32))


def _shifted_pair(shift):
    """A real frame and the same view `shift` pixels to the left (camera panning right)."""
    img = cv2.imread(str(FRAME))[100:300, 60:420]
    lab = cv2.imread(str(LABEL), cv2.IMREAD_UNCHANGED)[100:300, 60:420]
    w = img.shape[1] - shift
    return (img[:, :w], lab[:, :w]), (img[:, shift:shift + w], lab[:, shift:shift + w])


def test_steady_labels_on_moving_video_score_high_and_flicker_scores_low():
    (img0, lab0), (img1, lab1) = _shifted_pair(6)
    cons = TemporalConsistency()
    cons.process(img0, lab0)
    steady = cons.process(img1, lab1)
    result = cons.evaluate()
    assert steady > 0.9
    # Without warping, the 6-pixel motion looks like flicker at every class boundary.
    assert result["raw_agreement"] < steady
    assert 0.5 < result["valid_fraction"] <= 1.0
    rng = np.random.default_rng(0)
    noisy = TemporalConsistency()
    noisy.process(img0, rng.integers(0, 11, lab0.shape))
    flicker = noisy.process(img1, rng.integers(0, 11, lab1.shape))
    assert flicker < 0.2
    assert noisy.evaluate()["flicker"] == pytest.approx(1 - flicker)


def test_identical_frames_are_fully_consistent_and_reset_splits_sequences():
    img = cv2.imread(str(FRAME))
    lab = cv2.imread(str(LABEL), cv2.IMREAD_UNCHANGED)
    cons = TemporalConsistency()
    assert cons.process(img, lab) is None
    assert cons.process(img, lab) == 1.0
    cons.reset()
    assert cons.process(img, lab) is None
    out = cons.evaluate()
    assert out["pairs"] == 1 and out["consistency"] == 1.0 and out["raw_agreement"] == 1.0
    with pytest.raises(ValueError, match="share one size"):
        cons.process(img[:10], lab)
    assert np.isnan(TemporalConsistency().evaluate()["consistency"])
