"""Data sets: Cityscapes sequences, CamVid / SegNet-layout videos, plain videos, the loader.

`dataset_from_config(cfg)` builds the data set named by `cfg.dataset.dataset` from the
table `DATASETS`; the classes also take explicit arguments for use without a config.
"""
import logging
from typing import Any, List, Optional

from accel.dataset.base import LabelledFrame, LabelledVideoDataset, Snippet
from accel.dataset.camvid import CamVidVideo, SegNetVideo
from accel.dataset.cityscapes import CityscapesVideo
from accel.dataset.loader import PrefetchLoader, ResumableSampler
from accel.dataset.video import TruncatedVideoError, VideoFrames

logger = logging.getLogger(__name__)

_IMAGE_SET_PREFIX = "leftImg8bit_"

# cfg.dataset.dataset (case-insensitive) -> class. "LabelledVideo" is any video in the
# SegNet layout with cfg.dataset.NUM_CLASSES classes (see docs/data.md, own video).
DATASETS = {
    "cityscapes": CityscapesVideo,
    "camvid": CamVidVideo,
    "labelledvideo": SegNetVideo,
}


def dataset_from_config(cfg: Any, train: bool = True, image_set: Optional[str] = None,
                        key_interval: Optional[int] = None, strict_gaps: Optional[bool] = None,
                        **overrides) -> LabelledVideoDataset:
    """Build the configured data set for training (crop/flip from cfg.TRAIN) or testing.

    Missing frames in a SegNet-layout sequence are an error for training data
    (`strict_gaps`, default `train`) unless cfg.dataset.skip_missing, else a warning.

    Reads cfg.dataset.{dataset, dataset_path, image_set, test_image_set, NUM_CLASSES,
    skip_missing},
    cfg.network.{PIXEL_MEANS, IMAGE_STRIDE}, cfg.SCALES, cfg.TRAIN.{KEY_INTERVAL, FLIP,
    CROP_HEIGHT, CROP_WIDTH}; keyword overrides go to the class unchanged.
    """
    name = str(cfg.dataset.dataset)
    cls = DATASETS.get(name.lower())
    if cls is None:
        raise ValueError(f"cfg.dataset.dataset = {name!r} is not a known data set; expected "
                         f"one of {sorted(DATASETS)} (case-insensitive)")
    split = image_set or (cfg.dataset.image_set if train else cfg.dataset.test_image_set)
    kwargs = dict(
        root=cfg.dataset.dataset_path, split=config_split(split),
        key_interval=key_interval or cfg.TRAIN.KEY_INTERVAL,
        pixel_means=cfg.network.PIXEL_MEANS, scales=config_scales(cfg.SCALES),
        stride=cfg.network.IMAGE_STRIDE, skip_missing=bool(cfg.dataset.skip_missing),
    )
    if train:
        kwargs.update(crop_size=(cfg.TRAIN.CROP_HEIGHT, cfg.TRAIN.CROP_WIDTH),
                      flip=bool(cfg.TRAIN.FLIP))
    if cls is SegNetVideo:
        kwargs["num_classes"] = cfg.dataset.NUM_CLASSES
    if issubclass(cls, SegNetVideo):
        kwargs["strict_gaps"] = train if strict_gaps is None else bool(strict_gaps)
    kwargs.update(overrides)
    ds = cls(**kwargs)
    if ds.num_classes != cfg.dataset.NUM_CLASSES:
        raise ValueError(f"cfg.dataset.NUM_CLASSES = {cfg.dataset.NUM_CLASSES} but {name} has "
                         f"{ds.num_classes} classes")
    logger.info("data set: %r", ds)
    return ds


def config_split(image_set: str) -> str:
    """'leftImg8bit_train+leftImg8bit_val' (the original's image-set names) -> 'train+val'."""
    return "+".join(part[len(_IMAGE_SET_PREFIX):] if part.startswith(_IMAGE_SET_PREFIX) else part
                    for part in str(image_set).split("+"))


def config_scales(scales: Any) -> List[int]:
    """cfg.SCALES as [short, long] or the original's [[short, long], ...] (first pair used)."""
    first = scales[0] if scales and isinstance(scales[0], (list, tuple)) else scales
    if len(first) != 2:
        raise ValueError(f"cfg.SCALES = {scales!r}: expected [target short side, max long side] "
                         f"or a list of such pairs")
    if len(scales) > 1 and first is scales[0]:
        logger.warning("cfg.SCALES has %d pairs; the data sets use the first, %s",
                       len(scales), first)
    return [int(first[0]), int(first[1])]


__all__ = ["CamVidVideo", "CityscapesVideo", "DATASETS", "LabelledFrame", "LabelledVideoDataset",
           "PrefetchLoader", "ResumableSampler", "SegNetVideo", "Snippet", "TruncatedVideoError",
           "VideoFrames",
           "config_scales", "config_split", "dataset_from_config"]
