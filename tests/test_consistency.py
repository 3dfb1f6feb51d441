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


class _GivenFlow(TemporalConsistency):
    """The metric with known flows instead of DIS: (src, dst) -> flow by frame order."""

    def __init__(self, backward, forward):
        super().__init__()
        self._flows = {"back": backward, "fwd": forward}
        self._calls = 0

    def flow(self, src, dst):
        self._calls += 1
        return self._flows["back" if self._calls % 2 == 1 else "fwd"]


def test_occluded_pixels_are_left_out_by_the_forward_backward_check():
    # An object (class 1, columns 10-19) moves 5 pixels right over a still background
    # (class 0). Predictions are perfect on both frames, so the only disagreement of the
    # warped previous labels is on the 5 columns the object uncovers (10-14): their
    # backward flow is 0 (background) and samples the object in frame t-1, while the forward
    # flow there is +5, so the check fails and those pixels are not scored.
    h, w, shift = 8, 40, 5
    prev = np.zeros((h, w), np.uint8)
    prev[:, 10:20] = 1
    cur = np.zeros((h, w), np.uint8)
    cur[:, 10 + shift:20 + shift] = 1
    back = np.zeros((h, w, 2), np.float32)
    back[:, 10 + shift:20 + shift, 0] = -shift      # frame t -> t-1
    fwd = np.zeros((h, w, 2), np.float32)
    fwd[:, 10:20, 0] = shift                        # frame t-1 -> t
    image = np.zeros((h, w, 3), np.uint8)
    cons = _GivenFlow(back, fwd)
    counts = cons.pair(image, prev, image, cur)
    assert counts["valid"] == h * (w - shift)       # exactly the uncovered columns are out
    assert counts["agree"] == counts["valid"]       # ... and the rest agrees
    assert counts["raw_agree"] == h * (w - 2 * shift)
    cons.process(image, prev)
    assert cons.process(image, cur) == 1.0          # without the check: 35/40 = 0.875
    # A flow error of 0.6 px passes the check (0.36 <= 0.5), 1 px does not (1 > 0.51).
    near = fwd.copy()
    near[:, :5, 0] = 0.6
    near[:, 25:30, 0] = 1.0
    counts = _GivenFlow(back, near).pair(image, prev, image, cur)
    assert counts["valid"] == h * (w - shift - 5)


def test_a_shared_cache_computes_each_pairs_flow_once_with_the_same_scores(monkeypatch):
    (img0, lab0), (img1, lab1) = _shifted_pair(6)
    rng = np.random.default_rng(1)
    other = rng.integers(0, 11, lab1.shape)
    plain, cache = TemporalConsistency(), {}
    first = TemporalConsistency(cache=cache)
    for cons in (plain, first):
        cons.process(img0, lab0, key=(0, 0))
        cons.process(img1, lab1, key=(0, 1))
    assert list(cache) == [(0, 1)] and first.evaluate() == plain.evaluate()

    def no_flow(*args):
        raise AssertionError("flow computed again for a cached pair")
    again = TemporalConsistency(cache=cache)
    monkeypatch.setattr(again, "geometry", no_flow)
    again.process(img0, lab0, key=(0, 0))
    again.process(img1, other, key=(0, 1))      # other predictions, same images
    fresh = TemporalConsistency()
    fresh.process(img0, lab0)
    fresh.process(img1, other)
    assert again.evaluate() == fresh.evaluate()
