"""Running a segmenter over labelled test snippets or a plain video, with honest timing.

Evaluation (`evaluate_snippets`): each snippet (see `LabelledVideoDataset.test_snippets`)
starts on a keyframe and ends on a labelled frame, `distance` = its index modulo the key
interval frames after the last keyframe. The labelled frame's prediction is cropped to the
unpadded image, resized (nearest) to the label's own size and scored; results are the
per-class IoU / mIoU over every labelled frame (255 ignored) and the same per distance.

Timing follows the original protocol (DESIGN.md, "Inference"): batch 1, wall clock around
forward + argmax + copy to host (`FrameResult.network_s`), the first `warmup` (2) frames
of the run left out. Reported as mean / p50 / p99 / max for keyframes and non-key frames
separately. Reading + preprocessing (in a background thread, `depth` frames ahead, so
memory stays flat) and writing (a second thread) are timed apart from the network, and the
end-to-end wall time per frame is given beside them. `threaded=False` does both inline
(no overlap, no contention for the cores while the network runs).
"""
import argparse
import contextlib
import json
import logging
import math
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np

from accel.config import get_defaults, parse_gpus
from accel.core.consistency import TemporalConsistency
from accel.core.inference import FrameResult
from accel.core.metrics import SegmentationEvaluator
from accel.dataset import (DATASETS, LabelledVideoDataset, VideoFrames, config_scales,
                           config_split)
from accel.dataset.camvid import CAMVID_CLASSES, CAMVID_PALETTE
from accel.dataset.video import list_frames
from accel.dataset.cityscapes import CLASS_NAMES as CITYSCAPES_CLASSES
from accel.dataset.cityscapes import PALETTE as CITYSCAPES_PALETTE
from accel.utils import image as imutil
from accel.core.trainer import checkpoint_prefix
from accel.utils.checkpoint import CheckpointError, atomic_path, load_checkpoint
from accel.utils.logger import ProgressLogger
from accel.utils.visualize import PredictionWriter

logger = logging.getLogger(__name__)

WARMUP_FRAMES = 2  # the original demo's warm-up


# ----------------------------------------------------------------------------- timing
def summarize(seconds: Sequence[float]) -> Dict[str, float]:
    """{'frames', 'mean', 'p50', 'p99', 'max'} of durations in seconds (NaN when empty)."""
    values = np.asarray(list(seconds), dtype=np.float64)
    if values.size == 0:
        nan = float("nan")
        return {"frames": 0, "mean": nan, "p50": nan, "p99": nan, "max": nan}
    return {"frames": int(values.size), "mean": float(values.mean()),
            "p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99)),
            "max": float(values.max())}


class TimingRecorder:
    """Per-frame durations of one run, without the warm-up frames.

    Warm-up, as the original: the first `warmup` (2) frames of the run. Its two warm-up
    frames were a keyframe and a non-key frame, so each graph's one-time set-up (memory,
    MKL-DNN primitives) fell inside them; here the first keyframe and the first non-key
    frame are also left out wherever they come, so no set-up cost enters the stats.
    The wall clock (end to end, reads and writes included) starts after the first
    `warmup` frames and stops at `finish()`.
    """

    def __init__(self, warmup: int = WARMUP_FRAMES):
        self.warmup = int(warmup)
        self.frames: List[Tuple[bool, float, float, bool]] = []  # is_key, net, load, warm-up
        self.writes: List[Tuple[int, float]] = []                 # (frame index, write_s)
        self._seen = set()
        self._wall_start: Optional[float] = time.perf_counter() if self.warmup == 0 else None
        self._wall_end: Optional[float] = None

    def frame(self, is_key: bool, network_s: float, load_s: float) -> int:
        """Record a segmented frame; returns its index in the run."""
        is_key = bool(is_key)
        warm = len(self.frames) < self.warmup or is_key not in self._seen
        self._seen.add(is_key)
        self.frames.append((is_key, float(network_s), float(load_s), warm))
        if len(self.frames) == self.warmup:
            self._wall_start = time.perf_counter()
        return len(self.frames) - 1

    def write(self, index: int, seconds: float) -> None:
        """Record the time spent writing the outputs of frame `index`."""
        self.writes.append((index, float(seconds)))

    def finish(self) -> None:
        """Stop the wall clock (call after the last write has completed)."""
        self._wall_end = time.perf_counter()

    def report(self) -> Dict[str, Any]:
        """Stats in seconds: network all/key/non_key, load, write, and wall per frame."""
        timed = [f for f in self.frames if not f[3]]
        after = len(self.frames) - self.warmup
        wall = float("nan")
        if after > 0 and self._wall_start is not None and self._wall_end is not None:
            wall = (self._wall_end - self._wall_start) / after
        warm = {i for i, f in enumerate(self.frames) if f[3]}
        return {
            "warmup_frames": len(warm),
            "frames": len(self.frames),
            "network": {"all": summarize(f[1] for f in timed),
                        "key": summarize(f[1] for f in timed if f[0]),
                        "non_key": summarize(f[1] for f in timed if not f[0])},
            "load": summarize(f[2] for f in timed),
            "write": summarize(s for i, s in self.writes if i not in warm),
            "wall_per_frame": wall,
        }


