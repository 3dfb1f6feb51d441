"""The demos' command lines: flags, data sources, model choice, and the demo run itself.

`accel_demo` (dff_deeplab/demo.py) and `deeplab_demo` (deeplab/demo.py) share every flag
but `--version/--interval`. A frame's way: `run_demo` opens the data (`open_dataset`, or
`VideoFrames` for `--video`), the evaluation loop of accel.core.tester reads and
preprocesses it, the segmenter (accel.core.inference) segments it, and the writer
(accel.utils.visualize.PredictionWriter) draws it; results go to `--output`.

The data a demo reads is chosen in accel.cli.data (configs and flag overrides, one merge
path).
"""
import argparse
import logging
import os
from dataclasses import replace
from typing import Any, Dict, Optional, Sequence, Tuple

from accel.cli import REPO_ROOT, repo_path
from accel.cli.checks import (check_demo_sizes, check_output_flags, demo_output,
                              frame_network_params, source_image_size)
from accel.cli.data import DemoData, add_data_arguments, demo_data, open_dataset
from accel.cli.flags import (add_debug_flag, add_output_arguments, nonnegative_int,
                              positive_float, positive_int)
from accel.cli.keyframes import BudgetRun, add_keyframe_arguments, keyframe_policy
from accel.cli.live import add_live_arguments, live_demo, live_requested
from accel.cli.runtime import (add_runtime_arguments, add_speed_arguments, runtime_from_args,
                               speed_options)
from accel.config import checkpoint_prefix, load_config, resolve_paths
from accel.core.tester import (evaluate_snippets, format_pct, metrics_table, segment_video,
                               select_snippets)
from accel.core.timing import timing_table
from accel.dataset import VideoFrames
from accel.networks import accel_network
from accel.symbols.versions import (ACCEL_VERSIONS, DEEPLAB_VERSIONS, REFERENCE, Version,
                                    get_version, version_of_symbol)
from accel.utils.checkpoint import CheckpointError, load_checkpoint, params_path
from accel.utils.io import write_json, write_text
from accel.utils.visualize import PredictionWriter

logger = logging.getLogger("accel.demo")

SAMPLE_CFG = "experiments/dff_deeplab/cfgs/accel_18_camvid_sample.yaml"
ACCEL_TRAIN_RUNNER = "experiments/dff_deeplab/dff_deeplab_end2end_train_test.py"
DEEPLAB_TRAIN_RUNNER = "experiments/deeplab/deeplab_train_test.py"


# ---------------------------------------------------------------------------- flags
def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags both demos share: data, video, model, device, outputs, protocol."""
    add_data_arguments(parser)
    parser.add_argument("--video", default=None, metavar="SOURCE",
                        help="segment a video file (any container OpenCV reads) or a folder "
                             "of frames instead, or live input: a camera index (0), device "
                             "(/dev/video0) or stream URL (rtsp://, http://); no labels needed")
    parser.add_argument("--allow-partial", action="store_true",
                        help="with --video: accept a file that decodes fewer frames than it "
                             "announces (default: an error after the frames it has)")
    model = parser.add_argument_group("model")
    model.add_argument("--cfg", default=None,
                       help="experiment yaml: its data set, scales and the checkpoint its "
                            "training run writes (epoch TEST.test_epoch)")
    model.add_argument("--model", default=None, metavar="PREFIX",
                       help="checkpoint prefix: loads PREFIX-%%04d.params (epoch --epoch)")
    model.add_argument("--epoch", type=nonnegative_int, default=None,
                       help="checkpoint epoch (default 0)")
    out = parser.add_argument_group("outputs")
    add_output_arguments(out, default_text="output/demo/<method>_<data>_i<interval>",
                         writer="no demo")
    out.add_argument("--panels", action="store_true",
                     help="also write side-by-side panels (input | DFF | update | output | "
                          "ground truth) per frame")
    out.add_argument("--save-frames", action="store_true",
                     help="with --video: also write a coloured map per frame")
    out.add_argument("--no-video", action="store_true", help="do not write the mp4")
    out.add_argument("--fps", type=positive_float, default=None,
                     help="frame rate of the mp4 (default: the source's)")
    out.add_argument("--tile-height", type=positive_int, default=None,
                     help="height of each panel tile in pixels (default: the frame's, at "
                          "most 360)")
    out.add_argument("--consistency", action="store_true",
                     help="measure temporal consistency of consecutive predictions "
                          "(accel.core.consistency)")
    add_live_arguments(parser)
    add_debug_flag(parser)


# ---------------------------------------------------------------------------- model
def choose_model(args: argparse.Namespace, cfg, cfg_path: Optional[str], row: Version,
                 runner: str) -> Tuple[str, int, str]:
    """(checkpoint prefix, epoch, where the file comes from): --model, else the --cfg's
    training run (epoch TEST.test_epoch unless --epoch), else the row's official file."""
    if args.model:
        return args.model, args.epoch or 0, "--model"
    if cfg is not None:
        epoch = cfg.TEST.test_epoch if args.epoch is None else args.epoch
        prefix = checkpoint_prefix(cfg, cfg_path)
        return prefix, epoch, f"the training run of {cfg_path}: python {runner} --cfg {cfg_path}"
    return repo_path(row.official), args.epoch or 0, row.source


