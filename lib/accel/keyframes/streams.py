"""The streams behind the keyframe comparison and budget mode: the test split streamed
continuously, and calibration streams made from the training split (issue #25.7).

Adaptive schedules need the stream, not snippets: every segment of the test split is
streamed continuously (`test_streams`, read once by `prepare_streams`). Thresholds are
calibrated on the TRAINING split, never on the frames reported (`calibration_set`, the one
set-up of every runner). CamVid train is labelled at 1 Hz and its test video at 15 Hz, so
its calibration streams are 15 Hz streams made from training frames: between two real
frames 1 s apart, 14 frames each moved along the DIS flow between them by k/15 of it (from
the nearer real frame; accel.dataset.flow_pairs), the motion of one val hop. Cityscapes'
training sequences are already at the test rate and stream as they are.

Asking for more calibration pairs than the split has is capped, with a warning saying how
many exist (a pair is never used twice); the runs of pairs never overlap; a stream's frames
are made when it is iterated, so memory holds one stream, not all of them.
"""
import logging
from dataclasses import replace
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from accel.core.tester import LoadedFrame, prepare_frame
from accel.utils import image as imutil

__all__ = ["CALIBRATION_STEPS", "CALIBRATION_CHUNK", "CalibrationStreams",
           "calibration_streams", "calibration_set", "check_record_memory", "test_streams",
           "prepare_streams"]

logger = logging.getLogger("accel.keyframes")

# Test-rate frames per step between two consecutive training frames (CamVid: train 30 raw
# frames apart, val 2, so 15 val hops per training pair; Cityscapes: the same rate).
CALIBRATION_STEPS = {"camvid": 15, "cityscapes": 1}
# Consecutive training pairs per calibration stream, unless asked otherwise.
CALIBRATION_CHUNK = 10


class CalibrationStreams:
    """Test-rate calibration streams of a training split, made one at a time when iterated
    (or indexed: the last one is kept), so that memory holds one stream, not all of them.

    `pairs`: the distinct real pairs behind them; `available`: those the split has;
    `describe()`: a line for result files."""

    def __init__(self, video, windows: Sequence[Tuple[Tuple[str, ...], int, int]],
                 steps: int, available: int):
        self.video, self.windows, self.steps = video, list(windows), int(steps)
        self.available = int(available)
        self.pairs = sum(n for _, _, n in self.windows)
        self._cached: Optional[Tuple[int, List[np.ndarray]]] = None

    def __len__(self) -> int:
        return len(self.windows)

    def frames(self) -> int:
        """Frames over all streams."""
        return sum(n * self.steps + 1 for _, _, n in self.windows)

    def __getitem__(self, index: int) -> List[np.ndarray]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"calibration stream {index} of {len(self)}")
        index %= len(self)
        if self._cached is None or self._cached[0] != index:
            self._cached = (index, self._make(*self.windows[index]))
        return self._cached[1]

    def __iter__(self) -> Iterator[List[np.ndarray]]:
        for i in range(len(self)):
            yield self[i]

    def describe(self) -> str:
        kind = (f"synthetic ({self.steps} frames per real pair)" if self.steps > 1
                else "real")
        return (f"{self.video.root} ({self.video.split}): {len(self)} {kind} "
                f"stream{'s' if len(self) != 1 else ''}, "
                f"{self.frames()} frames, from {self.pairs} distinct real pairs (of "
                f"{self.available} in the split)")

    def _make(self, segment: Tuple[str, ...], start: int, pairs: int) -> List[np.ndarray]:
        from accel.dataset.flow_pairs import dis_flow, shift_along_flow
        means, scales, stride = self.video.pixel_means, self.video.scales, self.video.stride
        steps, half = self.steps, (self.steps - 1) // 2

        def tensor(img):
            return imutil.pad_to_stride(imutil.image_to_tensor(img, means), stride, 0.0)

        frames = [prepare_frame(imutil.read_image(p), means, scales, stride).image
                  for p in segment[start:start + pairs + 1]]
        stream = []
        for a, b in zip(frames, frames[1:]):
            flow = dis_flow(b, a) if steps > 1 else None     # b(x) ~ a(x + flow(x))
            for k in range(steps):
                f = k / steps
                img = a if k == 0 else (shift_along_flow(a, f * flow) if k <= half
                                        else shift_along_flow(b, -(1 - f) * flow))
                stream.append(tensor(img))
        stream.append(tensor(frames[-1]))
        return stream


