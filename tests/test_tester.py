"""The tester: mIoU against a hand-computed confusion matrix, per-offset results, timing
fields, bounded prefetching, and clear errors for bad frames and labels."""
import json
import math
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from accel.core.inference import FrameResult
from accel.core.tester import (BackgroundWorker, Prefetcher, TimingRecorder, evaluate_snippets,
                               segment_video, select_snippets, summarize, timing_table,
                               write_results)
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
    res = evaluate_snippets(ds, ds.test_snippets(1), lambda data: next(calls).astype(np.uint8))
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


def test_timing_fields_are_present_and_positive():
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
    for stats in (net["all"], net["key"], net["non_key"], t["load"]):
        assert 0 < stats["p50"] <= stats["p99"] <= stats["max"]
        assert stats["mean"] >= 0.002 * (stats is not t["load"])
    assert t["wall_per_frame"] > 0
    table = timing_table(t)
    assert "network, non-key frames" in table and "read + preprocess" in table


def test_warmup_leaves_out_the_first_frames_and_each_graphs_first_run():
    rec = TimingRecorder(warmup=2)
    for is_key, net in [(True, 9.0), (True, 8.0), (True, 1.0), (False, 7.0), (False, 2.0)]:
        rec.frame(is_key, net, 0.5)
    rec.finish()
    rep = rec.report()
    assert rep["warmup_frames"] == 3
    assert rep["network"]["key"]["mean"] == 1.0 and rep["network"]["non_key"]["mean"] == 2.0
    s = summarize([1.0, 2.0, 3.0, 10.0])
    assert s["p50"] == np.percentile([1, 2, 3, 10], 50) and s["max"] == 10.0
    assert math.isnan(summarize([])["mean"])


def test_plain_class_maps_are_timed_and_keyed_by_interval():
    ds = _camvid()
    res = evaluate_snippets(ds, select_snippets(ds.test_snippets(2), 4),
                            lambda data: np.zeros(data.shape[2:], np.uint8), interval=2)
    assert res["timing"]["network"]["non_key"]["frames"] > 0
    assert res["IoU"]["Sky"] > 0 and res["IoU"]["Road"] == 0


def test_prefetch_queue_is_bounded():
    produced, depth = [0], 3
    lock = threading.Lock()

    def items():
        for i in range(40):
            with lock:
                produced[0] += 1
            yield i

    ahead = []
    with Prefetcher(items(), lambda x: x * 2, depth=depth) as stream:
        for consumed, (item, value, seconds) in enumerate(stream, 1):
            assert value == 2 * item and seconds >= 0
            time.sleep(0.002)
            with lock:
                ahead.append(produced[0] - consumed)
    assert max(ahead) <= depth + 2   # the queue, one in hand, one being made
    assert produced[0] == 40


def test_errors_in_threads_reach_the_caller():
    def bad(x):
        raise ValueError(f"frame {x} unreadable")

    with pytest.raises(ValueError, match="frame 0 unreadable"):
        with Prefetcher([0, 1], bad) as stream:
            list(stream)
    worker = BackgroundWorker()
    worker.submit(lambda: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        worker.close()


def test_unreadable_frame_and_mismatched_label_are_clear_errors(tmp_path):
    labels = [np.zeros((4, 6)), np.ones((4, 6))]
    _write_segnet(tmp_path / "a", labels)
    (tmp_path / "a" / "val" / "seq_00002.png").write_bytes(b"not a png")
    ds = SegNetVideo(str(tmp_path / "a"), "val", key_interval=1, num_classes=3, scales=(4, 6))
    with pytest.raises(ValueError, match="seq_00002.png"):
        evaluate_snippets(ds, ds.test_snippets(1), lambda d: np.zeros(d.shape[2:], np.uint8))
    _write_segnet(tmp_path / "b", [np.zeros((4, 6)), np.zeros((5, 6))],
                  images=[np.zeros((4, 6, 3), np.uint8)] * 2)
    ds = SegNetVideo(str(tmp_path / "b"), "val", key_interval=1, num_classes=3, scales=(4, 6))
    with pytest.raises(ValueError, match="labels must match their images") as err:
        evaluate_snippets(ds, ds.test_snippets(1), lambda d: np.zeros(d.shape[2:], np.uint8))
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


def test_results_json_is_strict_and_atomic(tmp_path):
    path = tmp_path / "m.json"
    write_results(str(path), {"mIoU": float("nan"), "n": np.int64(3), "x": [np.float32(0.5)]})
    assert json.loads(path.read_text()) == {"mIoU": None, "n": 3, "x": [0.5]}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_cityscapes_labels_apart_from_frames(tmp_path):
    """--label-root: labels under one root, sequence frames under another."""
    import argparse

    from accel.core.tester import demo_data, open_dataset

    frames, labels = tmp_path / "frames", tmp_path / "labels"
    seq = frames / "leftImg8bit_sequence" / "val" / "lindau"
    gt = labels / "gtFine" / "val" / "lindau"
    seq.mkdir(parents=True)
    gt.mkdir(parents=True)
    for f in (17, 18, 19):
        cv2.imwrite(str(seq / f"lindau_000000_{f:06d}_leftImg8bit.png"),
                    np.full((32, 64, 3), 10 * f, np.uint8))
    cv2.imwrite(str(gt / "lindau_000000_000019_gtFine_labelTrainIds.png"),
                np.full((32, 64), 13, np.uint8))
    args = argparse.Namespace(dataset="cityscapes", data_root=str(frames),
                              label_root=str(labels), split=None, scales=[32, 64], stride=None)
    ds = open_dataset(demo_data(args))
    (snippet,) = ds.test_snippets(3)
    assert [Path(p).parent for p in snippet.frames] == [seq] * 3
    res = evaluate_snippets(ds, [snippet], lambda d: np.full(d.shape[2:], 13, np.uint8),
                            interval=3)
    assert res["IoU"]["car"] == 1.0 and res["by_distance"][2]["frames"] == 1
    args.dataset = "camvid"
    with pytest.raises(ValueError, match="only Cityscapes"):
        open_dataset(demo_data(args))
