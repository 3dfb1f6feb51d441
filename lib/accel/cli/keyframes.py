"""Fixed against adaptive keyframe schedules on a continuous stream, and budget mode's
thresholds from the training split: the one implementation behind
experiments/dff_deeplab/adaptive_keyframes.py, reproduce_tables.py's adaptive rows
(`--keyframe-policies`) and the demo's `--keyframe-rate` without `--threshold`.

Adaptive schedules need the stream, not snippets: every segment of the test split is
streamed continuously and every labelled frame is scored, keyframes included (the average
case, unlike the worst-case interval table). Thresholds are calibrated on the TRAINING
split, never on the frames reported. CamVid train is labelled at 1 Hz and its test video at
15 Hz, so its calibration streams are 15 Hz streams made from training frames: between two
real frames 1 s apart, 14 frames each moved along the DIS flow between them by k/15 of it
(from the nearer real frame; accel.dataset.flow_pairs), the motion of one val hop.
Cityscapes' training sequences are already at the test rate and stream as they are.
"""
import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from accel.cli.calibration import CalibrationStreams, calibration_streams, check_record_memory
from accel.core.budget import ObservingSegmenter, ReferenceHead, calibrate_for_rate
from accel.core.keyframes import POLICIES, KeyframePolicy, default_gaps, make_policy
from accel.core.tester import LoadedFrame, prepare_frame
from accel.symbols.versions import get_version
from accel.utils import image as imutil
from accel.utils.plots import line_plot

logger = logging.getLogger("accel.keyframes")

__all__ = ["ADAPTIVE", "CALIBRATION_STEPS", "Candidate", "test_streams", "CalibrationStreams",
           "calibration_streams",
           "record_streams", "budget_policy", "prepare_streams", "evaluate", "compare",
           "markdown", "plots"]

# Adaptive policies, in table order (fixed and always are schedules, not policies to tune).
ADAPTIVE = tuple(name for name in POLICIES if name not in ("fixed", "always"))
# Test-rate frames per step between two consecutive training frames (CamVid: train 30 raw
# frames apart, val 2, so 15 val hops per training pair; Cityscapes: the same rate).
CALIBRATION_STEPS = {"camvid": 15, "cityscapes": 1}


def _name(version: str) -> str:
    row = get_version(version)
    return row.paper_row or row.method          # 'Deep Feature Flow', 'Accel-18'


def supported(policy: str, has_update: bool) -> bool:
    """Whether a version with (or without) an update branch can run `policy`."""
    return has_update or "update_scores" not in POLICIES[policy].needs


# ----------------------------------------------------------------------------- streams

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


def budget_policy(name: str, rate: float, network, arg_params, aux_params, train_video,
                  steps: int, pairs: int = 40, chunk: int = 10, source: str = "",
                  allow_extra: bool = False, min_gap: Optional[int] = None,
                  max_gap: Optional[int] = None, options: Optional[Dict[str, Any]] = None
                  ) -> Tuple[KeyframePolicy, Dict[str, Any]]:
    """Budget mode for one run (the demo's --keyframe-rate): the policy `name` with the
    threshold that gives `rate` on calibration streams of `train_video` (`steps`: see
    CALIBRATION_STEPS; `options`: VideoSegmenter's, e.g. runtime, int8)."""
    streams = calibration_streams(train_video, pairs, chunk, steps)
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
           "evaluations": cal["evaluations"],
           "calibration": streams.describe()}
    logger.info("budget mode: %s at rate %.3f -> threshold %.4g (rate %.3f on the training "
                "streams)", name, rate, cal["threshold"], cal["train_rate"])
    return policy, cal


# -------------------------------------------------------------------------- evaluation

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


