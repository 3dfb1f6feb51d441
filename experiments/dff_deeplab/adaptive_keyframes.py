"""Fixed vs adaptive keyframe schedules on a labelled video stream (issue #14; CamVid
protocol v2, stage 5c).

    python experiments/dff_deeplab/adaptive_keyframes.py --model PREFIX --epoch N \
        [--cfg experiments/dff_deeplab/cfgs/camvid_protocol_v2_accel_18.yaml] \
        [--data-root DIR] [--versions dff 18] [--rates 2 3 4 5 6 7 8] --output DIR

For each version (DFF, Accel-18; both from the Accel-18 checkpoint, whose DeepLab-101 and
FlowNet are DFF's) it streams the whole test split (every segment continuously: adaptive
schedules need the stream, not snippets) and scores every labelled frame (the engine is
accel.cli.keyframes, shared with reproduce_tables.py --keyframe-policies), with:
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
import os
from typing import Any, Dict, Optional, Sequence

from accel.cli import repo_path, run

DEFAULT_CFG = "experiments/dff_deeplab/cfgs/camvid_protocol_v2_accel_18.yaml"


OUTPUTS = ("results.json", "results.md", "miou_vs_rate.png", "miou_vs_rate.svg",
           "miou_vs_time.png", "miou_vs_time.svg")


def build_parser() -> argparse.ArgumentParser:
    from accel.cli.flags import add_debug_flag, nonnegative_int, positive_int
    from accel.cli.keyframes import ADAPTIVE
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cfg", default=DEFAULT_CFG, help="yaml: data set, scales, stride, classes")
    p.add_argument("--model", required=True, metavar="PREFIX", help="Accel-18 checkpoint prefix")
    p.add_argument("--epoch", type=nonnegative_int, default=0)
    p.add_argument("--data-root", default=None, help="data set folder (default: the --cfg's)")
    p.add_argument("--train-split", default="train", help="calibration split")
    p.add_argument("--test-split", default="val", help="split reported")
    p.add_argument("--versions", nargs="+", default=["dff", "18"], choices=["dff", "18"])
    p.add_argument("--rates", nargs="+", type=positive_int, default=[2, 3, 4, 5, 6, 7, 8],
                   metavar="I", help="target keyframe rates 1/I (fixed: intervals 1 and these)")
    p.add_argument("--policies", nargs="+", default=None, choices=list(ADAPTIVE),
                   help="adaptive policies (default: every one the version supports)")
    p.add_argument("--calib-pairs", type=positive_int, default=40,
                   help="distinct real training pairs (1 s apart) behind the 15 Hz calibration "
                        "streams (at most those the split has)")
    p.add_argument("--calib-chunk", type=positive_int, default=10,
                   help="consecutive pairs per calibration stream")
    p.add_argument("--reference-path", action="store_true",
                   help="the official graphs instead of the fast CPU path")
    p.add_argument("--no-consistency", action="store_true")
    p.add_argument("--video", default=None,
                   help="stream this unlabelled video instead of the test split (no mIoU)")
    p.add_argument("--video-scales", nargs=2, type=positive_int, default=None,
                   metavar=("SHORT", "LONG"),
                   help="resize of the --video frames (default: the --cfg's SCALES)")
    p.add_argument("--video-frames", type=positive_int, default=None,
                   help="first N frames of --video")
    p.add_argument("--output", required=True,
                   help="output folder (a re-run replaces the files the previous run recorded "
                        "there, never others; one run at a time)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --output that this script did not write, "
                        "beside its files (those are never deleted or replaced)")
    add_debug_flag(p)
    return p


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Compare the schedules; writes results.json (after each version), results.md and the
    plots into --output (accel.utils.outputs)."""
    args = build_parser().parse_args(argv)
    # Imported here, after run() has imported MXNET_VERSION's mxnet.
    from accel.utils.outputs import RunOutput

    unused = [f for f, v in (("--video-scales", args.video_scales),
                             ("--video-frames", args.video_frames)) if v is not None]
    if unused and not args.video:
        raise ValueError(f"{', '.join(unused)}: only used with --video FILE")
    output = RunOutput(args.output, "adaptive_keyframes", OUTPUTS, overwrite=args.overwrite,
                       results="results.json")
    # Locked while it runs; INCOMPLETE (results.json holds the versions done) until the end.
    with output:
        return _run(args, output)


def _run(args: argparse.Namespace, output) -> Dict[str, Any]:
    """Everything main() does once the flags and the output folder are checked."""
    from accel.cli import keyframes
    from accel.cli.demo import load_config_file, load_model
    from accel.networks import accel_network
    from accel.dataset import dataset_from_config
    from accel.utils.checkpoint import params_path
    from accel.utils.io import write_json, write_text

    cfg, cfg_path = load_config_file(args.cfg)
    if args.data_root:
        cfg.dataset.dataset_path = repo_path(args.data_root)
    test_video = dataset_from_config(cfg, train=False, key_interval=1, image_set=args.test_split)
    train_video = dataset_from_config(cfg, train=False, key_interval=1,
                                      image_set=args.train_split)
    arg_params, aux_params = load_model(args.model, args.epoch, "--model")
    if args.video:
        from accel.dataset import VideoFrames
        streams = [[(frame, None) for frame in VideoFrames(args.video,
                                                           max_frames=args.video_frames)]]
        source = "%s: %d frames (no labels)" % (args.video, len(streams[0]))
    else:
        streams = keyframes.test_streams(test_video)
        source = "%s/%s: %d stream(s), %d frames" % (cfg.dataset.dataset_path, args.test_split,
                                                     len(streams), sum(map(len, streams)))
    checkpoint = params_path(args.model, args.epoch)
    results: Dict[str, Any] = {"model": checkpoint, "cfg": cfg_path, "test": source,
                               "path": "reference" if args.reference_path else "fast",
                               "versions": {}}
    steps = keyframes.CALIBRATION_STEPS.get(str(cfg.dataset.dataset).lower(), 1)
    cal_streams = keyframes.calibration_streams(train_video, args.calib_pairs,
                                                args.calib_chunk, steps)
    results["calibration"] = {"what": cal_streams.describe()}
    candidates = [keyframes.Candidate(
        v, accel_network(v, test_video.num_classes, fast=not args.reference_path),
        arg_params, aux_params, checkpoint, allow_extra=v == "dff") for v in args.versions]
    json_path = os.path.join(args.output, "results.json")

    def save(version, block):
        results["versions"][version] = block
        write_json(json_path, results)

    frames = keyframes.prepare_streams(streams, test_video, args.video_scales)
    output.start()
    results["versions"] = keyframes.compare(
        candidates, frames, test_video, cal_streams, args.rates, args.policies,
        consistency=not args.no_consistency, on_version=save)
    write_text(os.path.join(args.output, "results.md"), keyframes.markdown(results))
    results["plots"] = [] if args.video else keyframes.plots(results, args.output)
    write_json(json_path, results)
    return results


if __name__ == "__main__":
    run(main)
