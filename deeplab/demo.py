"""Frame-by-frame DeepLab demo: the per-frame network (ResNet-v1-101, dilated res5) alone.

    python deeplab/demo.py --model model/pretrained/deeplab-101 --dataset cityscapes
    python deeplab/demo.py --cfg experiments/deeplab/cfgs/<x>.yaml --video street.mp4

Same flags and outputs as dff_deeplab/demo.py (accel.core.tester.add_demo_arguments)
without --version/--interval: every frame goes through the network. Which model:
`--model PREFIX --epoch N`, else the --cfg's training run, else the official DeepLab-101
(`OFFICIAL`).
"""
import argparse
import logging
import os
from typing import Any, Dict, Optional, Sequence

from accel.config import load_config
from accel.core.tester import (add_demo_arguments, choose_model, default_output_dir,
                               demo_context, demo_data, load_model, run_cli, run_demo)
from accel.utils.checkpoint import params_path
from deeplab.test import FrameSegmenter

logger = logging.getLogger(__name__)

METHOD = "DeepLab-101 (dilated)"
OFFICIAL = "model/pretrained/deeplab-101"
OFFICIAL_SOURCE = ("the official DeepLab models (Google Drive link in the Accel README, "
                   "'Training'): put deeplab-101-0000.params under ./model/pretrained/ or "
                   "pass --model PREFIX --epoch N")


def build_parser() -> argparse.ArgumentParser:
    """The frame-by-frame demo's command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_demo_arguments(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run the demo; returns the metrics written to <output>/metrics.json."""
    args = build_parser().parse_args(argv)
    if args.cfg is not None and not os.path.isfile(args.cfg):
        raise FileNotFoundError(f"--cfg {args.cfg}: file not found")
    cfg = load_config(args.cfg) if args.cfg else None
    data = demo_data(args, cfg)
    prefix, epoch, origin = choose_model(args, cfg, args.cfg, OFFICIAL, OFFICIAL_SOURCE,
                                         "deeplab/train.py")
    arg_params, aux_params = load_model(prefix, epoch, origin)
    source = params_path(prefix, epoch)
    symbol = cfg.symbol if cfg is not None else "deeplab_resnet_v1_101"
    segmenter = FrameSegmenter(data.num_classes, arg_params, aux_params,
                               demo_context(args, cfg), source, symbol)
    out_dir = args.output or default_output_dir("deeplab-101-dilated", data, 1, args.video,
                                                args.avg)
    info = {"model": source, "version": "deeplab", "cfg": args.cfg,
            "device": str(segmenter.ctx)}
    return run_demo(args, data, segmenter.step, None, 1, METHOD, False, out_dir, info)


if __name__ == "__main__":
    run_cli(main)
