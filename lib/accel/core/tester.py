"""Running a segmenter over labelled test snippets or a plain video: the evaluation loops.

Evaluation (`evaluate_snippets`): each snippet (see `LabelledVideoDataset.test_snippets`)
starts on a keyframe and ends on a labelled frame, `distance` = its index modulo the key
interval frames after the last keyframe. The labelled frame's prediction is cropped to the
unpadded image, resized (nearest) to the label's own size and scored; results are the
per-class IoU / mIoU over every labelled frame (255 ignored) and the same per distance.

Frames are read and preprocessed in a background thread, `depth` frames ahead (so memory
stays flat), and outputs are written by a second thread (accel.utils.threads); the network
time of each frame is the segmenter's own measurement, recorded by accel.core.timing.
`threaded=False` does both inline (no overlap, no contention for the cores).
"""
import functools
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from accel.core.consistency import TemporalConsistency
from accel.core.inference import FrameResult
from accel.core.metrics import SegmentationEvaluator
from accel.core.timing import WARMUP_FRAMES, TimingRecorder, schedule_stats
from accel.utils import image as imutil
from accel.utils.io import write_json
from accel.utils.progress import Progress
from accel.utils.threads import BackgroundWorker, Prefetcher

logger = logging.getLogger(__name__)

__all__ = ["LoadedFrame", "Sink", "evaluate_snippets", "evaluate_checkpoint", "metrics_table",
           "prediction_at", "prepare_frame", "segment_video", "select_snippets", "format_pct"]


# ------------------------------------------------------------------------ frames
@dataclass
class LoadedFrame:
    """A frame read and preprocessed for the network."""

    image: np.ndarray            # (h, w, 3) uint8 BGR at network scale, unpadded
    data: np.ndarray             # (1, 3, H, W) float32, padded to the stride
    label: Optional[np.ndarray]  # (H0, W0) uint8 train ids at the label's own size
    source_hw: Optional[Tuple[int, int]] = None   # the image's size as read


def prepare_frame(image: np.ndarray, pixel_means: Sequence[float], scales: Sequence[int],
                  stride: int) -> LoadedFrame:
    """Resize by SCALES, subtract means, pad: the original's test preprocessing."""
    h, w, _ = imutil.scaled_size(image.shape[0], image.shape[1], scales)
    small = imutil.resize_image(image, (h, w))
    data = imutil.pad_to_stride(imutil.image_to_tensor(small, pixel_means), stride, 0.0)
    return LoadedFrame(small, data, None, tuple(image.shape[:2]))


def _step_named(step: "Step", frame: LoadedFrame, where: str,
                previous: Optional[Tuple[int, ...]]) -> FrameResult:
    """step(frame.data); a ValueError on a frame whose network input differs from the
    previous frame's says which frame, its size and both shapes (issue #25.17)."""
    try:
        return step(frame.data)
    except ValueError as err:
        shape = tuple(frame.data.shape)
        if previous is None or shape == tuple(previous):
            raise
        size = (f" ({frame.source_hw[1]}x{frame.source_hw[0]} pixels)"
                if frame.source_hw else "")
        raise ValueError(f"{where}{size}: network input {shape}, but the frames before it "
                         f"gave {tuple(previous)} ({err}); give every frame of a stream one "
                         f"size") from None


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


Step = Callable[[np.ndarray], FrameResult]  # (1, 3, H, W) -> the segmenter's result


def _load_snippet_frame(dataset, snippets: Sequence, job: Tuple[int, int]) -> LoadedFrame:
    """Frame `job` = (snippet, frame) read and preprocessed, with its label when it is the
    snippet's labelled frame (whose size must be the image's)."""
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