def timing_table(report: Dict[str, Any]) -> str:
    """The timing report as a Markdown table (milliseconds)."""
    rows = [("network, all frames", report["network"]["all"]),
            ("network, keyframes", report["network"]["key"]),
            ("network, non-key frames", report["network"]["non_key"]),
            ("read + preprocess", report["load"]),
            ("write outputs", report["write"])]
    lines = ["| per frame (ms) | frames | mean | p50 | p99 | max |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, s in rows:
        lines.append("| %s | %d | %s | %s | %s | %s |" % (
            name, s["frames"], *(_ms(s[k]) for k in ("mean", "p50", "p99", "max"))))
    lines.append("| end to end (wall / frame) | %d | %s | | | |"
                 % (report["frames"] - min(report["frames"], WARMUP_FRAMES),
                    _ms(report["wall_per_frame"])))
    lines.append("")
    lines.append("Network = forward + argmax + copy to host, batch 1. Warm-up, not counted: "
                 "%d of %d frames (the first %d, and the first run of each graph)."
                 % (report["warmup_frames"], report["frames"], WARMUP_FRAMES))
    return "\n".join(lines)


def _ms(seconds: float) -> str:
    return "-" if seconds is None or not math.isfinite(seconds) else "%.1f" % (1000 * seconds)


# ------------------------------------------------------------------- background threads
_END = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class Prefetcher:
    """Yields (item, load(item), seconds) for each item, computed `depth` items ahead.

    The time covers producing the item (e.g. decoding a video frame inside the iterator)
    and `load`. An exception in the thread is re-raised in the consumer. `threaded=False`
    runs inline. Use as a context manager so an early exit stops the thread.
    """

    def __init__(self, items: Iterable, load: Callable[[Any], Any], depth: int = 4,
                 threaded: bool = True):
        self.items, self.load = items, load
        self.depth, self.threaded = max(1, int(depth)), threaded
        self._stop = threading.Event()
        self._queue: "queue.Queue" = queue.Queue(maxsize=self.depth)
        self._thread: Optional[threading.Thread] = None

    def _produce(self) -> Iterator[Tuple[Any, Any, float]]:
        it = iter(self.items)
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                return
            value = self.load(item)
            yield item, value, time.perf_counter() - t0

    def _run(self) -> None:
        try:
            for entry in self._produce():
                self._put(entry)
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(_Failure(exc))

    def _put(self, entry) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[Tuple[Any, Any, float]]:
        if not self.threaded:
            yield from self._produce()
            return
        self._thread = threading.Thread(target=self._run, name="prefetch", daemon=True)
        self._thread.start()
        while True:
            entry = self._queue.get()
            if entry is _END:
                return
            if isinstance(entry, _Failure):
                raise entry.exc
            yield entry

    def close(self) -> None:
        """Stop the thread (it may be blocked on a full queue)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BackgroundWorker:
    """Runs submitted jobs in submission order on one thread, at most `depth` waiting.

    The first exception stops further jobs and is re-raised by the next `submit` or by
    `close`. `threaded=False` runs each job at once.
    """

    def __init__(self, depth: int = 8, threaded: bool = True):
        self.threaded = threaded
        self._queue: "queue.Queue" = queue.Queue(maxsize=max(1, int(depth)))
        self._error: Optional[BaseException] = None
        self._thread = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is _END:
                return
            if self._error is None:
                try:
                    job()
                except BaseException as exc:  # re-raised in the submitting thread
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def submit(self, job: Callable[[], None]) -> None:
        """Queue `job` (blocks while `depth` jobs wait)."""
        self._raise()
        if self._thread is None:
            job()
        else:
            self._queue.put(job)

    def close(self) -> None:
        """Wait for every queued job; re-raise the first error."""
        if self._thread is not None:
            self._queue.put(_END)
            self._thread.join()
            self._thread = None
        self._raise()

    def __enter__(self) -> "BackgroundWorker":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # the caller's error is the one to see; the worker's, if any, is dropped
            with contextlib.suppress(BaseException):
                self.close()


# ------------------------------------------------------------------------ frames
@dataclass
class LoadedFrame:
    """A frame read and preprocessed for the network."""

    image: np.ndarray            # (h, w, 3) uint8 BGR at network scale, unpadded
    data: np.ndarray             # (1, 3, H, W) float32, padded to the stride
    label: Optional[np.ndarray]  # (H0, W0) uint8 train ids at the label's own size


def prepare_frame(image: np.ndarray, pixel_means: Sequence[float], scales: Sequence[int],
                  stride: int) -> LoadedFrame:
    """Resize by SCALES, subtract means, pad: the original's test preprocessing."""
    h, w, _ = imutil.scaled_size(image.shape[0], image.shape[1], scales)
    small = imutil.resize_image(image, (h, w))
    data = imutil.pad_to_stride(imutil.image_to_tensor(small, pixel_means), stride, 0.0)
    return LoadedFrame(small, data, None)


def prediction_at(pred: np.ndarray, size_hw: Tuple[int, int],
                  net_hw: Tuple[int, int]) -> np.ndarray:
    """Crop a padded prediction to the network-scale image `net_hw`, resize to `size_hw`."""
    crop = pred[:net_hw[0], :net_hw[1]]
    return imutil.resize_label(crop, size_hw)


# A sink receives, on the writer thread: name, image (network scale), pred (same size),
# extras (panel class maps, same size), label (same size or None), is_key.
Sink = Callable[[str, np.ndarray, np.ndarray, Dict[str, np.ndarray], Optional[np.ndarray], bool],
                None]


def select_snippets(snippets: Sequence, num_ex: Optional[int]) -> List:
    """The snippets of the first `num_ex` labelled frames (None or 0: all)."""
    if not num_ex:
        return list(snippets)
    if num_ex < 0:
        raise ValueError(f"num_ex must be >= 0 (0 = all labelled frames), got {num_ex}")
    names: List[str] = []
    for s in snippets:
        if s.item.name not in names:
            names.append(s.item.name)
    keep = set(names[:num_ex])
    return [s for s in snippets if s.item.name in keep]


Step = Callable[[np.ndarray], Any]  # data (1,3,H,W) -> FrameResult, or a bare (H, W) map


def _stepper(step: Step, interval: int) -> Callable[[np.ndarray, int], Any]:
    """Call `step`; a bare class map becomes a FrameResult timed around the call."""
    def run(data: np.ndarray, index: int) -> FrameResult:
        t0 = time.perf_counter()
        out = step(data)
        if isinstance(out, FrameResult):
            return out
        return FrameResult(np.asarray(out), index % interval == 0, time.perf_counter() - t0)
    return run


def evaluate_snippets(dataset, snippets: Sequence, step: Step,
                      reset: Optional[Callable[[], None]] = None, desc: str = "evaluation",
                      interval: int = 1, sink: Optional[Sink] = None, consistency: bool = False,
                      warmup: int = WARMUP_FRAMES, threaded: bool = True,
                      depth: int = 4) -> Dict[str, Any]:
    """Segment every snippet and score its labelled frame; see the module docstring.

    step: a segmenter's `step` (returns a `FrameResult`) or any function returning the
        (H, W) class map of the padded input (then timed around the call, and frame i of a
        snippet counts as a keyframe when i % interval == 0).
    reset: called before each snippet's first frame (the segmenter's `reset`).
    interval: the segmenter's key interval, for the distance of each labelled frame from
        its keyframe.
    sink: gets the labelled frame of each item's longest snippet (so `--avg` draws each
        frame once), on the writer thread.
    Returns {'mIoU', 'IoU', 'pixel_acc', 'frames', 'pixels', 'by_distance': {d: {...}},
    'interval', 'snippets', 'labelled_frames', 'timing', 'consistency' (when asked)}.
    """
    snippets = list(snippets)
    if not snippets:
        raise ValueError(f"{desc}: no test snippets to evaluate")
    if interval < 1:
        raise ValueError(f"{desc}: keyframe interval must be >= 1, got {interval}")
    run = _stepper(step, interval)
    drawn: Dict[str, int] = {}
    for s in snippets:
        drawn[s.item.name] = max(drawn.get(s.item.name, -1), s.label_index)
    jobs = [(si, fi) for si, s in enumerate(snippets) for fi in range(len(s.frames))]

    def load(job: Tuple[int, int]) -> LoadedFrame:
        snip = snippets[job[0]]
        path = snip.frames[job[1]]
        raw = imutil.read_image(path)
        frame = prepare_frame(raw, dataset.pixel_means, dataset.scales, dataset.stride)
        if job[1] == snip.label_index:
            frame.label = dataset.load_label(snip.item)
            if frame.label.shape != raw.shape[:2]:
                raise ValueError(f"label file {snip.item.label} is {frame.label.shape[1]}x"
                                 f"{frame.label.shape[0]} but its image {path} is "
                                 f"{raw.shape[1]}x{raw.shape[0]} (W x H): labels must match "
                                 f"their images")
        return frame

    per_distance: Dict[int, SegmentationEvaluator] = {}
    timing = TimingRecorder(warmup)
    cons = TemporalConsistency() if consistency else None
    progress = ProgressLogger(len(jobs), desc, every=max(1, len(jobs) // 10), logger=logger,
                              unit="frame")
    with BackgroundWorker(threaded=threaded) as worker, \
            Prefetcher(jobs, load, depth, threaded) as frames:
        for (si, fi), frame, load_s in frames:
            snip = snippets[si]
            if fi == 0 and reset is not None:
                reset()
            result = run(frame.data, fi)
            index = timing.frame(result.is_key, result.network_s, load_s)
            progress.update()
            if cons is not None:
                worker.submit(_consistency_job(cons, fi == 0, frame, result))
            if fi != snip.label_index:
                continue
            distance = fi % interval
            if distance not in per_distance:
                per_distance[distance] = SegmentationEvaluator(dataset.num_classes,
                                                               dataset.class_names)
            per_distance[distance].process(
                prediction_at(result.pred, frame.label.shape, frame.image.shape[:2]),
                frame.label)
            if sink is not None and fi == drawn[snip.item.name]:
                worker.submit(_sink_job(sink, timing, index, snip.item.name, frame, result))
    timing.finish()
    overall = SegmentationEvaluator(dataset.num_classes, dataset.class_names)
    for ev in per_distance.values():
        overall.merge(ev)
    out = overall.evaluate()
    out["by_distance"] = {d: per_distance[d].evaluate() for d in sorted(per_distance)}
    out.update(interval=interval, snippets=len(snippets), labelled_frames=len(drawn),
               timing=timing.report())
    if cons is not None:
        out["consistency"] = cons.evaluate()
    logger.info("%s: mIoU %.2f%% over %d labelled frames (%d snippets)", desc,
                100 * out["mIoU"], out["frames"], len(snippets))
    return out


def _consistency_job(cons: TemporalConsistency, first: bool, frame: LoadedFrame, result):
    h, w = frame.image.shape[:2]

    def job() -> None:
        if first:
            cons.reset()
        cons.process(frame.image, result.pred[:h, :w])
    return job


def _sink_job(sink: Sink, timing: TimingRecorder, index: int, name: str, frame: LoadedFrame,
              result):
    h, w = frame.image.shape[:2]

    def job() -> None:
        t0 = time.perf_counter()
        label = None if frame.label is None else imutil.resize_label(frame.label, (h, w))
        extras = {k: v[:h, :w] for k, v in result.extras.items()}
        sink(name, frame.image, result.pred[:h, :w], extras, label, result.is_key)
        timing.write(index, time.perf_counter() - t0)
    return job


def segment_video(frames: Iterable[np.ndarray], step: Step,
                  reset: Optional[Callable[[], None]], pixel_means: Sequence[float],
                  scales: Sequence[int], stride: int, interval: int = 1,
                  sink: Optional[Sink] = None, consistency: bool = False,
                  warmup: int = WARMUP_FRAMES, threaded: bool = True, depth: int = 4,
                  total: int = 0) -> Dict[str, Any]:
    """Segment a stream of (H, W, 3) BGR frames (no labels): timing and consistency.

    `step`, `reset`, `interval` as in `evaluate_snippets`. Frames are decoded and
    preprocessed `depth` ahead in a thread; nothing else is kept, so memory does not grow
    with the video's length.
    """
    if reset is not None:
        reset()
    run = _stepper(step, interval)
    timing = TimingRecorder(warmup)
    cons = TemporalConsistency() if consistency else None
    progress = ProgressLogger(total, "frames", every=50, logger=logger, unit="frame")
    count = 0

    def load(image: np.ndarray) -> LoadedFrame:
        return prepare_frame(image, pixel_means, scales, stride)

    with BackgroundWorker(threaded=threaded) as worker, \
            Prefetcher(frames, load, depth, threaded) as stream:
        for _, frame, load_s in stream:
            result = run(frame.data, count)
            index = timing.frame(result.is_key, result.network_s, load_s)
            if cons is not None:
                worker.submit(_consistency_job(cons, count == 0, frame, result))
            if sink is not None:
                worker.submit(_sink_job(sink, timing, index, "frame_%06d" % count, frame,
                                        result))
            count += 1
            progress.update()
    if count == 0:
        raise ValueError("the video has no readable frames")
    timing.finish()
    out: Dict[str, Any] = {"frames": count, "interval": interval, "timing": timing.report()}
    if cons is not None:
        out["consistency"] = cons.evaluate()
    return out


# ------------------------------------------------------------------------ results
def json_safe(value: Any) -> Any:
    """NaN/inf -> None and NumPy scalars -> Python, recursively (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_results(path: str, data: Any) -> str:
    """Write `data` as indented strict JSON, atomically (temporary file + rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(json_safe(data), f, indent=2, sort_keys=False)
            f.write("\n")
    return path


def write_text(path: str, text: str) -> str:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text if text.endswith("\n") else text + "\n")
    return path


def metrics_table(results: Dict[str, Any]) -> str:
    """mIoU overall and by distance from the keyframe, then per-class IoU (Markdown, %)."""
    lines = ["| keyframe distance | labelled frames | mIoU (%) | pixel acc. (%) |",
             "|---|---:|---:|---:|"]
    for d, r in results["by_distance"].items():
        lines.append("| %s | %d | %s | %s |" % (d, r["frames"], _pct(r["mIoU"]),
                                               _pct(r["pixel_acc"])))
    lines.append("| **all** | %d | **%s** | %s |" % (results["frames"], _pct(results["mIoU"]),
                                                     _pct(results["pixel_acc"])))
    lines += ["", "| class | IoU (%) |", "|---|---:|"]
    lines += ["| %s | %s |" % (name, _pct(v)) for name, v in results["IoU"].items()]
    return "\n".join(lines)


def _pct(value: Optional[float]) -> str:
    return "-" if value is None or not math.isfinite(value) else "%.2f" % (100 * value)


# --------------------------------------------------------------------------- demo runs
# What the demos use for a data set when no --cfg says otherwise. CamVid's 360 rows are
# padded to 384 (stride 32) so the flow network and the ResNet give the same grid.
DEMO_DATA: Dict[str, Dict[str, Any]] = {
    "camvid": {"root": "sample_data/camvid", "split": "val", "scales": [360, 480],
               "stride": 32, "fps": 15.0},
    "cityscapes": {"root": "data/cityscapes", "split": "val", "scales": [1024, 2048],
                   "stride": 0, "fps": 17.0},
}
# Exit status 1 with the message alone (no traceback) for these: bad input, not a bug.
DEMO_ERRORS = (CheckpointError, FileNotFoundError, ValueError, OSError)
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


def repo_path(path: str) -> str:
    """A relative default path as given when it exists here, else under the repository."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    candidate = os.path.join(_REPO_ROOT, path)
    return candidate if os.path.exists(candidate) else path


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for the labelled data, the protocol and the device (demos, table script)."""
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=sorted(DEMO_DATA), default=None,
                      help="data set (default: the --cfg's, else camvid = the bundled clip)")
    data.add_argument("--data-root", default=None,
                      help="data set folder (Cityscapes: holds leftImg8bit_sequence/; CamVid: "
                           "the SegNet layout <split>/ + <split>annot/); default "
                           "sample_data/camvid or data/cityscapes")
    data.add_argument("--label-root", default=None,
                      help="Cityscapes only: folder holding gtFine/ when it is not the data "
                           "root (the original's path_demo_labels)")
    data.add_argument("--split", default=None, help="test split (default: val)")
    data.add_argument("--scales", type=int, nargs=2, metavar=("SHORT", "MAX_LONG"),
                      default=None, help="resize: short side, max long side (default: "
                                         "the data set's native size)")
    data.add_argument("--stride", type=int, default=None,
                      help="pad frames to a multiple of this (default 32 CamVid, 0 Cityscapes)")
    data.add_argument("-e", "--num_ex", type=int, default=None,
                      help="labelled frames to evaluate (default 10, as the original; 0 = all);"
                           " with --video, frames to segment (default all)")
    data.add_argument("--avg", action="store_true",
                      help="average over every keyframe offset instead of the worst case")
    dev = parser.add_mutually_exclusive_group()
    dev.add_argument("--gpu", type=int, default=None, metavar="N", help="run on GPU N")
    dev.add_argument("--cpu", action="store_true",
                     help="run on the CPU (the default when no GPU is present)")
    parser.add_argument("--serial", action="store_true",
                        help="read and write on the main thread (no overlap with the network)")


def add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    """How Accel/DFF run on the CPU: the fast path (default), the official graphs, INT8."""
    speed = parser.add_argument_group("speed (CPU)")
    speed.add_argument("--reference-path", action="store_true",
                       help="run the official graphs as the original demo does (default on "
                            "the CPU: the fast path, same results up to float rounding)")
    speed.add_argument("--int8", default=None, metavar="FOLDER",
                       help="run the keyframe trunk in INT8, calibrated on images of FOLDER "
                            "(e.g. training frames); this changes the accuracy: measure it")
    speed.add_argument("--int8-frames", type=int, default=8, metavar="N",
                       help="calibration images taken evenly from --int8 FOLDER (default 8)")
    speed.add_argument("--int8-scope", choices=("key", "all"), default="key",
                       help="key: the keyframe trunk only (default); all: also the flow "
                            "network and the update branch")


def calibration_frames(folder: str, data: "DemoData", count: int) -> List[np.ndarray]:
    """`count` images spread over `folder`, preprocessed as the demo's frames."""
    if count < 1:
        raise ValueError(f"--int8-frames must be >= 1, got {count}")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--int8 {folder}: not a folder of calibration images")
    try:
        paths = list_frames(folder)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"--int8 {folder}: no .png/.jpg images in it ({err})") from None
    picks = [paths[i] for i in np.linspace(0, len(paths) - 1, min(count, len(paths))).astype(int)]
    frames = [prepare_frame(imutil.read_image(p), data.pixel_means, data.scales,
                            data.stride).data for p in picks]
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise ValueError(f"--int8 {folder}: images give different network input shapes "
                         f"{sorted(shapes)}; use images of one size")
    return frames


