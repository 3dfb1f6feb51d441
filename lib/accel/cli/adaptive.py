"""adaptive_keyframes.py's command line: fixed against adaptive keyframe schedules on a
labelled video stream, or on an unlabelled --video (accel.keyframes.comparison).

Outputs in --output: results.json (written after each version, and last), results.md,
miou_vs_rate.png/.svg and miou_vs_time.png/.svg (accel.keyframes.report); the folder is
locked while the run writes and INCOMPLETE until it ends (accel.utils.outputs).
"""
import argparse
import os
from typing import Any, Dict, Optional, Sequence

from accel.cli import repo_path
from accel.cli.demo import load_config_file, load_model
from accel.cli.flags import add_debug_flag, add_output_arguments, nonnegative_int, positive_int
from accel.cli.keyframes import add_comparison_arguments, calibration_from_args
from accel.dataset import VideoFrames, dataset_from_config
from accel.keyframes import comparison, report
from accel.keyframes.streams import prepare_streams, test_streams
from accel.networks import accel_network
from accel.utils.checkpoint import params_path
from accel.utils.io import write_json, write_text
from accel.utils.outputs import RunOutput

__all__ = ["DEFAULT_CFG", "OUTPUTS", "build_parser", "adaptive_keyframes"]

DEFAULT_CFG = "experiments/dff_deeplab/cfgs/camvid_protocol_v2_accel_18.yaml"
OUTPUTS = ("results.json", "results.md", "miou_vs_rate.png", "miou_vs_rate.svg",
           "miou_vs_time.png", "miou_vs_time.svg")


def build_parser(description: str = "") -> argparse.ArgumentParser:
    """adaptive_keyframes.py's flags."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--cfg", default=DEFAULT_CFG, help="yaml: data set, scales, stride, classes")
    p.add_argument("--model", required=True, metavar="PREFIX", help="Accel-18 checkpoint prefix")
    p.add_argument("--epoch", type=nonnegative_int, default=0)
    p.add_argument("--data-root", default=None, help="data set folder (default: the --cfg's)")
    p.add_argument("--test-split", default="val", help="split reported")
    p.add_argument("--versions", nargs="+", default=["dff", "18"], choices=["dff", "18"])
    add_comparison_arguments(p, policies_default="every one the version supports",
                             rates_default=[2, 3, 4, 5, 6, 7, 8], rates_help="2 to 8",
                             aliases=True)
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
    add_output_arguments(p, required=True)
    add_debug_flag(p)
    return p


def adaptive_keyframes(argv: Optional[Sequence[str]], description: str = "") -> Dict[str, Any]:
    """Compare the schedules; writes results.json (after each version), results.md and the
    plots into --output."""
    args = build_parser(description).parse_args(argv)
    unused = [f for f, v in (("--video-scales", args.video_scales),
                             ("--video-frames", args.video_frames)) if v is not None]
    if unused and not args.video:
        raise ValueError(f"{', '.join(unused)}: only used with --video FILE")
    output = RunOutput(args.output, "adaptive_keyframes", OUTPUTS, overwrite=args.overwrite,
                       results="results.json")
    # Locked while it runs; INCOMPLETE (results.json holds the versions done) until the end.
    with output:
        return _run(args, output)


def _run(args: argparse.Namespace, output: RunOutput) -> Dict[str, Any]:
    """Everything adaptive_keyframes() does once the flags and the output folder are checked."""
    cfg, cfg_path = load_config_file(repo_path(args.cfg))
    if args.data_root:
        cfg.dataset.dataset_path = repo_path(args.data_root)

    def open_split(split: str):
        return dataset_from_config(cfg, train=False, key_interval=1, image_set=split)

    test_video = open_split(args.test_split)
    arg_params, aux_params = load_model(args.model, args.epoch, "--model")
    if args.video:
        streams = [[(frame, None) for frame in VideoFrames(args.video,
                                                           max_frames=args.video_frames)]]
        source = "%s: %d frames (no labels)" % (args.video, len(streams[0]))
    else:
        streams = test_streams(test_video)
        source = "%s/%s: %d stream(s), %d frames" % (cfg.dataset.dataset_path, args.test_split,
                                                     len(streams), sum(map(len, streams)))
    checkpoint = params_path(args.model, args.epoch)
    cal_streams = calibration_from_args(args, cfg.dataset.dataset, open_split,
                                        None if args.video else args.test_split)
    results: Dict[str, Any] = {"model": checkpoint, "cfg": cfg_path, "test": source,
                               "path": "reference" if args.reference_path else "fast",
                               "versions": {}, "calibration": {"what": cal_streams.describe()}}
    candidates = [comparison.Candidate(
        v, accel_network(v, test_video.num_classes, fast=not args.reference_path),
        arg_params, aux_params, checkpoint, allow_extra=v == "dff") for v in args.versions]
    json_path = os.path.join(args.output, "results.json")

    def save(version, block):
        results["versions"][version] = block
        write_json(json_path, results)

    frames = prepare_streams(streams, test_video, args.video_scales)
    output.start()
    results["versions"] = comparison.compare(
        candidates, frames, test_video, cal_streams, args.keyframe_rates,
        args.keyframe_policies, consistency=not args.no_consistency, on_version=save)
    write_text(os.path.join(args.output, "results.md"), report.markdown(results))
    results["plots"] = [] if args.video else report.plots(results, args.output)
    write_json(json_path, results)
    return results
