"""Budget mode: the threshold at which an adaptive policy gives a target keyframe rate,
found closed loop on calibration streams of the training split (accel.keyframes.streams).

A policy's schedule changes what it sees (after a keyframe the state is fresh), so a
threshold cannot be read off one pass. `ObservingSegmenter.record` runs the real graphs once
per frame of a calibration stream (through the segmenter's public `key_graph`, `cur_graph`
and its runtime's `host`) and keeps, for every frame, the state it would give as a
keyframe, the flow from the previous frame and the update branch's scores. `simulate` then
plays any policy over those records (accel.keyframes.schedule): the propagated branch (warp
hop by hop, `fc6`, `score`) in NumPy (`ReferenceHead`), exactly the segmenter's propagation
up to float rounding, so each candidate threshold costs NumPy work, not network passes.
`calibrate_threshold` bisects on the threshold; `budget_policy` is budget mode for one run
(the demo's --keyframe-rate without --threshold).
"""
import logging
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from accel.core.inference import FrameObservation, VideoSegmenter
from accel.keyframes.policies import POLICIES, KeyframePolicy, make_policy, supported
from accel.keyframes.schedule import key_rate, replay, run_schedule
from accel.keyframes.streams import CalibrationStreams, check_record_memory
from accel.symbols.versions import FLOW_SCALE
from accel.utils.arrays import as_numpy

__all__ = ["ObservingSegmenter", "ReferenceHead", "simulate", "calibrate_threshold",
           "calibrate_for_rate", "record_streams", "budget_policy"]

logger = logging.getLogger("accel.keyframes")

Record = Dict[str, List[Any]]   # 'state', 'flow', 'update': one entry per frame


class _Recorder(KeyframePolicy):
    """The segmenter's policy while the driver passes is_key itself: decides nothing."""

    name = "recorder"

    def next_is_key(self, obs: FrameObservation) -> bool:
        return False


class ObservingSegmenter:
    """A VideoSegmenter driven frame by frame with an explicit is_key, returning what the
    policies read (flow, both branches' stride-16 scores) through the segmenter's own
    observation hook. `network`: the graphs to run (official or fast CPU ones);
    `allow_extra` and `options` (e.g. int8_calibration, runtime): as VideoSegmenter's."""

    def __init__(self, network, arg_params, aux_params, ctx=None, source: str = "",
                 allow_extra: bool = False, **options):
        self.seg = VideoSegmenter(network, arg_params, aux_params, interval=1, ctx=ctx,
                                  policy=_Recorder(), source=source, allow_extra=allow_extra,
                                  **options)
        self.arg_params = arg_params
        self.has_update = self.seg.network.update_scores_output() is not None

    def reset(self) -> None:
        self.seg.reset()

    def step(self, data: np.ndarray, is_key: bool, age: int, index: int):
        """(FrameResult, FrameObservation, seconds spent copying the signals out)."""
        t0 = time.perf_counter()
        result = self.seg.step(data, is_key=is_key)
        seen = result.observation
        obs = FrameObservation(index, is_key, 0 if is_key else age, seen.flow,
                               seen.warped_scores, seen.update_scores)
        return result, obs, max(0.0, time.perf_counter() - t0 - result.network_s)

    def record(self, frames: Sequence[np.ndarray]) -> Record:
        """For every frame: the keyframe state (as if it were a keyframe), the flow from the
        previous frame and the update-branch scores (None for the first frame)."""
        seg, net = self.seg, self.seg.network
        host = seg.runtime.host
        seg.reset()
        seg.step(frames[0], is_key=True)             # binds both graphs
        states, flows, updates = [], [None], [None]
        feat = None
        for i, frame in enumerate(frames):
            out = seg.key_graph.forward(data=frame)
            states.append(host(out[net.state_output])[0])
            if feat is None:
                feat = np.zeros((1,) + states[0].shape, np.float32)
            if i:
                cur = seg.cur_graph.forward(data=frame, data_key=frames[i - 1], feat_key=feat)
                flows.append(host(cur[net.flow_output])[0] * FLOW_SCALE)
                updates.append(host(cur[net.update_scores_output()])[0]
                               if self.has_update else None)
        seg.reset()
        return {"state": states, "flow": flows, "update": updates}