def speed_options(args: argparse.Namespace, data: "DemoData", ctx: mx.Context) -> Dict[str, Any]:
    """VideoSegmenter keyword arguments (fast, int8_*) from the speed flags."""
    panels = getattr(args, "panels", False)
    fast = ctx.device_type == "cpu" and not args.reference_path and not panels
    if args.int8 is not None and not fast:
        why = ("--reference-path" if args.reference_path else "--panels" if panels
               else f"the device {ctx}")
        raise ValueError(f"--int8 runs on the fast CPU path, which {why} rules out")
    if panels and ctx.device_type == "cpu" and not args.reference_path:
        logger.info("--panels: running the official graphs (the fast path keeps no "
                    "per-branch scores)")
    calib = (calibration_frames(args.int8, data, args.int8_frames)
             if args.int8 is not None else None)
    return {"fast": fast, "int8_calibration": calib, "int8_scope": args.int8_scope}


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags both demos share: data, video, model, device, outputs, protocol."""
    add_data_arguments(parser)
    parser.add_argument("--video", default=None, metavar="FILE_OR_FOLDER",
                        help="segment a video file (any container OpenCV reads) or a folder "
                             "of frames instead; no labels needed")
    model = parser.add_argument_group("model")
    model.add_argument("--cfg", default=None,
                       help="experiment yaml: its data set, scales and the checkpoint its "
                            "training run writes (epoch TEST.test_epoch)")
    model.add_argument("--model", default=None, metavar="PREFIX",
                       help="checkpoint prefix: loads PREFIX-%%04d.params (epoch --epoch)")
    model.add_argument("--epoch", type=int, default=None, help="checkpoint epoch (default 0)")
    out = parser.add_argument_group("outputs")
    out.add_argument("--output", default=None, metavar="DIR",
                     help="output folder (default output/demo/<method>_<data>_i<interval>)")
    out.add_argument("--panels", action="store_true",
                     help="also write side-by-side panels (input | DFF | update | output | "
                          "ground truth) per frame")
    out.add_argument("--save-frames", action="store_true",
                     help="with --video: also write a coloured map per frame")
    out.add_argument("--no-video", action="store_true", help="do not write the mp4")
    out.add_argument("--fps", type=float, default=None,
                     help="frame rate of the mp4 (default: the source's)")
    out.add_argument("--tile-height", type=int, default=None,
                     help="height of each panel tile in pixels (default: the frame's, at "
                          "most 360)")
    out.add_argument("--consistency", action="store_true",
                     help="measure temporal consistency of consecutive predictions "
                          "(accel.core.consistency)")


def demo_context(args: argparse.Namespace, cfg=None) -> mx.Context:
    """--cpu / --gpu N / the cfg's first GPU / GPU 0 when present, else the CPU."""
    available = mx.context.num_gpus()
    if args.cpu:
        return mx.cpu()
    if args.gpu is not None:
        if args.gpu < 0 or args.gpu >= available:
            raise ValueError(f"--gpu {args.gpu}: this machine has {available} GPU(s); "
                             f"use --cpu or an existing id")
        return mx.gpu(args.gpu)
    if cfg is not None:
        gpus = parse_gpus(cfg.gpus)
        return mx.gpu(gpus[0]) if gpus and gpus[0] < available else mx.cpu()
    return mx.gpu(0) if available else mx.cpu()


