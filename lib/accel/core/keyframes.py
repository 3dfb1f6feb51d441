"""Keyframe policies: after each frame, decide whether the next one is a keyframe (issue #14).

The streaming segmenter hands a policy one `FrameObservation` per frame (what that frame
produced) and asks `next_is_key(obs)`; the first frame after `reset()` is always a keyframe
(the segmenter's job, not the policy's). Policies:

- `fixed`: frame i is a keyframe when i % interval == 0, the original's schedule.
- `always`: every frame is a keyframe (the same as `fixed` with interval 1).
- `flow`: the mean flow magnitude (feature pixels) summed over the hops since the keyframe,
  i.e. how far the propagated features have been moved.
- `flow-inconsistency`: the mean magnitude of the flow's spatial gradient (feature pixels
  per feature pixel) summed over the hops since the keyframe: deformation, occlusion
  boundaries and flow errors, where warping is worst, rather than a plain pan.
- `disagreement` (update-branch versions: Accel-18/34/50): the share of stride-16 cells
  where the warped branch and the update branch predict different classes on this frame.

An adaptive policy asks for a keyframe when its signal exceeds `threshold`, never before
`min_gap` frames after the last keyframe and always at `max_gap` (a gap is the number of
frames from one keyframe to the next: `fixed` at interval k has every gap k). On a live
source (accel.live) that skips frames, gaps count frames of the source
(`FrameObservation.source_age`), so a schedule means the same time as on a file. A keyframe
shows a policy no flow or scores, so an adaptive policy asks for two keyframes in a row only
with a negative threshold. Budget mode:
`calibrate_threshold` picks the threshold that gives a target keyframe rate on streams of
the training split; `schedule_stats` reports what a schedule achieved. The flow signals
depend only on consecutive frames, so replaying recorded observations (`replay`) gives the
schedule exactly; `disagreement` depends on the propagated state, so it is calibrated by
running the segmenter itself (`calibrate_threshold` with a `run` function).
"""
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

__all__ = ["FrameObservation", "KeyframePolicy", "FixedInterval", "AlwaysKey",
           "ThresholdPolicy", "FlowMagnitude", "FlowInconsistency", "BranchDisagreement",
           "POLICIES", "make_policy", "default_gaps", "replay", "calibrate_threshold",
           "schedule_stats"]


@dataclass
class FrameObservation:
    """What one frame produced, as a policy sees it.

    index: position in the stream since the segmenter's reset (0 = the first frame).
    is_key: whether this frame ran the keyframe network.
    age: frames since the last keyframe (0 on a keyframe).
    flow: (2, h, w) float32 flow previous -> current frame on the feature grid, in feature
        pixels (channel 0 = x; `Convolution5 * 2.5`); None on keyframes.
    warped_scores: (C, h, w) stride-16 scores of the propagated branch; None on keyframes.
    update_scores: (C, h, w) stride-16 scores of the update branch; None on keyframes and
        for versions without one (dff, 101).
    source_age: frames of the source since the last keyframe, the frames a live source
        skipped included (accel.live); None when every frame is segmented (then it is `age`).
    """

    index: int
    is_key: bool
    age: int
    flow: Optional[np.ndarray] = None
    warped_scores: Optional[np.ndarray] = None
    update_scores: Optional[np.ndarray] = None
    source_age: Optional[int] = None

    @property
    def gap(self) -> int:
        """Frames of the source from the last keyframe to the next frame (at least)."""
        return (self.age if self.source_age is None else self.source_age) + 1


class KeyframePolicy:
    """Interface: `reset()` at the start of a stream, `next_is_key(obs)` after every frame."""

    name = "policy"
    #: FrameObservation fields the policy reads (the segmenter may skip computing others).
    needs: tuple = ()

    def reset(self) -> None:
        """Forget the stream so far."""

    def next_is_key(self, obs: FrameObservation) -> bool:
        """Whether the frame after `obs` is a keyframe."""
        raise NotImplementedError

    def describe(self) -> Dict[str, object]:
        """Settings, for result files."""
        return {"policy": self.name}