def load_model(prefix: str, epoch: int, origin: str) -> Tuple[Dict, Dict]:
    """Load `prefix-%04d.params` as NumPy arrays (any runtime takes them); a missing file
    names itself and where it comes from."""
    try:
        params = load_checkpoint(prefix, epoch, numpy=True)
    except CheckpointError as err:
        raise CheckpointError(f"{err}\nThis model comes from {origin}.") from None
    logger.info("model %s (%s)", params_path(prefix, epoch), origin)
    return params


def load_config_file(path: Optional[str]):
    """(cfg, path) of --cfg, or (None, None). Relative paths inside the yaml are relative to
    the repository root, as for the training runners, so the demo finds their checkpoints."""
    if path is None:
        return None, None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--cfg {path}: file not found")
    return resolve_paths(load_config(path), REPO_ROOT), path


# --------------------------------------------------------------------------- outputs
def default_output_dir(slug: str, data: DemoData, interval: int, video: Optional[str],
                       avg: bool = False) -> str:
    """output/demo/<method>_<data set or video name>_i<interval>[_avg]."""
    source = (os.path.splitext(os.path.basename(os.path.normpath(video)))[0] if video
              else f"{data.name}_{data.split}")
    return os.path.join("output", "demo", f"{slug}_{source}_i{interval}{'_avg' if avg else ''}")


def _first_step_starts(step, output):
    """`step`, which starts `output` (removing the previous run's files) once the first
    frame has gone through the network: every input, the model included, is checked by
    then (issue #25.1)."""
    def first(data):
        result = step(data)
        output.start()
        wrapped.step = step
        return result

    def wrapped(data):
        return wrapped.step(data)
    wrapped.step = first
    return wrapped


def run_demo(args: argparse.Namespace, data: DemoData, segmenter, interval: int, method: str,
             branches: bool, out_dir: str, info: Dict[str, Any]) -> Dict[str, Any]:
    """Run a demo on the labelled split (or --video) and write every output to `out_dir`.

    Writes timing.md, results.md (evaluation), maps/, panels/ (--panels), video.mp4 and,
    last, metrics.json; returns the metrics dict. `info` (model, method, ...) is stored in
    metrics.json. Everything is checked before `out_dir` is touched; the folder is locked
    while the demo writes, and marked INCOMPLETE until it ends (accel.utils.outputs).
    """
    if interval < 1:
        raise ValueError(f"--interval must be >= 1, got {interval}")
    check_output_flags(args)
    output = demo_output(out_dir, getattr(args, "overwrite", False))
    output.check()
    if live_requested(args):  # a camera, device or stream URL, or --realtime: accel.live
        return live_demo(args, data, segmenter, interval, method, branches, out_dir, info,
                         output)
    video_src = (VideoFrames(args.video, max_frames=args.num_ex or None,
                             allow_partial=args.allow_partial) if args.video else None)
    if video_src is None:
        dataset = open_dataset(data)
        num_ex = 10 if args.num_ex is None else args.num_ex
        snippets = select_snippets(dataset.test_snippets(interval, avg=args.avg), num_ex)
    first = source_image_size(video_src, None if video_src is not None
                              else snippets[0].frames[0] if snippets else None)
    # info["path"]: Accel/DFF's fast CPU path or the official graphs; none for DeepLab.
    check_demo_sizes(args, data, first, {"fast": "accel", "reference": "accel-reference"}
                     .get(info.get("path"), "deeplab"))
    fps = args.fps or (video_src.fps if video_src is not None and video_src.fps > 0
                       else data.fps)
    with output:
        writer = PredictionWriter(
            out_dir, data.palette, data.class_names, method,
            branches=branches and args.panels, save_maps=video_src is None or args.save_frames,
            save_panels=args.panels,
            video=None if args.no_video else os.path.join(out_dir, "video.mp4"), fps=fps,
            tile_height=args.tile_height)
        step = _first_step_starts(segmenter.step, output)
        try:
            if video_src is not None:
                results = segment_video(video_src, step, segmenter.reset,
                                        data.pixel_means, data.scales, data.stride, interval,
                                        writer, args.consistency, threaded=not args.serial,
                                        total=len(video_src))
                results["source"] = args.video
            else:
                results = evaluate_snippets(dataset, snippets, step, segmenter.reset,
                                            method, interval, writer, args.consistency,
                                            threaded=not args.serial)
                results["source"] = f"{data.name} {data.split} ({data.root})"
                results["protocol"] = "average over offsets" if args.avg else "worst case"
        except BaseException:
            writer.abort()
            raise
        results["outputs"] = writer.close()
        results.update(info, method=method, interval=interval, scales=data.scales,
                       stride=data.stride)
        text = _write_tables(out_dir, results, method, interval, video_src is None)
        write_json(os.path.join(out_dir, "metrics.json"), results)   # last: the run is done
    logger.info("results in %s\n%s", out_dir, text)
    return results