@dataclass
class DemoData:
    """Where the demo's frames come from and how they are preprocessed."""

    name: str                       # 'camvid' or 'cityscapes'
    root: str
    label_root: Optional[str]
    split: str
    scales: List[int]
    stride: int
    pixel_means: List[float]
    fps: float
    num_classes: int
    class_names: Tuple[str, ...]
    palette: np.ndarray


_PALETTES = {"camvid": (CAMVID_CLASSES, CAMVID_PALETTE),
             "cityscapes": (CITYSCAPES_CLASSES, CITYSCAPES_PALETTE)}


def demo_data(args: argparse.Namespace, cfg=None) -> DemoData:
    """Data settings from the flags, then the --cfg, then `DEMO_DATA`."""
    cfg_name = str(cfg.dataset.dataset).lower() if cfg is not None else None
    name = args.dataset or cfg_name or "camvid"
    if name not in _PALETTES:
        raise ValueError(f"data set {name!r} (from {args.cfg}): the demo runs on "
                         f"{sorted(_PALETTES)}")
    base = dict(DEMO_DATA[name], pixel_means=list(get_defaults().network.PIXEL_MEANS))
    if cfg is not None and name == cfg_name:
        base.update(root=cfg.dataset.dataset_path, split=config_split(cfg.dataset.test_image_set),
                    scales=config_scales(cfg.SCALES), stride=cfg.network.IMAGE_STRIDE,
                    pixel_means=list(cfg.network.PIXEL_MEANS))
    classes, palette = _PALETTES[name]
    scales = list(args.scales) if args.scales else list(base["scales"])
    stride = base["stride"] if args.stride is None else args.stride
    if min(scales) <= 0 or stride < 0:
        raise ValueError(f"--scales {scales} must be positive and --stride {stride} >= 0")
    return DemoData(name, repo_path(args.data_root or base["root"]), args.label_root,
                    args.split or base["split"], scales, stride, base["pixel_means"],
                    float(base["fps"]), len(classes), tuple(classes), palette)


