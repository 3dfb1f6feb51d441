"""The evaluation loops: mIoU against a hand-computed confusion matrix, per-offset results,
timing fields, and clear errors for bad frames and labels."""
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from accel.core.inference import FrameResult
from accel.core.tester import evaluate_snippets, segment_video, select_snippets
from accel.core.timing import timing_table
from accel.dataset import CamVidVideo, SegNetVideo

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "camvid"


class FakeSegmenter:
    """Keyframe schedule of the real segmenter; predicts class `index % classes` everywhere."""

    def __init__(self, interval, classes=11, delay=0.001):
        self.interval, self.classes, self.delay = interval, classes, delay
        self.index = 0
        self.resets = 0

    def reset(self):
        self.index = 0
        self.resets += 1

    def step(self, data):
        t0 = time.perf_counter()
        time.sleep(self.delay)
        pred = np.full(data.shape[2:], self.index % self.classes, np.uint8)
        is_key = self.index % self.interval == 0
        self.index += 1
        return FrameResult(pred, is_key, time.perf_counter() - t0)


def _constant(fn):
    """A segmenter step predicting fn(data) on every frame (all keyframes)."""
    def step(data):
        t0 = time.perf_counter()
        pred = np.asarray(fn(data), np.uint8)
        return FrameResult(pred, True, time.perf_counter() - t0)
    return step


def _camvid(**kw):
    return CamVidVideo(str(SAMPLE), "val", key_interval=1, scales=(64, 96), stride=32,
                       check_frames=False, **kw)


def _write_segnet(root, labels, images=None, split="val"):
    """A SegNet-layout video: frames seq_0000{i}.png with the given label maps."""
    os.makedirs(root / split, exist_ok=True)
    os.makedirs(root / (split + "annot"), exist_ok=True)
    for i, lab in enumerate(labels):
        name = "seq_%05d.png" % (i + 1)
        img = images[i] if images is not None else np.full(lab.shape + (3,), 40 * i, np.uint8)
        cv2.imwrite(str(root / split / name), img)
        cv2.imwrite(str(root / (split + "annot") / name), lab.astype(np.uint8))


def test_miou_equals_a_hand_computed_confusion_matrix(tmp_path):
    labels = [np.array([[0, 0, 1], [1, 2, 255]]), np.array([[2, 2, 2], [0, 1, 255]])]
    preds = [np.array([[0, 1, 1], [1, 2, 2]]), np.array([[2, 2, 0], [0, 0, 1]])]
    _write_segnet(tmp_path, labels)
    ds = SegNetVideo(str(tmp_path), "val", key_interval=1, num_classes=3, scales=(2, 3))
    calls = iter(preds)
    res = evaluate_snippets(ds, ds.test_snippets(1), _constant(lambda data: next(calls)))
    # Rows = label, columns = prediction, pixels labelled 255 skipped:
    #   frame 1: 0->0, 0->1, 1->1, 1->1, 2->2      frame 2: 2->2, 2->2, 2->0, 0->0, 1->0
    #   class 0: TP 2, FN 1 (0->1), FP 2 (2->0, 1->0)   IoU 2/5
    #   class 1: TP 2, FN 1 (1->0), FP 1 (0->1)         IoU 2/4
    #   class 2: TP 3, FN 1 (2->0), FP 0                IoU 3/4
    assert res["IoU"] == pytest.approx({"class0": 2 / 5, "class1": 2 / 4, "class2": 3 / 4})
    assert res["mIoU"] == pytest.approx((2 / 5 + 2 / 4 + 3 / 4) / 3)
    assert res["pixel_acc"] == pytest.approx(7 / 10)
    assert res["frames"] == 2 and res["pixels"] == 10


@pytest.mark.parametrize("avg", [False, True])
def test_per_offset_results_cover_every_offset(avg):
    ds = _camvid()
    interval = 4
    seg = FakeSegmenter(interval)
    snippets = ds.test_snippets(interval, avg=avg)
    res = evaluate_snippets(ds, snippets, seg.step, seg.reset, interval=interval)
    n = len(ds.all_items)
    assert sorted(res["by_distance"]) == list(range(interval))
    if avg:
        # Each labelled frame at position p is scored once at every distance d <= p.
        assert [res["by_distance"][d]["frames"] for d in range(interval)] == \
            [n - d for d in range(interval)]
    else:
        # Worst case: distance interval-1, except the first frames of the segment.
        assert res["by_distance"][interval - 1]["frames"] == n - (interval - 1)
        assert sum(r["frames"] for r in res["by_distance"].values()) == n
    assert res["frames"] == sum(r["frames"] for r in res["by_distance"].values())
    assert seg.resets == len(snippets)
    # The fake predicts class (index in snippet) everywhere: at distance d the prediction
    # is class d, so the per-distance IoU of class d is its share of the valid pixels > 0.
    for d, r in res["by_distance"].items():
        assert r["IoU"][ds.class_names[d]] > 0


