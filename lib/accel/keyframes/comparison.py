"""Fixed against adaptive keyframe schedules on a continuous stream: the one implementation
behind experiments/dff_deeplab/adaptive_keyframes.py and reproduce_tables.py's adaptive rows
(`--keyframe-policies`).

Every segment of the test split is streamed continuously and every labelled frame is scored,
keyframes included (the average case, unlike the worst-case interval table). Each version
runs the fixed schedule at interval 1 and at every target interval I, and each adaptive
policy it supports in budget mode at rate 1/I, its threshold calibrated on the training
split (accel.keyframes.budget, accel.keyframes.streams). Time per frame is the network's
plus the policy's own work (copying the signals out and deciding).
"""
import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from accel.core.consistency import TemporalConsistency
from accel.core.inference import FrameObservation
from accel.core.metrics import SegmentationEvaluator
from accel.core.tester import LoadedFrame
from accel.core.timing import schedule_stats
from accel.keyframes.budget import ObservingSegmenter, ReferenceHead, calibrate_for_rate, \
    record_streams
from accel.keyframes.policies import (ADAPTIVE, POLICIES, KeyframePolicy, default_gaps,
                                      make_policy, supported)
from accel.keyframes.report import method_name, pct
from accel.keyframes.schedule import run_schedule
from accel.utils import image as imutil

__all__ = ["evaluate", "warm_up", "Candidate", "compare"]

logger = logging.getLogger("accel.keyframes")


def evaluate(observer: ObservingSegmenter, streams: Sequence[Sequence[LoadedFrame]],
             policy: KeyframePolicy, num_classes: int, class_names, consistency: bool = True,
             flow_cache: Optional[Dict] = None) -> Dict[str, Any]:
    """Run `policy` over every prepared stream (accel.keyframes.streams.prepare_streams):
    mIoU (None without labels), by distance, schedule, timing, consistency (its image flows
    kept in `flow_cache` across runs)."""
    overall = SegmentationEvaluator(num_classes, class_names)
    by_distance: Dict[int, SegmentationEvaluator] = {}
    cons = TemporalConsistency(cache=flow_cache) if consistency else None

    def score(frame: LoadedFrame, pred: np.ndarray, age: int, key) -> None:
        h, w = frame.image.shape[:2]
        pred = pred[:h, :w]
        if cons is not None:
            cons.process(frame.image, pred, key=key)
        if frame.label is not None:
            pred = imutil.resize_label(pred, frame.label.shape[:2])
            overall.process(pred, frame.label)
            if age not in by_distance:
                by_distance[age] = SegmentationEvaluator(num_classes, class_names)
            by_distance[age].process(pred, frame.label)

    flags: List[bool] = []
    times: List[float] = []
    policy_times: List[float] = []
    for s, stream in enumerate(streams):
        observer.reset()
        if cons is not None:
            cons.reset()
        network_s: List[float] = []
        copy_s: List[float] = []

        def observe(index: int, is_key: bool, age: int) -> FrameObservation:
            frame = stream[index]
            result, obs, copied = observer.step(frame.data, is_key, age, index)
            network_s.append(result.network_s)
            copy_s.append(copied)
            score(frame, result.pred, age, (s, index))
            return obs

        decide_s: List[float] = []
        flags += run_schedule(policy, len(stream), observe, decide_s)
        own = [c + d for c, d in zip(copy_s, decide_s)]   # the policy's own work
        times += [n + o for n, o in zip(network_s, own)]
        policy_times += own
    res = overall.evaluate()
    out = {"mIoU": float(res["mIoU"]) if res["frames"] else None, "IoU": res.get("IoU"),
           "by_distance": {int(d): float(by_distance[d].evaluate()["mIoU"])
                           for d in sorted(by_distance)},
           "schedule": schedule_stats(flags, times),
           "policy_time_mean_s": float(np.mean(policy_times))}
    if cons is not None:
        out["consistency"] = cons.evaluate()
    return out


def warm_up(observer: ObservingSegmenter, streams: Sequence[Sequence[LoadedFrame]]) -> None:
    """Bind and run both graphs once (a keyframe and a non-key frame), then reset."""
    stream = next((s for s in streams if len(s) >= 2), None)
    if stream is None:
        raise ValueError(f"the test frames hold no stream of 2 or more frames ({len(streams)} "
                         f"stream(s) of {max(map(len, streams), default=0)} frame(s)): "
                         f"keyframe schedules need consecutive frames")
    observer.reset()
    observer.step(stream[0].data, True, 0, 0)
    observer.step(stream[1].data, False, 1, 1)
    observer.reset()