class _Scores:
    """The labelled frames' confusion, per distance from the keyframe and overall."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.per_distance: Dict[int, SegmentationEvaluator] = {}

    def add(self, distance: int, frame: LoadedFrame, result: FrameResult) -> None:
        """Score `result` on the labelled `frame`, `distance` frames after its keyframe."""
        if distance not in self.per_distance:
            self.per_distance[distance] = SegmentationEvaluator(self.dataset.num_classes,
                                                                self.dataset.class_names)
        self.per_distance[distance].process(
            prediction_at(result.pred, frame.label.shape, frame.image.shape[:2]), frame.label)

    def evaluate(self) -> Dict[str, Any]:
        """The overall results with 'by_distance': {d: results}."""
        overall = SegmentationEvaluator(self.dataset.num_classes, self.dataset.class_names)
        for ev in self.per_distance.values():
            overall.merge(ev)
        out = overall.evaluate()
        out["by_distance"] = {d: self.per_distance[d].evaluate()
                              for d in sorted(self.per_distance)}
        return out


def evaluate_snippets(dataset, snippets: Sequence, step: Step,
                      reset: Optional[Callable[[], None]] = None, desc: str = "evaluation",
                      interval: int = 1, sink: Optional[Sink] = None, consistency: bool = False,
                      warmup: int = WARMUP_FRAMES, threaded: bool = True,
                      depth: int = 4) -> Dict[str, Any]:
    """Segment every snippet and score its labelled frame; see the module docstring.

    step: a segmenter's `step` (VideoSegmenter or FrameSegmenter): data -> FrameResult.
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
    drawn: Dict[str, int] = {}
    for s in snippets:
        drawn[s.item.name] = max(drawn.get(s.item.name, -1), s.label_index)
    jobs = [(si, fi) for si, s in enumerate(snippets) for fi in range(len(s.frames))]
    scores, flags = _Scores(dataset), []
    previous: Optional[Tuple[int, ...]] = None
    timing = TimingRecorder(warmup)
    cons = TemporalConsistency() if consistency else None
    progress = Progress(len(jobs), desc, every=max(1, len(jobs) // 10), logger=logger,
                        unit="frame")
    load = functools.partial(_load_snippet_frame, dataset, snippets)
    with progress, BackgroundWorker(threaded=threaded) as worker, \
            Prefetcher(jobs, load, depth, threaded) as frames:
        for (si, fi), frame, load_s in frames:
            snip = snippets[si]
            if fi == 0 and reset is not None:
                reset()
            result = _step_named(step, frame, f"frame {snip.frames[fi]}",
                                 None if fi == 0 else previous)
            previous = frame.data.shape
            index = timing.frame(result.is_key, result.network_s, load_s)
            flags.append(result.is_key)
            progress.update()
            if cons is not None:
                worker.submit(_consistency_job(cons, fi == 0, frame, result))
            if fi != snip.label_index:
                continue
            # The labelled frame's distance from its keyframe: the policy's age where one
            # decides the keyframes, else the fixed schedule's.
            scores.add(result.observation.age if result.observation is not None
                       else fi % interval, frame, result)
            if sink is not None and fi == drawn[snip.item.name]:
                worker.submit(_sink_job(sink, timing, index, snip.item.name, frame, result))
    timing.finish()
    out = scores.evaluate()
    out.update(interval=interval, snippets=len(snippets), labelled_frames=len(drawn),
               timing=timing.report(), schedule=schedule_stats(flags))
    if cons is not None:
        out["consistency"] = cons.evaluate()
    logger.info("%s: mIoU %.2f%% over %d labelled frames (%d snippets)", desc,
                100 * out["mIoU"], out["frames"], len(snippets))
    return out


def evaluate_checkpoint(dataset, snippets: Sequence, segmenter, interval: int,
                        checkpoint: str, path: str, **info: Any) -> Dict[str, Any]:
    """A training run's checkpoint on its test split (deeplab/test.py, dff_deeplab/test.py):
    every snippet through `segmenter` (`evaluate_snippets`), the results with `info`, the
    checkpoint and the runtime written to `path` (JSON) and logged."""
    results = evaluate_snippets(dataset, snippets, segmenter.step, segmenter.reset,
                                desc="test", interval=interval)
    results.update(checkpoint=checkpoint, **info, runtime=segmenter.runtime.name,
                   device=segmenter.runtime.device)
    write_json(path, results)
    logger.info("%s at interval %d: mIoU %.4f, pixel acc %.4f (%s)", checkpoint, interval,
                results["mIoU"], results["pixel_acc"], path)
    return results


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
    timing = TimingRecorder(warmup)
    cons = TemporalConsistency() if consistency else None
    progress = Progress(total, "frames", every=50, logger=logger, unit="frame")
    count = 0
    flags: List[bool] = []

    def load(image: np.ndarray) -> LoadedFrame:
        return prepare_frame(image, pixel_means, scales, stride)

    with progress, BackgroundWorker(threaded=threaded) as worker, \
            Prefetcher(frames, load, depth, threaded) as stream:
        previous: Optional[Tuple[int, ...]] = None
        for _, frame, load_s in stream:
            result = _step_named(step, frame, f"frame {count}", previous)
            previous = frame.data.shape
            index = timing.frame(result.is_key, result.network_s, load_s)
            flags.append(result.is_key)
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
    out: Dict[str, Any] = {"frames": count, "interval": interval, "timing": timing.report(),
                           "schedule": schedule_stats(flags)}
    if cons is not None:
        out["consistency"] = cons.evaluate()
    return out


# ------------------------------------------------------------------------ results
def metrics_table(results: Dict[str, Any]) -> str:
    """mIoU overall and by distance from the keyframe, then per-class IoU (Markdown, %)."""
    lines = ["| keyframe distance | labelled frames | mIoU (%) | pixel acc. (%) |",
             "|---|---:|---:|---:|"]
    for d, r in results["by_distance"].items():
        lines.append("| %s | %d | %s | %s |" % (d, r["frames"], format_pct(r["mIoU"]),
                                               format_pct(r["pixel_acc"])))
    lines.append("| **all** | %d | **%s** | %s |" % (results["frames"], format_pct(results["mIoU"]),
                                                     format_pct(results["pixel_acc"])))
    lines += ["", "| class | IoU (%) |", "|---|---:|"]
    lines += ["| %s | %s |" % (name, format_pct(v)) for name, v in results["IoU"].items()]
    return "\n".join(lines)


def format_pct(value: Optional[float]) -> str:
    """A fraction as a percentage with two decimals; '-' for missing values."""
    return "-" if value is None or not math.isfinite(value) else "%.2f" % (100 * value)