def open_dataset(data: DemoData) -> LabelledVideoDataset:
    """The labelled test split of `data` (frames are checked when snippets are made)."""
    cls = DATASETS[data.name]
    label_root = data.label_root
    if label_root and os.path.abspath(label_root) != os.path.abspath(data.root):
        if data.name != "cityscapes":
            raise ValueError(f"--label-root {label_root}: only Cityscapes keeps labels apart "
                             f"(gtFine/); {data.name} reads <split>annot/ under --data-root")
        ds = cls(root=label_root, split=data.split, key_interval=1,
                 pixel_means=data.pixel_means, scales=data.scales, stride=data.stride,
                 check_frames=False)
        # Labels were found under the label root; the frames live under the data root.
        moved = [replace(it, segment=tuple(_moved(p, label_root, data.root)
                                           for p in it.segment)) for it in ds.all_items]
        ds.items = ds.all_items = moved
        return ds
    return cls(root=data.root, split=data.split, key_interval=1, pixel_means=data.pixel_means,
               scales=data.scales, stride=data.stride, check_frames=False)


def _moved(path: str, old_root: str, new_root: str) -> str:
    return os.path.join(new_root, os.path.relpath(path, old_root))


def run_demo(args: argparse.Namespace, data: DemoData, step: Step,
             reset: Optional[Callable[[], None]], interval: int, method: str,
             branches: bool, out_dir: str, info: Dict[str, Any]) -> Dict[str, Any]:
    """Run a demo on the labelled split (or --video) and write every output to `out_dir`.

    Writes metrics.json (atomically), timing.md, results.md (evaluation), maps/, panels/
    (--panels) and video.mp4; returns the metrics dict. `info` (model, method, ...) is
    stored in metrics.json.
    """
    if interval < 1:
        raise ValueError(f"--interval must be >= 1, got {interval}")
    os.makedirs(out_dir, exist_ok=True)
    video_src = VideoFrames(args.video, max_frames=args.num_ex or None) if args.video else None
    fps = args.fps or (video_src.fps if video_src is not None and video_src.fps > 0
                       else data.fps)
    writer = PredictionWriter(
        out_dir, data.palette, data.class_names, method, branches=branches and args.panels,
        save_maps=video_src is None or args.save_frames, save_panels=args.panels,
        video=None if args.no_video else os.path.join(out_dir, "video.mp4"), fps=fps,
        tile_height=args.tile_height or None)
    threaded = not args.serial
    try:
        if video_src is not None:
            results = segment_video(video_src, step, reset, data.pixel_means, data.scales,
                                    data.stride, interval, writer, args.consistency,
                                    threaded=threaded, total=len(video_src))
            results["source"] = args.video
        else:
            dataset = open_dataset(data)
            num_ex = 10 if args.num_ex is None else args.num_ex
            snippets = select_snippets(dataset.test_snippets(interval, avg=args.avg), num_ex)
            results = evaluate_snippets(dataset, snippets, step, reset, method, interval,
                                        writer, args.consistency, threaded=threaded)
            results["source"] = f"{data.name} {data.split} ({data.root})"
            results["protocol"] = "average over offsets" if args.avg else "worst case"
    except BaseException:
        writer.abort()
        raise
    results["outputs"] = writer.close()
    results.update(info, method=method, interval=interval, scales=data.scales,
                   stride=data.stride)
    write_results(os.path.join(out_dir, "metrics.json"), results)
    table = timing_table(results["timing"])
    write_text(os.path.join(out_dir, "timing.md"), table)
    text = f"## {method}, interval {interval}: {results['source']}\n\n"
    if video_src is None:
        text += metrics_table(results) + "\n\n"
    if "consistency" in results:
        c = results["consistency"]
        text += ("Temporal consistency %s%% (raw agreement %s%%, %d pairs)\n\n"
                 % (_pct(c["consistency"]), _pct(c["raw_agreement"]), c["pairs"]))
    text += table
    write_text(os.path.join(out_dir, "results.md"), text)
    logger.info("results in %s\n%s", out_dir, text)
    return results