def _write_tables(out_dir: str, results: Dict[str, Any], method: str, interval: int,
                  labelled: bool) -> str:
    """timing.md and results.md; returns the text of results.md."""
    table = timing_table(results["timing"])
    write_text(os.path.join(out_dir, "timing.md"), table)
    text = f"## {method}, interval {interval}: {results['source']}\n\n"
    if labelled:
        text += metrics_table(results) + "\n\n"
    sched = results["schedule"]
    text += ("Keyframes: %d of %d frames (rate %.3f), longest run of keyframes %d\n\n"
             % (sched["keyframes"], sched["frames"], sched["key_rate"],
                sched["longest_key_run"]))
    if "consistency" in results:
        c = results["consistency"]
        text += ("Temporal consistency %s%% (raw agreement %s%%, %d pairs)\n\n"
                 % (format_pct(c["consistency"]), format_pct(c["raw_agreement"]), c["pairs"]))
    text += table
    write_text(os.path.join(out_dir, "results.md"), text)
    return text


# ----------------------------------------------------------------------------- demos
def accel_parser(description: str) -> argparse.ArgumentParser:
    """dff_deeplab/demo.py's command line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("-v", "--version", choices=list(ACCEL_VERSIONS), default=None,
                        help="Accel version (update branch), or dff for Deep Feature Flow "
                             "(default: the --cfg's symbol, else 18)")
    parser.add_argument("-i", "--interval", type=positive_int, default=None,
                        help="keyframe interval; 1 = DeepLab-101 on every frame (default: the "
                             "--cfg's TEST.KEY_INTERVAL, else 1 as the original)")
    add_demo_arguments(parser)
    add_speed_arguments(parser)
    add_runtime_arguments(parser)
    add_keyframe_arguments(parser)
    return parser


def accel_keyframes(args: argparse.Namespace, interval: int, data: DemoData, network,
                    params: Tuple[Dict, Dict], source: str, allow_extra: bool,
                    options: Dict[str, Any]):
    """(the keyframe policy of the flags or None, its budget-mode calibration or None):
    accel.cli.keyframes, calibrating on --calibration-split of the demo's data set."""
    def open_split(split: str):
        return open_dataset(replace(data, split=split, label_root=None))

    return keyframe_policy(args, interval, BudgetRun(
        data.name, open_split, None if args.video else data.split, network, params[0],
        params[1], source, allow_extra, options))


