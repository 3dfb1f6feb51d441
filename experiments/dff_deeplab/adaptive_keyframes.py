"""Fixed vs adaptive keyframe schedules on a labelled video stream (issue #14; CamVid
protocol v2, stage 5c).

    python experiments/dff_deeplab/adaptive_keyframes.py --model PREFIX --epoch N \
        [--cfg experiments/dff_deeplab/cfgs/camvid_protocol_v2_accel_18.yaml] \
        [--data-root DIR] [--versions dff 18] [--rates 2 3 4 5 6 7 8] --output DIR

For each version (DFF, Accel-18; both from the Accel-18 checkpoint, whose DeepLab-101 and
FlowNet are DFF's) it streams the whole test split (every segment continuously: adaptive
schedules need the stream, not snippets) and scores every labelled frame, with:
- `fixed` at intervals 1..8 (the original schedule, keyframe rate 1/i);
- every adaptive policy of accel.core.keyframes that the version supports, in budget mode at
  the target rates 1/2..1/8: the threshold is calibrated on the TRAINING split, never on the
  frames reported. CamVid train is labelled at 1 Hz and the test video at 15 Hz, so the
  calibration streams are 15 Hz streams made from the training frames: between two real
  frames 1 s apart, 14 frames each moved along the DIS flow between them by k/15 of it
  (from the nearer real frame; accel.dataset.flow_pairs), the motion of one val hop. The
  network's key states, flows and update-branch scores are recorded once per calibration
  frame, and each candidate threshold is run closed loop over them in NumPy (warp the state,
  the reference head), exactly the segmenter's propagation up to float rounding.
Reported per run: mIoU over all labelled frames, mIoU by distance from the keyframe, the
achieved keyframe rate (on the test stream and on the training streams), gaps, the longest
run of consecutive keyframes, time per frame (network + the policy's own work: copying the
signals and deciding) mean / p99 / max, and temporal consistency (accel.core.consistency).
Outputs in --output: results.json, results.md, miou_vs_rate.png, miou_vs_time.png.

`--video FILE` streams an unlabelled video (any file OpenCV reads, or a frame folder)
instead of the test split, with the same thresholds (still calibrated on the training
split): keyframe rate, gaps, runs, timing and consistency per policy, no mIoU.
"""
import argparse
import json
import logging
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

logger = logging.getLogger("adaptive_keyframes")

DEFAULT_CFG = "experiments/dff_deeplab/cfgs/camvid_protocol_v2_accel_18.yaml"
# Policies per version: the disagreement signal needs an update branch.
VERSION_POLICIES = {"dff": ("flow", "flow-inconsistency"),
                    "18": ("flow", "flow-inconsistency", "disagreement")}
VERSION_NAMES = {"dff": "Deep Feature Flow", "18": "Accel-18"}
CAL_FRAMES_PER_PAIR = 15   # CamVid train 30 raw frames apart, val 2: 15 val hops per pair


# ----------------------------------------------------------------------------- frames

def preprocess(image: np.ndarray, means, scales, stride) -> Tuple[np.ndarray, np.ndarray]:
    """(network-scale BGR image, (1, 3, H, W) padded tensor), as the test preprocessing."""
    from accel.utils import image as imutil
    h, w, _ = imutil.scaled_size(image.shape[0], image.shape[1], scales)
    small = imutil.resize_image(image, (h, w))
    return small, imutil.pad_to_stride(imutil.image_to_tensor(small, means), stride, 0.0)


def test_streams(video) -> List[List[Any]]:
    """The labelled frames of each segment of `video`, in order (CamVid: only labelled
    frames exist, so every frame of the stream is scored)."""
    by_segment: Dict[Tuple[str, ...], List[Any]] = {}
    for item in video.all_items:
        by_segment.setdefault(item.segment, []).append(item)
    streams = []
    for segment, items in by_segment.items():
        labelled = {it.position: it for it in items}
        streams.append([(path, labelled.get(p)) for p, path in enumerate(segment)])
    return streams


