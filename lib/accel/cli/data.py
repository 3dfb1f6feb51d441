"""The demos' data: its flags, which labelled split or video, how frames are preprocessed.

Data sources are configs: a `--cfg` yaml, or the defaults of accel.config with the data
set's `DATA_SOURCES` entry; the data flags are overrides merged over them by
`merge_overrides`, the one merge path of every runner.
"""
import argparse
import os
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from accel.cli import repo_path
from accel.cli.flags import nonnegative_int, positive_int
from accel.config import get_defaults, merge_overrides
from accel.core.tester import prepare_frame
from accel.dataset import DATASETS, LabelledVideoDataset, config_scales, config_split
from accel.dataset.camvid import CAMVID_CLASSES, CAMVID_PALETTE
from accel.dataset.cityscapes import CLASS_NAMES as CITYSCAPES_CLASSES
from accel.dataset.cityscapes import PALETTE as CITYSCAPES_PALETTE
from accel.dataset.video import list_frames
from accel.utils import image as imutil

__all__ = ["DATA_SOURCES", "DATA_FPS", "DemoData", "add_data_arguments", "data_config",
           "demo_data", "open_dataset", "calibration_frames"]

# The demos' data sets when no --cfg names one: overrides over accel.config's defaults.
# CamVid's 360 rows are padded to 384 (stride 32) so the flow network and the ResNet give
# the same grid; Cityscapes keeps its native 1024x2048.
DATA_SOURCES: Dict[str, Dict[str, Any]] = {
    "camvid": {"dataset.dataset": "camvid", "dataset.dataset_path": "sample_data/camvid",
               "dataset.test_image_set": "val", "dataset.NUM_CLASSES": 11,
               "SCALES": [[360, 480]], "network.IMAGE_STRIDE": 32},
    "cityscapes": {"dataset.dataset": "cityscapes", "dataset.dataset_path": "data/cityscapes",
                   "dataset.test_image_set": "leftImg8bit_val", "dataset.NUM_CLASSES": 19,
                   "SCALES": [[1024, 2048]], "network.IMAGE_STRIDE": 0},
}
# Frame rate of the demos' mp4 for the labelled splits (CamVid val: a label every 2 raw
# frames of 30 fps video; Cityscapes snippets: 17 Hz).
DATA_FPS = {"camvid": 15.0, "cityscapes": 17.0}
_PALETTES = {"camvid": (CAMVID_CLASSES, CAMVID_PALETTE),
             "cityscapes": (CITYSCAPES_CLASSES, CITYSCAPES_PALETTE)}


@dataclass
class DemoData:
    """Where the demo's frames come from and how they are preprocessed (from a config)."""

    name: str                       # 'camvid' or 'cityscapes'
    root: str
    label_root: Optional[str]
    split: str
    scales: List[int]
    stride: int
    pixel_means: List[float]
    fps: float
    num_classes: int
    class_names: Tuple[str, ...]
    palette: np.ndarray
    skip_missing: bool = False      # --skip-missing: skip frames whose files are missing


def add_data_arguments(parser: argparse.ArgumentParser, demo: bool = True) -> None:
    """Flags for the labelled data, the protocol and the device (demos, table script;
    `demo`: the parser also has the demo's --cfg and --video, which the help names)."""
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=sorted(DATA_SOURCES), default=None,
                      help="data set (default: %s)" % ("the --cfg's, else camvid = the "
                                                       "bundled clip" if demo else "camvid = "
                                                       "the bundled clip"))
    data.add_argument("--data-root", default=None,
                      help="data set folder (Cityscapes: holds leftImg8bit_sequence/; CamVid: "
                           "the SegNet layout <split>/ + <split>annot/); default "
                           "sample_data/camvid or data/cityscapes")
    data.add_argument("--label-root", default=None,
                      help="Cityscapes only: folder holding gtFine/ when it is not the data "
                           "root (the original's path_demo_labels)")
    data.add_argument("--split", default=None, help="test split (default: val)")
    data.add_argument("--scales", type=positive_int, nargs=2, metavar=("SHORT", "MAX_LONG"),
                      default=None, help="resize: short side, max long side (default: "
                                         "the data set's native size)")
    data.add_argument("--stride", type=nonnegative_int, default=None,
                      help="pad frames to a multiple of this (default 32 CamVid, 0 Cityscapes)")
    data.add_argument("-e", "--num_ex", type=nonnegative_int, default=None,
                      help="labelled frames to evaluate (default %s; 0 = all)%s" % (
                          "10, as the original" if demo else "0", "; with --video, frames to "
                          "segment (default all)" if demo else ""))
    data.add_argument("--skip-missing", action="store_true",
                      help="skip labelled frames whose label or sequence frames are missing, "
                           "with a warning (default: an error naming the file)")
    data.add_argument("--avg", action="store_true",
                      help="average over every keyframe offset instead of the worst case")
    dev = parser.add_mutually_exclusive_group()
    dev.add_argument("--gpu", type=nonnegative_int, default=None, metavar="N",
                     help="run on GPU N")
    dev.add_argument("--cpu", action="store_true",
                     help="run on the CPU (the default when no GPU is present)")
    parser.add_argument("--serial", action="store_true",
                        help="read and write on the main thread (no overlap with the network)")
    parser.add_argument("--mxnet-version", default=None, metavar="NAME",
                        help="MXNet package to import (default: %sthe installed one); see "
                             "external/mxnet/README.md" % ("the --cfg's MXNET_VERSION, else "
                                                           if demo else ""))
    parser.add_argument("--allow-extra-params", action="store_true",
                        help="accept checkpoint parameters that the network does not use "
                             "(default: an error naming them)")


