"""Keyframes of a live run, on the real gap since the last keyframe.

A live source skips the frames that arrive while the network is busy, so the flow of the
next frame spans several frames of the source. The schedule decides, when a frame is taken,
from the gap in frames of the source (skipped ones included) and in seconds of capture time:

- the fixed interval k: a keyframe when k or more source frames have passed (as on a file:
  the features are never older than k frames of the source);
- an adaptive policy (accel.keyframes): its verdict after the previous frame, with its
  gaps counted in source frames (`FrameObservation.source_age`), and always at its max_gap;
- `max_gap_seconds`: a keyframe on the last frame taken before the bound would be passed
  (judged by the spacing of the last two frames taken), so the time from one keyframe to the
  next stays within it while the processing rate is steady.
The first frame, and a frame of a new size, is a keyframe.
"""
from typing import Any, Dict, Optional, Tuple

from accel.core.inference import FrameObservation
from accel.keyframes.policies import KeyframePolicy

__all__ = ["RealGapSchedule"]


class _SourceGaps(KeyframePolicy):
    """Wraps the segmenter's policy: each observation gets its source gap before the policy
    decides; the verdict is kept for the schedule."""

    def __init__(self, inner: KeyframePolicy, schedule: "RealGapSchedule"):
        self.inner, self.schedule = inner, schedule
        self.name, self.needs = inner.name, inner.needs

    def reset(self) -> None:
        self.inner.reset()

    def next_is_key(self, obs: FrameObservation) -> bool:
        obs.source_age = self.schedule.source_age
        self.schedule.wish = bool(self.inner.next_is_key(obs))
        return self.schedule.wish

    def describe(self) -> Dict[str, object]:
        return self.inner.describe()


class RealGapSchedule:
    """Decides `is_key` for each frame a live run takes (see the module docstring).

    segmenter: its `interval` and `policy` (None: the fixed interval) are the schedule's;
        use as a context manager so the policy sees source gaps during the run.
    every_frame: the schedule keys every frame (interval 1 without policy): the segmenter is
        called without `is_key` (FrameSegmenter takes none).
    """

    def __init__(self, segmenter, max_gap_seconds: Optional[float] = None):
        if max_gap_seconds is not None and max_gap_seconds <= 0:
            raise ValueError(f"--max-gap-seconds {max_gap_seconds}: expected a time > 0")
        self.segmenter = segmenter
        self.interval = int(getattr(segmenter, "interval", 1))
        self.policy = getattr(segmenter, "policy", None)
        self.max_gap_seconds = max_gap_seconds
        self.every_frame = self.policy is None and self.interval == 1
        self.wish = True                  # the policy's verdict after the last frame
        self.source_age = 0               # of the frame being segmented
        self._key: Optional[Tuple[int, float]] = None     # (source index, capture time)
        self._last: Optional[Tuple[int, float]] = None    # the last frame taken
        self._shape: Optional[Tuple[int, ...]] = None

    def __enter__(self) -> "RealGapSchedule":
        if self.policy is not None:
            self.segmenter.policy = _SourceGaps(self.policy, self)
        return self

    def __exit__(self, *exc) -> None:
        if self.policy is not None:
            self.segmenter.policy = self.policy

    def decide(self, index: int, capture_time: float, shape: Tuple[int, ...] = ()) -> bool:
        """Whether the frame of source index `index`, captured at `capture_time`, is a
        keyframe; records it as taken."""
        key = self._key is None or (shape != self._shape and self._shape is not None)
        if not key:
            gap, seconds = index - self._key[0], capture_time - self._key[1]
            spacing = capture_time - self._last[1]
            if self.max_gap_seconds is not None and \
                    seconds + max(spacing, 0.0) > self.max_gap_seconds:
                key = True
            elif self.policy is None:
                key = self.every_frame or gap >= self.interval
            else:
                max_gap = getattr(self.policy, "max_gap", None)
                key = self.wish or (max_gap is not None and gap >= max_gap)
        self._shape = tuple(shape)
        self._last = (index, capture_time)
        if key:
            self._key = (index, capture_time)
        self.source_age = index - self._key[0]
        return key

    def describe(self) -> Dict[str, Any]:
        """Settings, for metrics.json."""
        return {"gaps_in": "source frames", "max_gap_seconds": self.max_gap_seconds}