def test_timing_fields_count_the_frames_and_hold_the_network_time():
    ds = _camvid()
    seg = FakeSegmenter(3, delay=0.002)
    snippets = select_snippets(ds.test_snippets(3), 5)
    assert len({s.item.name for s in snippets}) == 5
    res = evaluate_snippets(ds, snippets, seg.step, seg.reset, interval=3)
    t = res["timing"]
    total = sum(len(s.frames) for s in snippets)
    assert t["frames"] == total
    net = t["network"]
    assert net["all"]["frames"] == total - t["warmup_frames"]
    assert net["key"]["frames"] + net["non_key"]["frames"] == net["all"]["frames"]
    assert net["key"]["frames"] > 0 and net["non_key"]["frames"] > 0
    # Every segmented frame sleeps 2 ms inside the network timer.
    for stats in (net["all"], net["key"], net["non_key"]):
        assert 0.002 <= stats["p50"] <= stats["p99"] <= stats["max"]
        assert stats["mean"] >= 0.002
    assert t["load"]["p50"] <= t["load"]["p99"] <= t["load"]["max"]
    assert t["wall_per_frame"] >= 0.002
    table = timing_table(t)
    assert "network, non-key frames" in table and "read + preprocess" in table


def test_unreadable_frame_and_mismatched_label_are_clear_errors(tmp_path):
    labels = [np.zeros((4, 6)), np.ones((4, 6))]
    _write_segnet(tmp_path / "a", labels)
    (tmp_path / "a" / "val" / "seq_00002.png").write_bytes(b"not a png")
    ds = SegNetVideo(str(tmp_path / "a"), "val", key_interval=1, num_classes=3, scales=(4, 6))
    with pytest.raises(ValueError, match="seq_00002.png"):
        evaluate_snippets(ds, ds.test_snippets(1), _constant(lambda d: np.zeros(d.shape[2:])))
    _write_segnet(tmp_path / "b", [np.zeros((4, 6)), np.zeros((5, 6))],
                  images=[np.zeros((4, 6, 3), np.uint8)] * 2)
    ds = SegNetVideo(str(tmp_path / "b"), "val", key_interval=1, num_classes=3, scales=(4, 6))
    with pytest.raises(ValueError, match="labels must match their images") as err:
        evaluate_snippets(ds, ds.test_snippets(1), _constant(lambda d: np.zeros(d.shape[2:])))
    assert "seq_00002.png" in str(err.value) and "6x5" in str(err.value)


def test_segment_video_counts_frames_and_calls_the_sink():
    frames = [cv2.imread(str(p)) for p in sorted((SAMPLE / "val").glob("*.png"))[:6]]
    seen = []
    seg = FakeSegmenter(3)
    res = segment_video(iter(frames), seg.step, seg.reset, [103.06, 115.9, 123.15], [64, 96],
                        32, interval=3, consistency=True,
                        sink=lambda name, img, pred, extras, label, key: seen.append(
                            (name, img.shape, pred.shape, key)))
    assert res["frames"] == 6 and len(seen) == 6
    assert seen[0] == ("frame_000000", (64, 85, 3), (64, 85), True)
    assert [s[3] for s in seen] == [True, False, False, True, False, False]
    assert res["consistency"]["pairs"] == 5


def test_labels_are_scored_at_their_own_resolution_after_cropping_the_padding(tmp_path):
    """The prediction is right inside the image and wrong (class 2) in the padding, and the
    network works at half the label's size: only cropping to the image and a nearest
    resize to the label's size give mIoU 1 (no crop, or one row or column too many, let
    class 2 into the label's last rows or columns)."""
    label = np.zeros((12, 20), np.uint8)
    label[:, 10:] = 1
    _write_segnet(tmp_path, [label])
    ds = SegNetVideo(str(tmp_path), "val", key_interval=1, num_classes=3, scales=(6, 10),
                     stride=32)

    def predict(data):
        assert data.shape[2:] == (32, 32)   # the 6 x 10 image padded to the stride
        pred = np.full((32, 32), 2)
        pred[:6, :5], pred[:6, 5:10] = 0, 1
        return pred

    res = evaluate_snippets(ds, ds.test_snippets(1), _constant(predict))
    assert res["mIoU"] == 1.0 and res["pixel_acc"] == 1.0
    assert res["pixels"] == 240


def test_only_the_network_is_inside_the_network_timer():
    """Reading and writing 30 ms per frame, the network 2 ms: the network time stays ~2 ms,
    on the threaded path and inline."""
    ds = _camvid()
    snippets = select_snippets(ds.test_snippets(1), 4)

    class SlowReads(CamVidVideo):
        def load_label(self, item):
            time.sleep(0.03)
            return super().load_label(item)

    slow = SlowReads(str(SAMPLE), "val", key_interval=1, scales=(64, 96), stride=32,
                     check_frames=False)

    def sink(*args):
        time.sleep(0.03)

    for threaded in (True, False):
        seg = FakeSegmenter(1, delay=0.002)
        res = evaluate_snippets(slow, snippets, seg.step, seg.reset, sink=sink,
                                threaded=threaded, warmup=0)
        t = res["timing"]
        assert t["network"]["all"]["max"] < 0.02, threaded
        assert t["load"]["mean"] >= 0.03 and t["write"]["mean"] >= 0.03, threaded