def data_config(args: argparse.Namespace, cfg=None):
    """The config the demo's data comes from: --cfg (or the defaults with the data set's
    DATA_SOURCES entry when it names another data set), then the flags as overrides."""
    cfg_name = str(cfg.dataset.dataset).lower() if cfg is not None else None
    name = args.dataset or cfg_name or "camvid"
    if name not in _PALETTES:
        raise ValueError(f"data set {name!r} (from {args.cfg}): the demo runs on "
                         f"{sorted(_PALETTES)}")
    overrides: List[str] = []
    if cfg is None or name != cfg_name:
        cfg = get_defaults()
        overrides += [f"{k}={v}" for k, v in DATA_SOURCES[name].items()]
    if args.data_root:
        overrides.append(f"dataset.dataset_path={args.data_root}")
    if args.split:
        overrides.append(f"dataset.test_image_set={args.split}")
    if args.scales:
        if min(args.scales) <= 0:
            raise ValueError(f"--scales {args.scales[0]} {args.scales[1]}: both must be > 0")
        overrides.append(f"SCALES=[[{args.scales[0]}, {args.scales[1]}]]")
    if args.stride is not None:
        if args.stride < 0:
            raise ValueError(f"--stride {args.stride}: expected 0 (no padding) or a multiple "
                             f"of 32")
        overrides.append(f"network.IMAGE_STRIDE={args.stride}")
    return merge_overrides(cfg, overrides) if overrides else cfg


def demo_data(args: argparse.Namespace, cfg=None) -> DemoData:
    """Data settings of the demo: `data_config` read into a DemoData."""
    cfg = data_config(args, cfg)
    name = str(cfg.dataset.dataset).lower()
    classes, palette = _PALETTES[name]
    return DemoData(name, repo_path(cfg.dataset.dataset_path), args.label_root,
                    config_split(cfg.dataset.test_image_set), config_scales(cfg.SCALES),
                    int(cfg.network.IMAGE_STRIDE), list(cfg.network.PIXEL_MEANS),
                    DATA_FPS[name], len(classes), tuple(classes), palette,
                    bool(getattr(args, "skip_missing", False)))


def open_dataset(data: DemoData) -> LabelledVideoDataset:
    """The labelled test split of `data` (frames are checked when snippets are made)."""
    cls = DATASETS[data.name]
    label_root = data.label_root
    kwargs = dict(split=data.split, key_interval=1, pixel_means=data.pixel_means,
                  scales=data.scales, stride=data.stride, check_frames=False,
                  skip_missing=data.skip_missing)
    if label_root and os.path.abspath(label_root) != os.path.abspath(data.root):
        if data.name != "cityscapes":
            raise ValueError(f"--label-root {label_root}: only Cityscapes keeps labels apart "
                             f"(gtFine/); {data.name} reads <split>annot/ under --data-root")
        ds = cls(root=label_root, **kwargs)
        # Labels were found under the label root; the frames live under the data root.
        moved = [replace(it, segment=tuple(os.path.join(data.root, os.path.relpath(p, label_root))
                                           for p in it.segment)) for it in ds.all_items]
        ds.items = ds.all_items = moved
        return ds
    return cls(root=data.root, **kwargs)


def calibration_frames(folder: str, data: DemoData, count: int) -> List[np.ndarray]:
    """`count` images spread over `folder`, preprocessed as the demo's frames."""
    if count < 1:
        raise ValueError(f"--int8-frames must be >= 1, got {count}")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--int8 {folder}: not a folder of calibration images")
    try:
        paths = list_frames(folder)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"--int8 {folder}: no .png/.jpg images in it ({err})") from None
    picks = [paths[i] for i in np.linspace(0, len(paths) - 1, min(count, len(paths))).astype(int)]
    frames = [prepare_frame(imutil.read_image(p), data.pixel_means, data.scales,
                            data.stride).data for p in picks]
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise ValueError(f"--int8 {folder}: images give different network input shapes "
                         f"{sorted(shapes)}; use images of one size")
    return frames