def evaluate(observer: ObservingSegmenter, streams: Sequence[Sequence[LoadedFrame]],
             policy: KeyframePolicy, num_classes: int, class_names, consistency: bool = True,
             flow_cache: Optional[Dict] = None) -> Dict[str, Any]:
    """Run `policy` over every prepared stream (`prepare_streams`): mIoU (None without
    labels), by distance, schedule, timing, consistency (its image flows kept in
    `flow_cache` across runs)."""
    from accel.core.consistency import TemporalConsistency
    from accel.core.keyframes import schedule_stats
    from accel.core.metrics import SegmentationEvaluator

    overall = SegmentationEvaluator(num_classes, class_names)
    by_distance: Dict[int, Any] = {}
    cons = TemporalConsistency(cache=flow_cache) if consistency else None
    flags_all, times, policy_times = [], [], []
    for s, stream in enumerate(streams):
        policy.reset()
        observer.reset()
        if cons is not None:
            cons.reset()
        is_key, age = True, 0
        for i, frame in enumerate(stream):
            age = 0 if is_key else age + 1
            result, obs, copy_s = observer.step(frame.data, is_key, age, i)
            t0 = time.perf_counter()
            next_key = policy.next_is_key(obs)
            decide_s = time.perf_counter() - t0
            flags_all.append(is_key)
            times.append(result.network_s + copy_s + decide_s)
            policy_times.append(copy_s + decide_s)
            h, w = frame.image.shape[:2]
            pred = result.pred[:h, :w]
            if cons is not None:
                cons.process(frame.image, pred, key=(s, i))
            if frame.label is not None:
                pred_l = imutil.resize_label(pred, frame.label.shape[:2])
                overall.process(pred_l, frame.label)
                if age not in by_distance:
                    by_distance[age] = SegmentationEvaluator(num_classes, class_names)
                by_distance[age].process(pred_l, frame.label)
            is_key = next_key
    res = overall.evaluate()
    out = {"mIoU": float(res["mIoU"]) if res["frames"] else None, "IoU": res.get("IoU"),
           "by_distance": {int(d): float(by_distance[d].evaluate()["mIoU"])
                           for d in sorted(by_distance)},
           "schedule": schedule_stats(flags_all, times),
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
    flows = cache.setdefault("flows", {})
    num_classes, class_names = video.num_classes, video.class_names
    versions: Dict[str, Dict[str, List[Dict[str, Any]]]] = {}
    ordered = sorted(candidates, key=lambda c: c.network.update_scores_output() is None)
    for cand in ordered:
        observer = ObservingSegmenter(cand.network, cand.arg_params, cand.aux_params, None,
                                      cand.checkpoint, cand.allow_extra,
                                      **(cand.options or {}))
        key = (cand.checkpoint, cand.version if observer.has_update else None)
        records = recorded.get(key) or next(
            (r for (ckpt, _), r in recorded.items() if ckpt == cand.checkpoint
             and not observer.has_update), None)
        if records is None:
            records = recorded[key] = record_streams(observer, cal_streams)
        head = ReferenceHead(observer.arg_params)
        warm_up(observer, streams)
        name = _name(cand.version)
        block: Dict[str, List[Dict[str, Any]]] = {"fixed": [], "adaptive": []}
        for interval in [1] + list(rates):
            row = evaluate(observer, streams, make_policy("fixed", interval=interval),
                           num_classes, class_names, consistency, flows)
            row.update(policy="fixed", target_interval=interval, threshold=None,
                       train_rate=1.0 / interval)
            logger.info("%s fixed i=%d: mIoU %s, rate %.3f, %.3f s/frame", name, interval,
                        _pct(row["mIoU"]), row["schedule"]["key_rate"],
                        row["schedule"]["time_mean_s"])
            block["fixed"].append(row)
        for policy_name in policies or ADAPTIVE:
            if not supported(policy_name, observer.has_update):
                continue
            use_update = "update_scores" in POLICIES[policy_name].needs
            for interval in rates:
                rate = 1.0 / interval
                policy, cal = calibrate_for_rate(policy_name, rate, records, head, use_update)
                row = evaluate(observer, streams, policy, num_classes, class_names,
                               consistency, flows)
                lo, hi = default_gaps(rate)
                row.update(policy=policy_name, target_interval=interval,
                           threshold=cal["threshold"], train_rate=cal["rate"], min_gap=lo,
                           max_gap=hi, calibration_evaluations=cal["evaluations"])
                logger.info("%s %s 1/%d: threshold %.4g (train rate %.3f): mIoU %s, "
                            "rate %.3f, %.3f s/frame", name, policy_name, interval,
                            cal["threshold"], cal["rate"], _pct(row["mIoU"]),
                            row["schedule"]["key_rate"], row["schedule"]["time_mean_s"])
                block["adaptive"].append(row)
        versions[cand.version] = block
        del observer
        if on_version is not None:
            on_version(cand.version, block)
    # in the order asked for
    return {c.version: versions[c.version] for c in candidates}


# ----------------------------------------------------------------------------- output

def _pct(value: Optional[float], fmt: str = "%.2f%%") -> str:
    return "-" if value is None else fmt % (100 * value)


def fixed_miou_at(rate: float, fixed_rows: Sequence[Dict[str, Any]]) -> Optional[float]:
    """mIoU of the fixed schedule interpolated at a keyframe rate (linear in the rate)."""
    pts = sorted((r["schedule"]["key_rate"], r["mIoU"]) for r in fixed_rows
                 if r["mIoU"] is not None)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    if not xs or rate < xs[0] or rate > xs[-1]:
        return None
    return float(np.interp(rate, xs, ys))


def markdown(results: Dict[str, Any], title: str = "# Fixed vs adaptive keyframes") -> str:
    """The comparison table (every run) and mIoU by distance pooled per policy."""
    lines = [title, "",
             f"Model `{results['model']}`; test stream(s): {results['test']}; thresholds "
             f"calibrated on: {results['calibration']['what']}.", "",
             "mIoU over every labelled frame of the stream (%); rate = keyframes / frames "
             "(test stream; train = the calibration streams, first frame excluded); "
             "Δ = mIoU minus the fixed schedule's interpolated at the same achieved rate; "
             "time = network + policy per frame (mean / p99 / max, s); run = longest run of "
             "consecutive keyframes; consistency = temporal consistency (%).", "",
             "| method | policy | target rate | threshold | rate (test) | rate (train) | "
             "mIoU | Δ vs fixed | time mean / p99 / max | gaps min-max | run | "
             "consistency |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for v, block in results["versions"].items():
        fixed = block["fixed"]
        for row in fixed + block["adaptive"]:
            s = row["schedule"]
            ref = None if row["policy"] == "fixed" or row["mIoU"] is None else \
                fixed_miou_at(s["key_rate"], fixed)
            d = "" if ref is None else "%+.1f" % (100 * (row["mIoU"] - ref))
            cons = row.get("consistency", {}).get("consistency")
            lines.append("| %s | %s | 1/%d | %s | %.3f | %s | %s | %s | %.3f / %.3f / %.3f | "
                         "%s-%s | %d | %s |" % (
                             _name(v), row["policy"], row["target_interval"],
                             "" if row.get("threshold") is None else "%.4g" % row["threshold"],
                             s["key_rate"],
                             "" if row.get("train_rate") is None else "%.3f" % row["train_rate"],
                             _pct(row["mIoU"], "%.1f"), d, s["time_mean_s"], s["time_p99_s"],
                             s["time_max_s"], s["gap_min"], s["gap_max"], s["longest_key_run"],
                             "" if cons is None else "%.1f" % (100 * cons)))
    if all(r["mIoU"] is None for b in results["versions"].values() for r in b["fixed"]):
        return "\n".join(lines) + "\n"
    lines += ["", "## mIoU by distance from the keyframe (%), pooled over the rates of each "
              "policy", ""]
    for v, block in results["versions"].items():
        rows = block["fixed"][1:] + block["adaptive"]
        if not rows:
            continue
        dmax = max(max(r["by_distance"]) for r in rows)
        lines += [f"**{_name(v)}**", "",
                  "| policy | " + " | ".join(f"d={d}" for d in range(dmax + 1)) + " |",
                  "|---|" + "---:|" * (dmax + 1)]
        for policy in dict.fromkeys(r["policy"] for r in rows):
            per: Dict[int, List[float]] = {}
            for r in rows:
                if r["policy"] == policy:
                    for d, m in r["by_distance"].items():
                        per.setdefault(int(d), []).append(m)
            lines.append(f"| {policy} | " + " | ".join(
                "%.1f" % (100 * np.mean(per[d])) if d in per else "" for d in range(dmax + 1))
                + " |")
        lines.append("")
    lines.append("(pooled = the mean of the runs' per-distance mIoU where a run has frames at "
                 "that distance; run-level numbers are in the JSON)")
    return "\n".join(lines) + "\n"


def plots(results: Dict[str, Any], out_dir: str, prefix: str = "") -> List[str]:
    """mIoU against keyframe rate and against time per frame: fixed (solid) and adaptive
    (dashed) curves of every version on the same axes (PNG + SVG)."""
    import os
    written: List[str] = []
    for xkey, xlabel, fname in (("key_rate", "keyframe rate (keyframes / frame)",
                                 "miou_vs_rate.png"),
                                ("time_mean_s", "time per frame (s, network + policy)",
                                 "miou_vs_time.png")):
        series, styles = {}, {}
        for v, block in results["versions"].items():
            by_policy: Dict[str, List[Dict[str, Any]]] = {"fixed": block["fixed"]}
            for r in block["adaptive"]:
                by_policy.setdefault(r["policy"], []).append(r)
            for policy, rows in by_policy.items():
                pts = sorted((r["schedule"][xkey], 100 * r["mIoU"]) for r in rows
                             if r["mIoU"] is not None)
                if pts:
                    label = f"{_name(v)} {policy}"
                    series[label] = ([p[0] for p in pts], [p[1] for p in pts])
                    styles[label] = "-" if policy == "fixed" else "--"
        if not series:
            continue
        written += line_plot(os.path.join(out_dir, prefix + fname), series, xlabel,
                             "mIoU (%)", "mIoU against " + xlabel.split(" (")[0] +
                             ": fixed and adaptive keyframes", styles=styles)
    return written
