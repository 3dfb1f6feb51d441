"""The streaming evaluator against a confusion matrix computed by hand."""
import math

import numpy as np
import pytest

from accel.core.metrics import SegmentationEvaluator


def test_miou_equals_hand_computed_confusion():
    label = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 0]])
    ev = SegmentationEvaluator(3, ["a", "b", "c"])
    ev.process(pred, label)
    # Valid pixels (label != 255): (0,0) (0,1) (1,1) (1,1) (2,2) (2,0) (1,0)
    # class 0: TP 1, FP 2 (labels 2 and 1 predicted 0), FN 1 -> 1/4
    # class 1: TP 2, FP 1, FN 1 -> 2/4 ; class 2: TP 1, FP 0, FN 1 -> 1/2
    res = ev.evaluate()
    assert res["IoU"] == pytest.approx({"a": 0.25, "b": 0.5, "c": 0.5})
    assert res["mIoU"] == pytest.approx((0.25 + 0.5 + 0.5) / 3)
    assert res["pixel_acc"] == pytest.approx(4 / 7)
    assert res["pixels"] == 7 and res["frames"] == 1


def test_streaming_equals_one_shot_and_absent_class_is_nan():
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 3, (5, 7)) for _ in range(3)]
    preds = [rng.integers(0, 3, (5, 7)) for _ in range(3)]
    one = SegmentationEvaluator(4)
    one.process(np.concatenate(preds), np.concatenate(labels))
    streamed = SegmentationEvaluator(4)
    for p, l in zip(preds, labels):
        streamed.process(p, l)
    assert np.array_equal(one.confusion, streamed.confusion)
    res = streamed.evaluate()
    assert math.isnan(res["IoU"]["3"])
    assert res["mIoU"] == pytest.approx(np.mean([res["IoU"][c] for c in "012"]))


def test_bad_inputs_are_errors():
    ev = SegmentationEvaluator(3)
    with pytest.raises(ValueError, match="shape"):
        ev.process(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError):
        ev.process(np.zeros((2, 2), int), np.full((2, 2), 7))
    with pytest.raises(ValueError, match="class names"):
        SegmentationEvaluator(3, ["a"])