def choose_model(args: argparse.Namespace, cfg, cfg_path: Optional[str], official: str,
                 official_source: str, runner: str) -> Tuple[str, int, str]:
    """(checkpoint prefix, epoch, where the file comes from): --model, else the --cfg's
    training run (epoch TEST.test_epoch unless --epoch), else the official file."""
    if args.model:
        return args.model, args.epoch or 0, "--model"
    if cfg is not None:
        epoch = cfg.TEST.test_epoch if args.epoch is None else args.epoch
        return (checkpoint_prefix(cfg, cfg_path), epoch,
                f"the training run of {cfg_path}: python {runner} --cfg {cfg_path}")
    return repo_path(official), args.epoch or 0, official_source


def load_model(prefix: str, epoch: int, origin: str) -> Tuple[Dict, Dict]:
    """Load `prefix-%04d.params`; a missing file names itself and where it comes from."""
    try:
        return load_checkpoint(prefix, epoch)
    except CheckpointError as err:
        raise CheckpointError(f"{err}\nThis model comes from {origin}.") from None


def default_output_dir(method: str, data: DemoData, interval: int, video: Optional[str],
                       avg: bool = False) -> str:
    """output/demo/<method>_<data set or video name>_i<interval>[_avg]."""
    source = (os.path.splitext(os.path.basename(os.path.normpath(video)))[0] if video
              else f"{data.name}_{data.split}")
    slug = method.lower().replace(" ", "-")
    return os.path.join("output", "demo", f"{slug}_{source}_i{interval}{'_avg' if avg else ''}")


def run_cli(main: Callable[[], Any]) -> None:
    """Entry point of the demo scripts: log to stderr; bad input exits 1 with its message."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        main()
    except DEMO_ERRORS as error:
        logging.getLogger("demo").error("%s", error)
        sys.exit(1)


__all__ = ["BackgroundWorker", "DEMO_DATA", "DEMO_ERRORS", "DemoData", "LoadedFrame",
           "Prefetcher", "TimingRecorder", "WARMUP_FRAMES", "add_data_arguments",
           "add_demo_arguments", "choose_model", "default_output_dir", "demo_context",
           "demo_data", "evaluate_snippets", "json_safe", "load_model", "metrics_table",
           "open_dataset", "prediction_at", "prepare_frame", "repo_path", "run_cli", "run_demo",
           "segment_video", "select_snippets", "summarize", "timing_table", "write_results",
           "write_text"]