def accel_demo(argv: Optional[Sequence[str]], description: str = "") -> Dict[str, Any]:
    """The Accel / DFF demo (dff_deeplab/demo.py); returns what metrics.json holds."""
    args = accel_parser(description).parse_args(argv)
    cfg_path = args.cfg
    if cfg_path is None and args.model is None and (args.dataset or "camvid") == "camvid":
        cfg_path = os.path.join(REPO_ROOT, SAMPLE_CFG)
    cfg, cfg_path = load_config_file(cfg_path)
    row = get_version(args.version) if args.version else (
        version_of_symbol(cfg.symbol) if cfg is not None else get_version("18"))
    if row.family != "accel":
        raise ValueError(f"{cfg_path}: symbol = {cfg.symbol!r} is not an Accel/DFF network; "
                         f"run deeplab/demo.py for it")
    interval = args.interval if args.interval is not None else (
        cfg.TEST.KEY_INTERVAL if cfg is not None else 1)
    if interval < 1:
        raise ValueError(f"--interval must be >= 1, got {interval}")
    data = demo_data(args, cfg)
    if data.stride % 32:
        raise ValueError(f"--stride {data.stride}: Accel needs frames padded to a multiple of "
                         f"32 (or 0 for sizes that already are), so that the flow network and "
                         f"the ResNet give the same grid")
    prefix, epoch, origin = choose_model(args, cfg, cfg_path, row, ACCEL_TRAIN_RUNNER)
    arg_params, aux_params = load_model(prefix, epoch, origin)
    runtime = runtime_from_args(args, cfg)
    speed = speed_options(args, data, runtime)
    network = accel_network(row.name, data.num_classes, speed.pop("fast"))
    source = params_path(prefix, epoch)
    if args.keyframe_policy not in ("fixed", "always") and interval == 1 and not args.video:
        raise ValueError(f"--keyframe-policy {args.keyframe_policy} on the labelled split needs "
                         f"-i/--interval K > 1: each labelled frame is reached from a keyframe "
                         f"K-1 frames before it, and the policy may add keyframes in between")
    from accel.core.inference import VideoSegmenter
    allow_extra = args.allow_extra_params or row.name == "dff"
    policy, calibration = accel_keyframes(args, interval, data, network,
                                          (arg_params, aux_params), source, allow_extra,
                                          dict(speed, runtime=runtime))
    segmenter = VideoSegmenter(network, arg_params, aux_params, interval, runtime=runtime,
                               panels=args.panels, source=source, policy=policy,
                               allow_extra=allow_extra, **speed)
    # An adaptive policy decides the keyframes itself: the method is the version's own.
    frame_by_frame = interval == 1 and (policy is None or args.keyframe_policy == "always")
    method = REFERENCE.method if frame_by_frame else row.method
    slug = f"{REFERENCE.slug}-{row.slug}" if frame_by_frame else row.slug
    out_dir = args.output or default_output_dir(slug, data, interval, args.video, args.avg)
    info = {"model": source, "version": row.name, "cfg": cfg_path, "device": runtime.device,
            "path": "fast" if segmenter.fast else "reference", "int8": args.int8,
            "runtime": runtime.name, "precision": args.precision,
            "keyframe_policy": policy.describe() if policy else {"policy": "fixed",
                                                                 "interval": interval}}
    if calibration is not None:
        info["keyframe_policy"]["calibration"] = calibration
    try:
        return run_demo(args, data, segmenter, interval, method,
                        row.fusion == "score", out_dir, info)
    except CheckpointError as err:
        raise CheckpointError(f"{err}\nModel {source} ({origin}) does not fit Accel version "
                              f"{row.name} with {data.num_classes} classes ({data.name}).") \
            from None


def deeplab_demo(argv: Optional[Sequence[str]] = None, description: str = "") -> Dict[str, Any]:
    """The frame-by-frame DeepLab demo (deeplab/demo.py); returns what metrics.json holds."""
    parser = argparse.ArgumentParser(description=description)
    add_demo_arguments(parser)
    add_runtime_arguments(parser)
    args = parser.parse_args(argv)
    cfg, cfg_path = load_config_file(args.cfg)
    symbol = cfg.symbol if cfg is not None else "deeplab_resnet_v1_101"
    if symbol not in DEEPLAB_VERSIONS:
        raise ValueError(f"{cfg_path}: symbol = {symbol!r} is not a frame-by-frame DeepLab; "
                         f"expected one of {sorted(DEEPLAB_VERSIONS)} (Accel models: "
                         f"dff_deeplab/demo.py)")
    row = DEEPLAB_VERSIONS[symbol]
    data = demo_data(args, cfg)
    prefix, epoch, origin = choose_model(args, cfg, cfg_path, row, DEEPLAB_TRAIN_RUNNER)
    arg_params, aux_params = load_model(prefix, epoch, origin)
    source = params_path(prefix, epoch)
    arg_params, aux_params = frame_network_params(  # --allow-extra-params (issue #25.12)
        symbol, data.num_classes, arg_params, aux_params, source, args.allow_extra_params,
        row.method)
    from accel.core.inference import FrameSegmenter
    runtime = runtime_from_args(args, cfg)
    segmenter = FrameSegmenter(data.num_classes, arg_params, aux_params, source=source,
                               symbol=symbol, runtime=runtime,
                               allow_extra=args.allow_extra_params)
    out_dir = args.output or default_output_dir(row.slug, data, 1, args.video, args.avg)
    info = {"model": source, "version": row.name, "cfg": cfg_path, "device": runtime.device,
            "runtime": runtime.name, "precision": args.precision}
    return run_demo(args, data, segmenter, 1, row.method, False, out_dir, info)
