"""Cityscapes video: 30-frame snippets from leftImg8bit_sequence, fine label on the 20th frame.

Official layout under `root`:
    leftImg8bit_sequence/{split}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/{split}/<city>/<city>_<seq>_<frame>_gtFine_<kind>.png
Labelled frames are found by listing gtFine and parsing names with a strict pattern; every
other path is constructed from the parsed parts (no globbing).
"""
import logging
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

try:
    from cityscapesscripts.helpers.labels import labels as CS_LABELS
except ImportError:  # the MXNet-free runtime install; Cityscapes then needs it installed
    CS_LABELS = ()

from accel.dataset.base import LabelCodec, LabelledFrame, LabelledVideoDataset, train_id_codec
from accel.utils.image import PIXEL_MEANS
from accel.utils.segmath import IGNORE_LABEL

logger = logging.getLogger(__name__)

NUM_CLASSES = 19
SNIPPET_LENGTH = 30
LABEL_INDEX = 19  # the annotated frame is the 20th of each 30-frame snippet

# cityscapesscripts marks ignored classes with trainId 255 (or -1), our IGNORE_LABEL too.
_TRAIN_LABELS = sorted((l for l in CS_LABELS if 0 <= l.trainId < IGNORE_LABEL),
                       key=lambda l: l.trainId)
CLASS_NAMES = tuple(l.name for l in _TRAIN_LABELS)
PALETTE = np.array([l.color for l in _TRAIN_LABELS], dtype=np.uint8)  # RGB, by train id


def label_id_codec() -> LabelCodec:
    """Codec for `_gtFine_labelIds` files: the cityscapesscripts table's id -> trainId."""
    lut = np.full(256, IGNORE_LABEL, dtype=np.uint8)
    valid = np.zeros(256, dtype=bool)
    for lab in CS_LABELS:
        if lab.id < 0:  # 'license plate' has id -1: never stored in a labelIds file
            continue
        lut[lab.id] = lab.trainId if 0 <= lab.trainId < IGNORE_LABEL else IGNORE_LABEL
        valid[lab.id] = True
    return LabelCodec("Cityscapes label ids (cityscapesscripts table)", lut, valid)


# Label file kinds by filename suffix, in order of preference when several exist.
# `labelTrainIds_fromColor` is the variant derived from gtFine_color in ../shared/data.
LABEL_KINDS: Dict[str, LabelCodec] = {
    "labelTrainIds": train_id_codec(NUM_CLASSES),
    "trainIds": train_id_codec(NUM_CLASSES),
    "labelIds": label_id_codec(),
    "labelTrainIds_fromColor": train_id_codec(NUM_CLASSES),
}
DEFAULT_LABEL_KINDS = ("labelTrainIds", "trainIds", "labelIds")

_LABEL_NAME = re.compile(r"^(?P<city>[a-z_]+?)_(?P<seq>\d{6})_(?P<frame>\d{6})_gtFine_"
                         r"(?P<kind>" + "|".join(sorted(LABEL_KINDS, key=len, reverse=True))
                         + r")\.png$")


def frame_path(root: str, split: str, city: str, seq: str, frame: int) -> str:
    """Path of a sequence frame by its official name."""
    return os.path.join(root, "leftImg8bit_sequence", split, city,
                        f"{city}_{seq}_{frame:06d}_leftImg8bit.png")


def find_labelled_frames(root: str, split: str,
                         label_kinds: Sequence[str] = DEFAULT_LABEL_KINDS) -> List[LabelledFrame]:
    """Labelled frames of one split, each with its 30-frame snippet (paths, not checked)."""
    unknown = [k for k in label_kinds if k not in LABEL_KINDS]
    if unknown:
        raise ValueError(f"unknown Cityscapes label kinds {unknown}; expected some of "
                         f"{sorted(LABEL_KINDS)}")
    gt_dir = os.path.join(root, "gtFine", split)
    if not os.path.isdir(gt_dir):
        raise FileNotFoundError(f"Cityscapes label folder not found: {gt_dir} (expected the "
                                f"official layout gtFine/{split}/<city>/ under {root})")
    found: Dict[Tuple[str, str, int], Dict[str, str]] = {}
    for city in sorted(os.listdir(gt_dir)):
        city_dir = os.path.join(gt_dir, city)
        if not os.path.isdir(city_dir):
            continue
        for fname in sorted(os.listdir(city_dir)):
            m = _LABEL_NAME.match(fname)
            if m and m["city"] == city and m["kind"] in label_kinds:
                key = (city, m["seq"], int(m["frame"]))
                found.setdefault(key, {})[m["kind"]] = os.path.join(city_dir, fname)
    items = []
    for (city, seq, frame), kinds in sorted(found.items()):
        kind = next(k for k in label_kinds if k in kinds)
        first = frame - LABEL_INDEX
        segment = tuple(frame_path(root, split, city, seq, f)
                        for f in range(first, first + SNIPPET_LENGTH))
        items.append(LabelledFrame(f"{city}_{seq}_{frame:06d}", kinds[kind], LABEL_KINDS[kind],
                                   segment, LABEL_INDEX))
    if not items:
        raise FileNotFoundError(f"no Cityscapes label files *_gtFine_{{{','.join(label_kinds)}}}"
                                f".png under {gt_dir}")
    return items


class CityscapesVideo(LabelledVideoDataset):
    """Cityscapes sequences: one sample per fine-labelled frame (19 classes, 255 ignored)."""

    num_classes = NUM_CLASSES
    class_names = CLASS_NAMES
    palette = PALETTE

    def __init__(self, root: str, split: str = "train", key_interval: int = 5,
                 pixel_means: Sequence[float] = PIXEL_MEANS,
                 scales: Sequence[int] = (1024, 2048), stride: int = 0,
                 crop_size: Optional[Tuple[int, int]] = None, flip: bool = False,
                 random_key_distance: bool = False, seed: int = 0, skip_missing: bool = False,
                 label_kinds: Sequence[str] = DEFAULT_LABEL_KINDS, check_frames: bool = True):
        if not CS_LABELS:
            raise ValueError("Cityscapes needs cityscapesscripts (its label table): pip install "
                             "-c constraints.txt cityscapesscripts")
        if key_interval - 1 > LABEL_INDEX:
            raise ValueError(f"key_interval {key_interval} needs {key_interval - 1} frames before "
                             f"the label, but Cityscapes snippets have {LABEL_INDEX}")
        self.root, self.split = root, split
        items = [it for s in split.split("+") for it in find_labelled_frames(root, s, label_kinds)]
        logger.info("Cityscapes %s: %d labelled frames under %s (label on frame %d of %d, "
                    "17 Hz)", split, len(items), root, LABEL_INDEX + 1, SNIPPET_LENGTH)
        super().__init__(items, key_interval, pixel_means, scales, stride, crop_size, flip,
                         random_key_distance, seed, skip_missing, check_frames)
