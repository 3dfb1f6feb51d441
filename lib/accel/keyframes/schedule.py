"""The one schedule loop: a policy deciding frame after frame what the next frame is.

`run_schedule` walks a stream as the segmenter does: frame 0 is a keyframe, then after each
frame the policy sees what it produced (`observe`) and says whether the next one is a
keyframe. Every place that plays a schedule goes through it: `replay` (recorded flows and
scores, exact for signals of consecutive frames: the flow policies), the calibration's
closed loop over recorded states (accel.keyframes.budget.simulate) and the comparison's
runs of the real segmenter (accel.keyframes.comparison.evaluate).
"""
import time
from typing import Callable, List, Optional, Sequence

from accel.core.inference import FrameObservation
from accel.keyframes.policies import KeyframePolicy

__all__ = ["Observe", "run_schedule", "replay", "key_rate"]

# observe(index, is_key, age) -> what frame `index` produced, as the policy sees it.
Observe = Callable[[int, bool, int], FrameObservation]


def run_schedule(policy: KeyframePolicy, frames: int, observe: Observe,
                 decide_seconds: Optional[List[float]] = None) -> List[bool]:
    """The keyframe flags `policy` gives a stream of `frames` frames (the policy is reset
    first). `decide_seconds`, when given, receives the time of each decision."""
    policy.reset()
    flags: List[bool] = []
    is_key, age = True, 0
    for index in range(frames):
        age = 0 if is_key else age + 1
        obs = observe(index, is_key, age)
        flags.append(is_key)
        t0 = time.perf_counter()
        is_key = bool(policy.next_is_key(obs))
        if decide_seconds is not None:
            decide_seconds.append(time.perf_counter() - t0)
    return flags


def replay(policy: KeyframePolicy, stream: Sequence[FrameObservation]) -> List[bool]:
    """The keyframe flags `policy` gives a recorded stream. Each observation's flow (and
    scores) are used as recorded; index, is_key and age follow the new schedule, and a
    frame that becomes a keyframe shows the policy no flow or scores, as the segmenter
    would. Exact for signals of consecutive frames (the flow policies)."""
    def observe(index: int, is_key: bool, age: int) -> FrameObservation:
        if is_key:
            return FrameObservation(index, True, age)
        rec = stream[index]
        return FrameObservation(index, False, age, rec.flow, rec.warped_scores,
                                rec.update_scores)

    return run_schedule(policy, len(stream), observe)


def key_rate(flag_lists: Sequence[Sequence[bool]]) -> float:
    """Keyframe rate over several streams, each stream's first (forced) keyframe excluded."""
    decided = sum(len(f) - 1 for f in flag_lists)
    if decided <= 0:
        raise ValueError("calibration streams need at least 2 frames")
    return sum(sum(f[1:]) for f in flag_lists) / decided