class ReferenceHead:
    """The propagated branch in NumPy: warp the state hop by hop, then `fc6` (+ReLU) and
    `score` at stride 16, as the segmenter's non-key graph (fast path: the state is fc6
    without its bias; reference path: res5c_relu)."""

    def __init__(self, arg_params):
        def get(name):
            return as_numpy(arg_params[name]).astype(np.float32)
        self.fc6_w, self.fc6_b = get("fc6_weight")[:, :, 0, 0], get("fc6_bias")
        self.score_w, self.score_b = get("score_weight")[:, :, 0, 0], get("score_bias")

    @staticmethod
    def warp(state: np.ndarray, flow: np.ndarray) -> np.ndarray:
        """(C, h, w) state moved by the flow (2, h, w), as the graphs' warp."""
        from accel.operators.reference import warp_numpy
        return warp_numpy(state[None], flow[None].astype(state.dtype))[0]

    def scores(self, state: np.ndarray) -> np.ndarray:
        c, h, w = state.shape
        x = state.reshape(c, -1)
        x = (self.fc6_w @ x if c != self.fc6_w.shape[0] else x) + self.fc6_b[:, None]
        x = np.maximum(x, 0)
        return (self.score_w @ x + self.score_b[:, None]).reshape(-1, h, w)


def simulate(policy: KeyframePolicy, records: Sequence[Record], head: ReferenceHead,
             use_update: bool) -> List[List[bool]]:
    """Keyframe flags of `policy` run closed loop over recorded calibration streams."""
    need_scores = "warped_scores" in policy.needs
    out = []
    for rec in records:
        state = [None]

        def observe(index: int, is_key: bool, age: int) -> FrameObservation:
            if is_key:
                state[0] = rec["state"][index]
                return FrameObservation(index, True, 0)
            state[0] = head.warp(state[0], rec["flow"][index])
            return FrameObservation(
                index, False, age, flow=rec["flow"][index],
                warped_scores=head.scores(state[0]) if need_scores else None,
                update_scores=rec["update"][index] if use_update else None)

        out.append(run_schedule(policy, len(rec["state"]), observe))
    return out


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
            cache[threshold] = key_rate(run(policy_factory(threshold)))
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


def calibrate_for_rate(name: str, rate: float, records: Sequence[Record], head: ReferenceHead,
                       use_update: bool, iterations: int = 30, tolerance: float = 0.002,
                       min_gap: Optional[int] = None, max_gap: Optional[int] = None
                       ) -> Tuple[KeyframePolicy, Dict[str, Any]]:
    """(the policy `name` at the threshold that gives `rate` on `records`, the calibration:
    threshold, achieved rate, evaluations). Gaps: `default_gaps(rate)` unless given."""
    def factory(threshold):
        return make_policy(name, threshold=threshold, rate=rate, min_gap=min_gap,
                           max_gap=max_gap)

    def run(policy):
        return simulate(policy, records, head, use_update)

    cal = calibrate_threshold(factory, run, rate, iterations=iterations, tolerance=tolerance)
    return factory(cal["threshold"]), cal


def record_streams(observer: ObservingSegmenter, streams: Sequence[Sequence[np.ndarray]]):
    """observer.record over every calibration stream (the network passes, done once)."""
    t0 = time.perf_counter()
    records, frames = [], 0
    total = streams.frames() if isinstance(streams, CalibrationStreams) else None
    for stream in streams:
        records.append(observer.record(stream))
        frames += len(stream)
        if len(records) == 1 and total is not None:
            check_record_memory(records[0], len(stream), total)
    logger.info("recorded %d calibration frames in %.0f s", frames, time.perf_counter() - t0)
    return records


def budget_policy(name: str, rate: float, streams: CalibrationStreams, network, arg_params,
                  aux_params, source: str = "", allow_extra: bool = False,
                  min_gap: Optional[int] = None, max_gap: Optional[int] = None,
                  options: Optional[Dict[str, Any]] = None
                  ) -> Tuple[KeyframePolicy, Dict[str, Any]]:
    """Budget mode for one run (the demo's --keyframe-rate): the policy `name` with the
    threshold that gives `rate` on the calibration `streams` (accel.keyframes.streams;
    `options`: VideoSegmenter's, e.g. runtime, int8), and what the calibration found."""
    observer = ObservingSegmenter(network, arg_params, aux_params, None, source, allow_extra,
                                  **(options or {}))
    if not supported(name, observer.has_update):
        raise ValueError(f"keyframe policy {name!r} needs an update branch; "
                         f"{network.version.method} has none")
    records = record_streams(observer, streams)
    head = ReferenceHead(observer.arg_params)
    del observer
    policy, cal = calibrate_for_rate(name, rate, records, head,
                                     "update_scores" in POLICIES[name].needs,
                                     min_gap=min_gap, max_gap=max_gap)
    cal = {"threshold": cal["threshold"], "train_rate": cal["rate"],
           "evaluations": cal["evaluations"], "calibration": streams.describe()}
    logger.info("budget mode: %s at rate %.3f -> threshold %.4g (rate %.3f on the training "
                "streams)", name, rate, cal["threshold"], cal["train_rate"])
    return policy, cal