class FixedInterval(KeyframePolicy):
    """The original schedule: frame i is a keyframe when i % interval == 0."""

    name = "fixed"

    def __init__(self, interval: int):
        if int(interval) < 1:
            raise ValueError(f"keyframe interval must be >= 1, got {interval!r}")
        self.interval = int(interval)

    def next_is_key(self, obs: FrameObservation) -> bool:
        if obs.source_age is not None:   # live: the interval counts frames of the source
            return obs.gap >= self.interval
        return (obs.index + 1) % self.interval == 0

    def describe(self) -> Dict[str, object]:
        return {"policy": self.name, "interval": self.interval}


class AlwaysKey(FixedInterval):
    """Every frame is a keyframe (frame-by-frame DeepLab-101)."""

    name = "always"

    def __init__(self):
        super().__init__(1)

    def next_is_key(self, obs: FrameObservation) -> bool:
        return True


class ThresholdPolicy(KeyframePolicy):
    """Keyframe when `signal` > threshold, within [min_gap, max_gap] frames of the last one.

    Subclasses define `frame_signal(obs)` (this frame's contribution, non-key frames only)
    and `cumulative` (sum the contributions since the keyframe, or use the last one).
    """

    cumulative = True

    def __init__(self, threshold: float, min_gap: int = 1, max_gap: Optional[int] = None):
        if int(min_gap) < 1:
            raise ValueError(f"min_gap must be >= 1, got {min_gap!r}")
        if max_gap is not None and int(max_gap) < int(min_gap):
            raise ValueError(f"max_gap {max_gap} is smaller than min_gap {min_gap}")
        self.threshold = float(threshold)
        self.min_gap = int(min_gap)
        self.max_gap = None if max_gap is None else int(max_gap)
        self.signal = 0.0

    def reset(self) -> None:
        self.signal = 0.0

    def frame_signal(self, obs: FrameObservation) -> float:
        raise NotImplementedError

    def next_is_key(self, obs: FrameObservation) -> bool:
        if obs.is_key:
            self.signal = 0.0
        else:
            value = float(self.frame_signal(obs))
            self.signal = self.signal + value if self.cumulative else value
        gap = obs.gap              # frames from the last keyframe to the next frame
        if self.max_gap is not None and gap >= self.max_gap:
            return True
        return gap >= self.min_gap and self.signal > self.threshold

    def describe(self) -> Dict[str, object]:
        return {"policy": self.name, "threshold": self.threshold, "min_gap": self.min_gap,
                "max_gap": self.max_gap}


def _require(obs: FrameObservation, field_name: str, policy: str) -> np.ndarray:
    value = getattr(obs, field_name)
    if value is None:
        raise ValueError(f"keyframe policy {policy!r} needs FrameObservation.{field_name} on "
                         f"non-key frames, got None (frame {obs.index}); for versions without "
                         f"an update branch (dff, 101) use a flow policy")
    return value


class FlowMagnitude(ThresholdPolicy):
    """Signal: mean |flow| (feature pixels) summed over the hops since the keyframe."""

    name = "flow"
    needs = ("flow",)

    def frame_signal(self, obs: FrameObservation) -> float:
        flow = _require(obs, "flow", self.name)
        return float(np.sqrt(flow[0].astype(np.float64) ** 2 + flow[1] ** 2).mean())


class FlowInconsistency(ThresholdPolicy):
    """Signal: mean |grad flow| (Frobenius norm of the 2x2 Jacobian, forward differences)
    summed over the hops since the keyframe: zero for any pure translation."""

    name = "flow-inconsistency"
    needs = ("flow",)

    def frame_signal(self, obs: FrameObservation) -> float:
        flow = _require(obs, "flow", self.name).astype(np.float64)
        dx = np.diff(flow, axis=2)[:, :-1, :]
        dy = np.diff(flow, axis=1)[:, :, :-1]
        return float(np.sqrt((dx ** 2).sum(axis=0) + (dy ** 2).sum(axis=0)).mean())