def calibration_streams(video, pairs: int = 40, chunk: int = CALIBRATION_CHUNK,
                        steps: int = 15) -> CalibrationStreams:
    """Test-rate streams from the training split `video`: `pairs` distinct real consecutive
    pairs (at most those the split has: capped, with a warning), in runs of up to `chunk`
    that never overlap, spread evenly over the segments; made lazily (CalibrationStreams).
    With `steps` > 1 each pair (A, B) gives A and the steps-1 frames between: k < steps/2 is
    A moved forward by k/steps of the DIS flow B -> A, the others B moved back by
    (steps-k)/steps of it."""
    if pairs < 1 or chunk < 1 or steps < 1:
        raise ValueError(f"calibration needs pairs, chunk and steps >= 1, got {pairs}, "
                         f"{chunk}, {steps}")
    segments = sorted({it.segment for it in video.all_items})
    available = sum(max(0, len(s) - 1) for s in segments)
    if available < 1:
        raise ValueError(f"the training split {video.root} ({video.split}) has no segment of "
                         f"2 or more frames to calibrate keyframe thresholds on")
    if pairs > available:
        logger.warning("calibration: %d pairs asked for, but the training split %s (%s) has "
                       "only %d distinct consecutive pairs: calibrating on those %d", pairs,
                       video.root, video.split, available, available)
        pairs = available
    chunk = min(chunk, pairs)
    longest = max(len(s) for s in segments)
    if longest <= chunk:
        logger.warning("calibration: the longest training segment has %d frames; runs of %d "
                       "pairs instead of %d", longest, longest - 1, chunk)
        chunk = longest - 1
    # Non-overlapping runs of `chunk` pairs (a segment's tail: a shorter run), full ones
    # first, taken evenly spread until `pairs` pairs are covered.
    windows = [(s, i, min(chunk, len(s) - 1 - i)) for s in segments
               for i in range(0, len(s) - 1, chunk)]
    windows.sort(key=lambda w: w[2] < chunk)
    full = [w for w in windows if w[2] == chunk]
    need = -(-pairs // chunk)
    if len(full) >= need:
        picks = [full[int(j)] for j in np.linspace(0, len(full) - 1, need).round()]
    else:
        picks = windows[:]
    chosen, total = [], 0
    for segment, start, n in sorted(picks, key=lambda w: (w[0], w[1])):
        n = min(n, pairs - total)
        if n > 0:
            chosen.append((segment, start, n))
            total += n
    streams = CalibrationStreams(video, chosen, steps, available)
    logger.info("calibration: %s", streams.describe())
    return streams


def calibration_set(open_split: Callable[[str], Any], dataset: str, split: str,
                    reported: Optional[str], pairs: int, chunk: int = CALIBRATION_CHUNK
                    ) -> CalibrationStreams:
    """The calibration streams of every runner: split `split` of the data set `dataset`
    (opened by `open_split(split)`), never the split `reported` (segmented and scored), in
    test-rate streams (CALIBRATION_STEPS) of `pairs` distinct pairs in runs of `chunk`."""
    if reported is not None and split == reported:
        raise ValueError(f"--calibration-split {split}: the thresholds must not be set on "
                         f"the split segmented (the one reported)")
    return calibration_streams(open_split(split), pairs, chunk,
                               CALIBRATION_STEPS.get(str(dataset).lower(), 1))


def check_record_memory(record: Dict[str, List[Any]], frames: int, total: int) -> None:
    """Refuse calibration recordings (one state, flow and scores kept per frame) that would
    not fit in the memory available, from the size of the first stream's (issue #25.7)."""
    from accel.utils.memory import available_memory, format_bytes
    per_frame = sum(getattr(v, "nbytes", 0) for values in record.values() for v in values
                    if v is not None) / max(frames, 1)
    need, available = per_frame * total, available_memory()
    if available is not None and need > available:
        raise ValueError(f"calibration: the recordings of {total} frames need about "
                         f"{format_bytes(need)} ({format_bytes(per_frame)} per frame), more "
                         f"than the {format_bytes(available)} available; ask for fewer "
                         f"calibration pairs")


def test_streams(video) -> List[List[Any]]:
    """The frames of each segment of `video` in order, as (path, labelled item or None)."""
    by_segment: Dict[Tuple[str, ...], List[Any]] = {}
    for item in video.all_items:
        by_segment.setdefault(item.segment, []).append(item)
    streams = []
    for segment, items in by_segment.items():
        labelled = {it.position: it for it in items}
        streams.append([(path, labelled.get(p)) for p, path in enumerate(segment)])
    return streams


def prepare_streams(streams, video, scales: Optional[Sequence[int]] = None
                    ) -> List[List[LoadedFrame]]:
    """Read and preprocess every frame of `streams` ((frame path or BGR image, labelled
    item or None) per frame) once, labels included, for all the runs over them."""
    out = []
    for stream in streams:
        frames = []
        for path, item in stream:
            image = path if isinstance(path, np.ndarray) else imutil.read_image(path)
            frame = prepare_frame(image, video.pixel_means, scales or video.scales,
                                  video.stride)
            frames.append(replace(frame, label=None if item is None
                                  else video.load_label(item)))
        out.append(frames)
    return out
