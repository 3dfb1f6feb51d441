"""Keyframe policies: after each frame, decide whether the next one is a keyframe (issue #14).

The streaming segmenter hands a policy one `FrameObservation` per frame (what that frame
produced, accel.core.inference) and asks `next_is_key(obs)`; the first frame after
`reset()` is always a keyframe (the segmenter's job, not the policy's). Policies:

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
with a negative threshold. The threshold for a target keyframe rate (budget mode) is
calibrated by accel.keyframes.budget.
"""
import math
from typing import Dict, Optional

import numpy as np

from accel.core.inference import FrameObservation

__all__ = ["FrameObservation", "KeyframePolicy", "FixedInterval", "AlwaysKey",
           "ThresholdPolicy", "FlowMagnitude", "FlowInconsistency", "BranchDisagreement",
           "POLICIES", "ADAPTIVE", "supported", "make_policy", "default_gaps"]


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


def require(obs: FrameObservation, field_name: str, policy: str) -> np.ndarray:
    """`obs.<field_name>`; a ValueError naming the policy and the field when it is None."""
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
        flow = require(obs, "flow", self.name)
        return float(np.sqrt(flow[0].astype(np.float64) ** 2 + flow[1] ** 2).mean())


class FlowInconsistency(ThresholdPolicy):
    """Signal: mean |grad flow| (Frobenius norm of the 2x2 Jacobian, forward differences)
    summed over the hops since the keyframe: zero for any pure translation."""

    name = "flow-inconsistency"
    needs = ("flow",)

    def frame_signal(self, obs: FrameObservation) -> float:
        flow = require(obs, "flow", self.name).astype(np.float64)
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
        warped = require(obs, "warped_scores", self.name)
        update = require(obs, "update_scores", self.name)
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
# Adaptive policies, in table order (fixed and always are schedules, not policies to tune).
ADAPTIVE = tuple(name for name, cls in POLICIES.items() if issubclass(cls, ThresholdPolicy))


def supported(policy: str, has_update: bool) -> bool:
    """Whether a version with (or without) an update branch can run `policy`."""
    return has_update or "update_scores" not in POLICIES[policy].needs


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
    (budget mode: calibrate one for `rate` first, accel.keyframes.budget); `rate` alone
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