class BranchDisagreement(ThresholdPolicy):
    """Signal: share of stride-16 cells whose class differs between the warped branch and the
    update branch on this frame (not summed: it already measures the propagated state)."""

    name = "disagreement"
    needs = ("warped_scores", "update_scores")
    cumulative = False

    def frame_signal(self, obs: FrameObservation) -> float:
        warped = _require(obs, "warped_scores", self.name)
        update = _require(obs, "update_scores", self.name)
        if warped.shape != update.shape:
            raise ValueError(f"warped scores {warped.shape} and update scores {update.shape} "
                             f"differ in shape")
        return float((warped.argmax(axis=0) != update.argmax(axis=0)).mean())


# --keyframe-policy NAME -> class (adaptive ones take threshold, min_gap, max_gap).
POLICIES: Dict[str, type] = {
    "fixed": FixedInterval,
    "always": AlwaysKey,
    "flow": FlowMagnitude,
    "flow-inconsistency": FlowInconsistency,
    "disagreement": BranchDisagreement,
}


def default_gaps(rate: float) -> tuple:
    """(min_gap, max_gap) for a target keyframe rate R: floor(1/(2R)) (at least 1) and
    ceil(2/R): gaps from half to twice the fixed interval 1/R."""
    if not 0 < rate <= 1:
        raise ValueError(f"keyframe rate must be in (0, 1], got {rate!r}")
    return max(1, int(math.floor(0.5 / rate + 1e-9))), int(math.ceil(2.0 / rate - 1e-9))


def make_policy(name: str, interval: Optional[int] = None, threshold: Optional[float] = None,
                rate: Optional[float] = None, min_gap: Optional[int] = None,
                max_gap: Optional[int] = None) -> KeyframePolicy:
    """The policy of the command line (`--keyframe-policy`, `--interval`, `--threshold`,
    `--keyframe-rate`, `--min-gap`, `--max-gap`). An adaptive policy needs a threshold
    (budget mode: calibrate one for `rate` with `calibrate_threshold` first); `rate` alone
    sets the default gaps (`default_gaps`)."""
    key = str(name).lower()
    if key not in POLICIES:
        raise ValueError(f"keyframe policy {name!r} is unknown; expected one of "
                         f"{sorted(POLICIES)}")
    if key == "fixed":
        if interval is None and rate is not None:
            interval = max(1, int(round(1.0 / rate)))
        return FixedInterval(1 if interval is None else interval)
    if key == "always":
        return AlwaysKey()
    if threshold is None:
        raise ValueError(f"keyframe policy {name!r} needs a threshold (--threshold T), or a "
                         f"target rate (--keyframe-rate R) to calibrate one on the training "
                         f"split")
    if rate is not None:
        lo, hi = default_gaps(rate)
        min_gap = lo if min_gap is None else min_gap
        max_gap = hi if max_gap is None else max_gap
    return POLICIES[key](threshold, 1 if min_gap is None else min_gap, max_gap)


# ----------------------------------------------------------------------- schedules

def replay(policy: KeyframePolicy, stream: Sequence[FrameObservation]) -> List[bool]:
    """The keyframe flags `policy` gives a recorded stream. Each observation's flow (and
    scores) are used as recorded; index, is_key and age follow the new schedule, and a
    frame that becomes a keyframe shows the policy no flow or scores, as the segmenter
    would. Exact for signals of consecutive frames (the flow policies)."""
    policy.reset()
    flags: List[bool] = []
    is_key, age = True, 0
    for i, rec in enumerate(stream):
        if i:
            age = 0 if is_key else age + 1
        obs = FrameObservation(i, is_key, age, *((None, None, None) if is_key else
                                                 (rec.flow, rec.warped_scores,
                                                  rec.update_scores)))
        flags.append(is_key)
        is_key = policy.next_is_key(obs)
    return flags


