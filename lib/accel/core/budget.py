"""Budget mode of the keyframe policies: the threshold that gives a target keyframe rate,
found closed loop on recorded streams (accel.core.keyframes.calibrate_threshold).

A policy's schedule changes what it sees (after a keyframe the state is fresh), so a
threshold cannot be read off one pass. `ObservingSegmenter.record` runs the real graphs once
per frame of a calibration stream and keeps, for every frame, the state it would give as a
keyframe, the flow from the previous frame and the update branch's scores. `simulate` then
replays any policy over those records: the propagated branch (warp hop by hop, `fc6`,
`score`) in NumPy (`ReferenceHead`), exactly the segmenter's propagation up to float
rounding, so each candidate threshold costs NumPy work, not network passes.
"""
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from accel.core.inference import VideoSegmenter
from accel.core.keyframes import (FrameObservation, KeyframePolicy, calibrate_threshold,
                                  make_policy)
from accel.symbols.versions import FLOW_SCALE
from accel.utils.arrays import as_numpy

__all__ = ["ObservingSegmenter", "ReferenceHead", "simulate", "calibrate_for_rate"]

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
        from accel.operators.reference import _warp_matrices
        c, h, w = state.shape
        sample = _warp_matrices(flow[None].astype(np.float32), (h, w))[0][0]
        return np.ascontiguousarray((sample @ state.reshape(c, -1).T).T.reshape(c, h, w))

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
        policy.reset()
        flags, state, is_key, age = [], None, True, 0
        for i in range(len(rec["state"])):
            if is_key:
                state, age = rec["state"][i], 0
                obs = FrameObservation(i, True, 0)
            else:
                state, age = head.warp(state, rec["flow"][i]), age + 1
                obs = FrameObservation(
                    i, False, age, flow=rec["flow"][i],
                    warped_scores=head.scores(state) if need_scores else None,
                    update_scores=rec["update"][i] if use_update else None)
            flags.append(is_key)
            is_key = policy.next_is_key(obs)
        out.append(flags)
    return out


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