@dataclass
class Candidate:
    """One version to compare: its graphs (official or fast) and its checkpoint."""

    version: str
    network: Any
    arg_params: Dict
    aux_params: Dict
    checkpoint: str
    allow_extra: bool = False
    options: Optional[Dict[str, Any]] = None     # VideoSegmenter options (runtime, int8)


def compare(candidates: Sequence[Candidate], streams: Sequence[Sequence[LoadedFrame]], video,
            cal_streams, rates: Sequence[int], policies: Optional[Sequence[str]] = None,
            consistency: bool = True, on_version=None,
            cache: Optional[Dict[str, Dict]] = None
            ) -> Dict[str, Dict[str, List[Dict[str, Any]]]]:
    """{version: {'fixed': rows, 'adaptive': rows}}: `fixed` at intervals 1 and `rates`, and
    each adaptive policy a version supports at target rates 1/r, its threshold calibrated on
    `cal_streams`. Key states and flows depend only on the checkpoint, so a version without
    an update branch (DFF) reuses the recording of another version with its checkpoint.
    `streams` come from `prepare_streams`. `on_version(version, block)` is called after each
    version (to save partial results); `cache` keeps the recordings and the consistency
    flows across calls (one version per call)."""
    for name in policies or ():
        if name not in ADAPTIVE:
            raise ValueError(f"keyframe policy {name!r}: expected adaptive ones of "
                             f"{list(ADAPTIVE)}")
    cache = {} if cache is None else cache
    recorded = cache.setdefault("recorded", {})
    run = _Runs(video, consistency, cache.setdefault("flows", {}))
    versions: Dict[str, Dict[str, List[Dict[str, Any]]]] = {}
    for cand in sorted(candidates, key=lambda c: c.network.update_scores_output() is None):
        observer = ObservingSegmenter(cand.network, cand.arg_params, cand.aux_params, None,
                                      cand.checkpoint, cand.allow_extra,
                                      **(cand.options or {}))
        key = (cand.checkpoint, cand.version if observer.has_update else None)
        records = recorded.get(key) or next(
            (r for (ckpt, _), r in recorded.items() if ckpt == cand.checkpoint
             and not observer.has_update), None)
        if records is None:
            records = recorded[key] = record_streams(observer, cal_streams)
        warm_up(observer, streams)
        name = method_name(cand.version)
        block = {"fixed": [run.fixed(observer, streams, i, name) for i in [1] + list(rates)],
                 "adaptive": [run.adaptive(observer, streams, p, i, records, name)
                              for p in policies or ADAPTIVE
                              if supported(p, observer.has_update) for i in rates]}
        versions[cand.version] = block
        del observer
        if on_version is not None:
            on_version(cand.version, block)
    return {c.version: versions[c.version] for c in candidates}   # in the order asked for


class _Runs:
    """The rows of one comparison: a schedule evaluated on the test streams, logged."""

    def __init__(self, video, consistency: bool, flows: Dict):
        self.classes, self.names = video.num_classes, video.class_names
        self.consistency, self.flows = consistency, flows

    def _evaluate(self, observer, streams, policy) -> Dict[str, Any]:
        return evaluate(observer, streams, policy, self.classes, self.names,
                        self.consistency, self.flows)

    def fixed(self, observer, streams, interval: int, name: str) -> Dict[str, Any]:
        """The fixed schedule at `interval`."""
        row = self._evaluate(observer, streams, make_policy("fixed", interval=interval))
        row.update(policy="fixed", target_interval=interval, threshold=None,
                   train_rate=1.0 / interval)
        logger.info("%s fixed i=%d: mIoU %s, rate %.3f, %.3f s/frame", name, interval,
                    pct(row["mIoU"]), row["schedule"]["key_rate"],
                    row["schedule"]["time_mean_s"])
        return row

    def adaptive(self, observer, streams, policy_name: str, interval: int, records,
                 name: str) -> Dict[str, Any]:
        """Adaptive policy `policy_name` at its threshold calibrated for rate 1/interval."""
        rate = 1.0 / interval
        policy, cal = calibrate_for_rate(policy_name, rate, records,
                                         ReferenceHead(observer.arg_params),
                                         "update_scores" in POLICIES[policy_name].needs)
        row = self._evaluate(observer, streams, policy)
        lo, hi = default_gaps(rate)
        row.update(policy=policy_name, target_interval=interval, threshold=cal["threshold"],
                   train_rate=cal["rate"], min_gap=lo, max_gap=hi,
                   calibration_evaluations=cal["evaluations"])
        logger.info("%s %s 1/%d: threshold %.4g (train rate %.3f): mIoU %s, rate %.3f, "
                    "%.3f s/frame", name, policy_name, interval, cal["threshold"],
                    cal["rate"], pct(row["mIoU"]), row["schedule"]["key_rate"],
                    row["schedule"]["time_mean_s"])
        return row