def schedule_stats(flags: Sequence[bool], times: Optional[Sequence[float]] = None
                   ) -> Dict[str, object]:
    """Keyframe rate (all frames, and excluding the stream's first frame, which is always a
    keyframe), gaps between keyframes, the longest run of consecutive keyframes, and with
    `times` (seconds per frame) mean, p99 and max time."""
    flags = [bool(f) for f in flags]
    if not flags:
        raise ValueError("empty schedule")
    keys = [i for i, f in enumerate(flags) if f]
    gaps = np.diff(keys).tolist()
    longest, run = 0, 0
    for f in flags:
        run = run + 1 if f else 0
        longest = max(longest, run)
    out: Dict[str, object] = {
        "frames": len(flags), "keyframes": len(keys),
        "key_rate": len(keys) / len(flags),
        "key_rate_after_first": (sum(flags[1:]) / (len(flags) - 1)) if len(flags) > 1 else 1.0,
        "longest_key_run": longest,
        "gap_min": int(min(gaps)) if gaps else None,
        "gap_max": int(max(gaps)) if gaps else None,
        "gap_mean": float(np.mean(gaps)) if gaps else None,
        "gap_histogram": {int(g): int(c) for g, c in zip(*np.unique(gaps, return_counts=True))}
        if gaps else {},
    }
    if times is not None:
        t = np.asarray(times, np.float64)
        if t.shape != (len(flags),):
            raise ValueError(f"{t.shape[0]} times for {len(flags)} frames")
        out.update(time_mean_s=float(t.mean()), time_p99_s=float(np.percentile(t, 99)),
                   time_max_s=float(t.max()))
    return out


def _rate(flag_lists: Sequence[Sequence[bool]]) -> float:
    """Keyframe rate over several streams, each stream's first (forced) keyframe excluded."""
    decided = sum(len(f) - 1 for f in flag_lists)
    if decided <= 0:
        raise ValueError("calibration streams need at least 2 frames")
    return sum(sum(f[1:]) for f in flag_lists) / decided


Run = Callable[[KeyframePolicy], Sequence[Sequence[bool]]]


def calibrate_threshold(policy_factory: Callable[[float], KeyframePolicy],
                        traces: Union[Sequence[Sequence[FrameObservation]], Run],
                        target_rate: float, low: float = 0.0, high: Optional[float] = None,
                        iterations: int = 40, tolerance: float = 0.0) -> Dict[str, float]:
    """The threshold at which `policy_factory(threshold)` hits `target_rate` on `traces`.

    traces: recorded streams of the training split (replayed with `replay`), or a function
        running the policy over them and returning each stream's keyframe flags (for signals
        that depend on the propagated state). The rate excludes each stream's first frame.
    The rate falls as the threshold rises (min/max gaps bound it); bisection between `low`
    and `high` (default: doubled from 1 until the rate is below the target) returns the
    threshold whose rate is closest to the target (the lower one on ties), with that rate.
    """
    if not 0 < target_rate <= 1:
        raise ValueError(f"target keyframe rate must be in (0, 1], got {target_rate!r}")
    run: Run = traces if callable(traces) else \
        (lambda policy: [replay(policy, s) for s in traces])
    cache: Dict[float, float] = {}

    def rate_at(threshold: float) -> float:
        if threshold not in cache:
            cache[threshold] = _rate(run(policy_factory(threshold)))
        return cache[threshold]

    if high is None:
        high = 1.0
        while rate_at(high) > target_rate and high < 1e6:
            high *= 2.0
    lo, hi = float(low), float(high)
    for _ in range(int(iterations)):
        if abs(rate_at(lo) - target_rate) <= tolerance:
            break
        mid = 0.5 * (lo + hi)
        if rate_at(mid) > target_rate:
            lo = mid
        else:
            hi = mid
    best = min(cache, key=lambda t: (abs(cache[t] - target_rate), t))
    return {"threshold": best, "rate": cache[best], "target_rate": float(target_rate),
            "evaluations": len(cache)}
