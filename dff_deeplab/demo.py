"""Accel / Deep Feature Flow demo: segment test snippets (mIoU, timing) or any video.

    python dff_deeplab/demo.py                          # Accel-18 on the bundled CamVid clip
    python dff_deeplab/demo.py --version 50 --interval 5 --num_ex 100 --dataset cityscapes
    python dff_deeplab/demo.py -v 18 -i 5 --video street.mp4 --panels

Keyframe when idx % interval == 0 (the keyframe network = DeepLab-101's scores); other
frames warp the previous frame's features by FlowNet's flow, hop by hop, and fuse them with
the update branch (`--version`). `--interval 1` is DeepLab-101 frame by frame; `-v dff`
is Deep Feature Flow alone (the warped branch's scores). Every flag and output is listed in
the README ("Demo"); the work itself is accel.core.tester.run_demo.

Which model: `--model PREFIX --epoch N`; else `--cfg X.yaml` (the checkpoint its training
run writes, epoch TEST.test_epoch); else, on CamVid, the sample config's training run
(`SAMPLE_CFG`); else, on Cityscapes, the official models under ./model/ (`OFFICIAL`).
"""
import argparse
import logging
import os
from typing import Any, Dict, Optional, Sequence

from accel.config import load_config
from accel.core.inference import VideoSegmenter
from accel.core.tester import (add_demo_arguments, add_speed_arguments, choose_model,
                               default_output_dir, demo_context, demo_data, load_model,
                               repo_path, run_cli, run_demo, speed_options)
from accel.utils.checkpoint import CheckpointError, params_path
from dff_deeplab.symbol import VERSIONS, AccelNetwork
from dff_deeplab.symbol import SYMBOL_VERSIONS

logger = logging.getLogger(__name__)

METHOD_NAMES = {"18": "Accel-18", "34": "Accel-34", "50": "Accel-50", "101": "Accel-101",
                "dff": "DFF"}
REFERENCE_NAME = "DeepLab-101"  # what every version is at interval 1

SAMPLE_CFG = "experiments/dff_deeplab/cfgs/accel_18_camvid_sample.yaml"
OFFICIAL_SOURCE = ("the official Accel models (Google Drive link in the Accel README, "
                   "'Demo / Inference'; the base DFF model with FlowNet is on OneDrive): put "
                   "them under ./model/ or pass --model PREFIX --epoch N")
# Official checkpoint prefixes (epoch 0) by version. DFF is the warped branch of any Accel
# model: its reference DeepLab-101 and FlowNet stay frozen during Accel training, so the
# Accel-18 file holds DFF's weights unchanged.
OFFICIAL = {"18": "model/accel-18", "34": "model/accel-34", "50": "model/accel-50",
            "101": "model/accel-101", "dff": "model/accel-18"}



def method_name(version: str, interval: int) -> str:
    """'Accel-18', 'DFF', or 'DeepLab-101' when every frame is a keyframe."""
    return REFERENCE_NAME if interval == 1 else METHOD_NAMES[version]


def build_parser() -> argparse.ArgumentParser:
    """The demo's command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--version", choices=list(VERSIONS), default=None,
                        help="Accel version (update branch), or dff for Deep Feature Flow "
                             "(default: the --cfg's symbol, else 18)")
    parser.add_argument("-i", "--interval", type=int, default=None,
                        help="keyframe interval; 1 = DeepLab-101 on every frame (default: the "
                             "--cfg's TEST.KEY_INTERVAL, else 1 as the original)")
    add_demo_arguments(parser)
    add_speed_arguments(parser)
    return parser


def load_demo_config(args: argparse.Namespace):
    """(cfg, path): --cfg, else the sample config for CamVid without --model, else None."""
    path = args.cfg
    if path is None and args.model is None and (args.dataset or "camvid") == "camvid":
        path = repo_path(SAMPLE_CFG)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no model given and the sample config {SAMPLE_CFG} is "
                                    f"missing: pass --model PREFIX --epoch N or --cfg X.yaml")
    if path is None:
        return None, None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--cfg {path}: file not found")
    return load_config(path), path


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run the demo; returns the metrics written to <output>/metrics.json."""
    args = build_parser().parse_args(argv)
    cfg, cfg_path = load_demo_config(args)
    version = args.version or (SYMBOL_VERSIONS.get(cfg.symbol, "18") if cfg is not None
                               else "18")
    interval = args.interval if args.interval is not None else (
        cfg.TEST.KEY_INTERVAL if cfg is not None else 1)
    if interval < 1:
        raise ValueError(f"--interval must be >= 1, got {interval}")
    data = demo_data(args, cfg)
    prefix, epoch, origin = choose_model(args, cfg, cfg_path, OFFICIAL[version],
                                         OFFICIAL_SOURCE, "dff_deeplab/train_end2end.py")
    arg_params, aux_params = load_model(prefix, epoch, origin)
    warp_op = cfg.network.WARP_OP if cfg is not None else "builtin"
    network = AccelNetwork(version, data.num_classes, warp_op)
    source = params_path(prefix, epoch)
    ctx = demo_context(args, cfg)
    segmenter = VideoSegmenter(network, arg_params, aux_params, interval, ctx=ctx,
                               panels=args.panels, source=source,
                               **speed_options(args, data, ctx))
    method = method_name(version, interval)
    out_dir = args.output or default_output_dir(method if interval > 1 else
                                                f"{method}-{METHOD_NAMES[version]}",
                                                data, interval, args.video, args.avg)
    info = {"model": source, "version": version, "cfg": cfg_path, "device": str(segmenter.ctx),
            "path": "fast" if segmenter.fast else "reference", "int8": args.int8}
    try:
        return run_demo(args, data, segmenter.step, segmenter.reset, interval, method,
                        network.version.fusion == "score", out_dir, info)
    except CheckpointError as err:
        raise CheckpointError(f"{err}\nModel {source} ({origin}) does not fit Accel version "
                              f"{version} with {data.num_classes} classes ({data.name}).") \
            from None


if __name__ == "__main__":
    run_cli(main)