def calibration_streams(video, pairs: int, chunk: int, means, scales, stride
                        ) -> List[List[np.ndarray]]:
    """15 Hz streams from the training split: `pairs` real consecutive pairs in runs of
    `chunk`, spread evenly over the segments; each pair (A, B), 1 s apart, gives A and the
    14 frames between: k <= 7 is A moved forward by k/15 of the DIS flow B -> A, k >= 8 is B
    moved back by (15-k)/15 of it."""
    from accel.dataset.flow_pairs import dis_flow, shift_along_flow
    from accel.utils import image as imutil
    segments = sorted({it.segment for it in video.all_items})
    windows = [(s, i) for s in segments for i in range(0, len(s) - chunk)]
    if not windows:
        raise ValueError(f"no training segment has {chunk + 1} frames for calibration")
    runs = max(1, pairs // chunk)
    picks = [windows[int(j)] for j in np.linspace(0, len(windows) - 1, runs).round()]
    streams = []
    for segment, start in picks:
        frames = [preprocess(imutil.read_image(p), means, scales, stride)[0]
                  for p in segment[start:start + chunk + 1]]
        stream = []
        for a, b in zip(frames, frames[1:]):
            flow = dis_flow(b, a)                     # b(x) ~ a(x + flow(x))
            for k in range(CAL_FRAMES_PER_PAIR):
                f = k / CAL_FRAMES_PER_PAIR
                img = a if k == 0 else (shift_along_flow(a, f * flow) if k <= 7
                                        else shift_along_flow(b, -(1 - f) * flow))
                stream.append(imutil.pad_to_stride(imutil.image_to_tensor(img, means),
                                                   stride, 0.0))
        stream.append(imutil.pad_to_stride(imutil.image_to_tensor(frames[-1], means),
                                           stride, 0.0))
        streams.append(stream)
    logger.info("calibration: %d synthetic 15 Hz streams of %d frames from %d real training "
                "pairs", len(streams), len(streams[0]), runs * chunk)
    return streams


# ------------------------------------------------------------------- the segmenter side

class ObservingSegmenter:
    """A VideoSegmenter driven frame by frame with an explicit is_key, returning what the
    policies read (flow, both branches' stride-16 scores) through the segmenter's own
    observation hook (a policy that records and decides nothing)."""

    def __init__(self, network, arg_params, aux_params, fast: bool = True):
        from accel.core.inference import VideoSegmenter
        from accel.core.keyframes import KeyframePolicy

        class Recorder(KeyframePolicy):
            name = "recorder"

            def next_is_key(self, obs) -> bool:
                return False   # the driver passes is_key itself

        if fast and not network.fast:
            from dff_deeplab.fast_symbol import FastAccelNetwork
            network = FastAccelNetwork(network.name, network.num_classes, network.warp_op)
        self.seg = VideoSegmenter(network, arg_params, aux_params, interval=1,
                                  policy=Recorder())
        self.has_update = self.seg.network.update_scores_output() is not None

    def reset(self) -> None:
        self.seg.reset()

    def step(self, data: np.ndarray, is_key: bool, age: int, index: int):
        """(FrameResult, FrameObservation, seconds spent copying the signals out)."""
        from accel.core.keyframes import FrameObservation
        t0 = time.perf_counter()
        result = self.seg.step(data, is_key=is_key)
        seen = result.observation
        obs = FrameObservation(index, is_key, 0 if is_key else age, seen.flow,
                               seen.warped_scores, seen.update_scores)
        return result, obs, max(0.0, time.perf_counter() - t0 - result.network_s)

    def record(self, frames: Sequence[np.ndarray]) -> Dict[str, List[np.ndarray]]:
        """For every frame: the keyframe state (as if it were a keyframe), the flow from the
        previous frame and the update-branch scores (None for the first frame)."""
        seg, net = self.seg, self.seg.network
        seg.reset()
        seg.step(frames[0], is_key=True)             # binds both graphs
        states, flows, updates = [], [None], [None]
        feat = None
        for i, frame in enumerate(frames):
            out = seg._key.forward(data=frame)
            states.append(out[net.state_output].asnumpy()[0])
            if feat is None:
                feat = np.zeros((1,) + states[0].shape, np.float32)
            if i:
                cur = seg._cur.forward(data=frame, data_key=frames[i - 1], feat_key=feat)
                flows.append(cur[net.flow_output].asnumpy()[0] * 2.5)   # DFF's scaling
                updates.append(cur[net.update_scores_output()].asnumpy()[0]
                               if self.has_update else None)
        return {"state": states, "flow": flows, "update": updates}


class ReferenceHead:
    """The propagated branch in NumPy: warp the state hop by hop, then `fc6` (+ReLU) and
    `score` at stride 16, as the segmenter's non-key graph (fast path: the state is fc6
    without its bias; reference path: res5c_relu)."""

    def __init__(self, arg_params):
        get = lambda k: arg_params[k].asnumpy().astype(np.float32)
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


def simulate(policy, records: Sequence[Dict[str, List]], head: ReferenceHead,
             use_update: bool) -> List[List[bool]]:
    """Keyframe flags of `policy` run closed loop over recorded calibration streams."""
    from accel.core.keyframes import FrameObservation
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


# ------------------------------------------------------------------------- evaluation

def evaluate(obs_seg: ObservingSegmenter, streams, policy, video, consistency: bool = True,
             scales: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """Run `policy` over every test stream ((frame path or BGR image, labelled item or None)
    per frame); mIoU (None without labels), by distance, schedule, timing."""
    from accel.core.consistency import TemporalConsistency
    from accel.core.keyframes import schedule_stats
    from accel.core.metrics import SegmentationEvaluator
    from accel.utils import image as imutil

    overall = SegmentationEvaluator(video.num_classes, video.class_names)
    by_distance: Dict[int, Any] = {}
    cons = TemporalConsistency() if consistency else None
    flags_all, times, policy_times = [], [], []
    for stream in streams:
        policy.reset()
        obs_seg.reset()
        if cons is not None:
            cons.reset()
        is_key, age = True, 0
        for i, (path, item) in enumerate(stream):
            image = path if isinstance(path, np.ndarray) else imutil.read_image(path)
            small, data = preprocess(image, video.pixel_means, scales or video.scales,
                                     video.stride)
            age = 0 if is_key else age + 1
            result, obs, copy_s = obs_seg.step(data, is_key, age, i)
            t0 = time.perf_counter()
            next_key = policy.next_is_key(obs)
            decide_s = time.perf_counter() - t0
            flags_all.append(is_key)
            times.append(result.network_s + copy_s + decide_s)
            policy_times.append(copy_s + decide_s)
            h, w = small.shape[:2]
            pred = result.pred[:h, :w]
            if cons is not None:
                cons.process(small, pred)
            if item is not None:
                label = video.load_label(item)
                pred_l = imutil.resize_label(pred, label.shape[:2])
                overall.process(pred_l, label)
                if age not in by_distance:
                    by_distance[age] = SegmentationEvaluator(video.num_classes,
                                                             video.class_names)
                by_distance[age].process(pred_l, label)
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


def warm_up(obs_seg: ObservingSegmenter, streams, video, scales=None) -> None:
    """Bind and run both graphs once (a keyframe and a non-key frame), then reset."""
    from accel.utils import image as imutil
    frames = [preprocess(p if isinstance(p, np.ndarray) else imutil.read_image(p),
                         video.pixel_means, scales or video.scales, video.stride)[1]
              for p, _ in streams[0][:2]]
    obs_seg.reset()
    obs_seg.step(frames[0], True, 0, 0)
    obs_seg.step(frames[1], False, 1, 1)
    obs_seg.reset()


# ----------------------------------------------------------------------------- output

def _pct(value: Optional[float], fmt: str = "%.2f%%") -> str:
    return "-" if value is None else fmt % (100 * value)


def fixed_miou_at(rate: float, fixed_rows: Sequence[Dict[str, Any]]) -> Optional[float]:
    """mIoU of the fixed schedule interpolated at a keyframe rate (linear in the rate)."""
    pts = sorted((r["schedule"]["key_rate"], r["mIoU"]) for r in fixed_rows)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    if not xs or rate < xs[0] or rate > xs[-1]:
        return None
    return float(np.interp(rate, xs, ys))


def markdown(results: Dict[str, Any]) -> str:
    lines = ["# Fixed vs adaptive keyframes", "",
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
            delta = None if row["policy"] == "fixed" or row["mIoU"] is None else \
                fixed_miou_at(s["key_rate"], fixed)
            d = "" if delta is None else "%+.1f" % (100 * (row["mIoU"] - delta))
            cons = row.get("consistency", {}).get("consistency")
            lines.append("| %s | %s | 1/%d | %s | %.3f | %s | %s | %s | %.3f / %.3f / %.3f | "
                         "%s-%s | %d | %s |" % (
                             VERSION_NAMES[v], row["policy"], row["target_interval"],
                             "" if row.get("threshold") is None else "%.4g" % row["threshold"],
                             s["key_rate"],
                             "" if row.get("train_rate") is None else "%.3f" % row["train_rate"],
                             _pct(row["mIoU"], "%.1f"), d, s["time_mean_s"], s["time_p99_s"],
                             s["time_max_s"], s["gap_min"], s["gap_max"], s["longest_key_run"],
                             "" if cons is None else "%.1f" % (100 * cons)))
    if all(r["mIoU"] is None for b in results["versions"].values() for r in b["fixed"]):
        return "\n".join(lines) + "\n"
    lines += ["", "## mIoU by distance from the keyframe (%), pooled over the rates "
              "1/2..1/8 of each policy", ""]
    for v, block in results["versions"].items():
        rows = block["fixed"][1:] + block["adaptive"]
        dmax = max(max(r["by_distance"]) for r in rows)
        lines += [f"**{VERSION_NAMES[v]}**", "",
                  "| policy | " + " | ".join(f"d={d}" for d in range(dmax + 1)) + " |",
                  "|---|" + "---:|" * (dmax + 1)]
        for policy in ["fixed"] + list(VERSION_POLICIES[v]):
            per = {}
            for r in rows:
                if r["policy"] == policy:
                    for d, m in r["by_distance"].items():
                        per.setdefault(int(d), []).append(m)
            lines.append(f"| {policy} | " + " | ".join(
                "%.1f" % (100 * np.mean(per[d])) if d in per else "" for d in range(dmax + 1))
                + " |")
        lines.append("")
    lines.append("(pooled = the mean of the runs' per-distance mIoU where a run has frames at "
                 "that distance; run-level numbers are in results.json)")
    return "\n".join(lines) + "\n"


def plots(results: Dict[str, Any], out_dir: str) -> List[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for xkey, xlabel, fname in (("key_rate", "keyframe rate (keyframes / frame)",
                                 "miou_vs_rate.png"),
                                ("time_mean_s", "time per frame (s, network + policy)",
                                 "miou_vs_time.png")):
        versions = list(results["versions"])
        fig, axes = plt.subplots(1, len(versions), figsize=(6 * len(versions), 4.5),
                                 squeeze=False)
        for ax, v in zip(axes[0], versions):
            block = results["versions"][v]
            series = {"fixed": block["fixed"]}
            for r in block["adaptive"]:
                series.setdefault(r["policy"], []).append(r)
            for name, rows in series.items():
                pts = sorted((r["schedule"][xkey], 100 * r["mIoU"]) for r in rows)
                ax.plot([p[0] for p in pts], [p[1] for p in pts],
                        marker="o" if name == "fixed" else "s",
                        linestyle="-" if name == "fixed" else "--", label=name)
            ax.set_title(VERSION_NAMES[v])
            ax.set_xlabel(xlabel)
            ax.set_ylabel("mIoU (%)")
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        path = os.path.join(out_dir, fname)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


# ------------------------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cfg", default=DEFAULT_CFG, help="yaml: data set, scales, stride, classes")
    p.add_argument("--model", required=True, metavar="PREFIX", help="Accel-18 checkpoint prefix")
    p.add_argument("--epoch", type=int, default=0)
    p.add_argument("--data-root", default=None, help="data set folder (default: the --cfg's)")
    p.add_argument("--train-split", default="train", help="calibration split")
    p.add_argument("--test-split", default="val", help="split reported")
    p.add_argument("--versions", nargs="+", default=["dff", "18"], choices=list(VERSION_POLICIES))
    p.add_argument("--rates", nargs="+", type=int, default=[2, 3, 4, 5, 6, 7, 8],
                   metavar="I", help="target keyframe rates 1/I (fixed: intervals 1 and these)")
    p.add_argument("--policies", nargs="+", default=None,
                   help="adaptive policies (default: every one the version supports)")
    p.add_argument("--calib-pairs", type=int, default=40,
                   help="real training pairs (1 s apart) behind the 15 Hz calibration streams")
    p.add_argument("--calib-chunk", type=int, default=10,
                   help="consecutive pairs per calibration stream")
    p.add_argument("--reference-path", action="store_true",
                   help="the official graphs instead of the fast CPU path")
    p.add_argument("--no-consistency", action="store_true")
    p.add_argument("--video", default=None,
                   help="stream this unlabelled video instead of the test split (no mIoU)")
    p.add_argument("--video-scales", nargs=2, type=int, default=None, metavar=("SHORT", "LONG"),
                   help="resize of the --video frames (default: the --cfg's SCALES)")
    p.add_argument("--video-frames", type=int, default=None, help="first N frames of --video")
    p.add_argument("--output", required=True)
    return p


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from accel.config import load_config
    from accel.core.keyframes import calibrate_threshold, make_policy, default_gaps
    from accel.dataset import dataset_from_config
    from accel.utils.checkpoint import load_checkpoint
    from dff_deeplab.symbol import AccelNetwork

    cfg = load_config(args.cfg)
    if args.data_root:
        cfg.dataset.dataset_path = args.data_root
    test_video = dataset_from_config(cfg, train=False, key_interval=1, image_set=args.test_split)
    train_video = dataset_from_config(cfg, train=False, key_interval=1,
                                      image_set=args.train_split)
    arg_params, aux_params = load_checkpoint(args.model, args.epoch)
    if args.video:
        from accel.dataset import VideoFrames
        streams = [[(frame, None) for frame in VideoFrames(args.video,
                                                           max_frames=args.video_frames)]]
        source = "%s: %d frames (no labels)" % (args.video, len(streams[0]))
    else:
        streams = test_streams(test_video)
        source = "%s/%s: %d stream(s), %d frames" % (cfg.dataset.dataset_path, args.test_split,
                                                     len(streams), sum(map(len, streams)))
    scales = args.video_scales
    os.makedirs(args.output, exist_ok=True)
    results: Dict[str, Any] = {
        "model": "%s-%04d.params" % (args.model, args.epoch), "cfg": args.cfg,
        "test": source,
        "path": "reference" if args.reference_path else "fast", "versions": {}}
    cal_frames = calibration_streams(train_video, args.calib_pairs, args.calib_chunk,
                                     train_video.pixel_means, train_video.scales,
                                     train_video.stride)
    results["calibration"] = {
        "what": "%s/%s: %d synthetic 15 Hz streams of %d frames (%d real pairs)" % (
            cfg.dataset.dataset_path, args.train_split, len(cal_frames), len(cal_frames[0]),
            len(cal_frames) * args.calib_chunk)}
    # Key states and flows are the same for every version (one checkpoint): record them once,
    # with the update branch's scores when a version has one.
    t0 = time.perf_counter()
    recorder = ObservingSegmenter(
        AccelNetwork("18" if "18" in args.versions else args.versions[0],
                     test_video.num_classes, cfg.network.WARP_OP),
        arg_params, aux_params, fast=not args.reference_path)
    records = [recorder.record(frames) for frames in cal_frames]
    del recorder
    logger.info("recorded %d calibration frames in %.0f s", sum(map(len, cal_frames)),
                time.perf_counter() - t0)
    for v in args.versions:
        network = AccelNetwork(v, test_video.num_classes, cfg.network.WARP_OP)
        seg = ObservingSegmenter(network, arg_params, aux_params, fast=not args.reference_path)
        head = ReferenceHead(seg.seg.args)
        warm_up(seg, streams, test_video, scales)
        block = {"fixed": [], "adaptive": []}
        for interval in [1] + list(args.rates):
            policy = make_policy("fixed", interval=interval)
            row = evaluate(seg, streams, policy, test_video, not args.no_consistency, scales)
            row.update(policy="fixed", target_interval=interval, threshold=None,
                       train_rate=1.0 / interval)
            logger.info("%s fixed i=%d: mIoU %s, rate %.3f, %.3f s/frame",
                        VERSION_NAMES[v], interval, _pct(row["mIoU"]),
                        row["schedule"]["key_rate"], row["schedule"]["time_mean_s"])
            block["fixed"].append(row)
        for name in args.policies or VERSION_POLICIES[v]:
            if name == "disagreement" and not seg.has_update:
                continue
            for interval in args.rates:
                rate = 1.0 / interval
                factory = lambda t, name=name, rate=rate: make_policy(name, threshold=t,
                                                                      rate=rate)
                run = lambda policy: simulate(policy, records, head, seg.has_update)
                cal = calibrate_threshold(factory, run, rate, iterations=30, tolerance=0.002)
                policy = factory(cal["threshold"])
                row = evaluate(seg, streams, policy, test_video, not args.no_consistency,
                               scales)
                lo, hi = default_gaps(rate)
                row.update(policy=name, target_interval=interval, threshold=cal["threshold"],
                           train_rate=cal["rate"], min_gap=lo, max_gap=hi,
                           calibration_evaluations=cal["evaluations"])
                logger.info("%s %s 1/%d: threshold %.4g (train rate %.3f): mIoU %s, "
                            "rate %.3f, %.3f s/frame", VERSION_NAMES[v], name, interval,
                            cal["threshold"], cal["rate"], _pct(row["mIoU"]),
                            row["schedule"]["key_rate"], row["schedule"]["time_mean_s"])
                block["adaptive"].append(row)
        results["versions"][v] = block
        with open(os.path.join(args.output, "results.json"), "w") as f:
            json.dump(results, f, indent=1, default=float)
    with open(os.path.join(args.output, "results.md"), "w") as f:
        f.write(markdown(results))
    results["plots"] = [] if args.video else plots(results, args.output)
    with open(os.path.join(args.output, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=float)
    logger.info("wrote %s", os.path.join(args.output, "results.md"))
    return results


if __name__ == "__main__":
    main()
