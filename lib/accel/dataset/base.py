"""What every labelled video data set shares: frames, label decoding, training samples, test snippets.

A data set is a list of labelled frames. Each knows the frames of its video segment
(`segment`, oldest first, one step apart) and its own position in it. One step is one raw
frame for Cityscapes and one labelled frame for CamVid (its unlabelled frames are not
distributed). Subclasses only build that list; sampling is the same for all.

Training sample (the original Accel's end2end batch) for labelled frame f, K = key_interval:
    data     (1, 3, H, W)    float32  frame f, preprocessed
    data_ref (K-1, 3, H, W)  float32  frames f-(K-1) .. f-1, the keyframe first
    eq_flag  (1,)            float32  1 only when the keyframe is f itself (distance 0)
    label    (1, 1, H, W)    float32  train ids, 255 = ignore
All frames and the label share one random crop window and one flip decision.
"""
import logging
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from accel.utils import image as imutil
from accel.utils.segmath import IGNORE_LABEL, lut_apply, values_outside

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelCodec:
    """How the values stored in a label file become train ids (a uint8 lookup table)."""

    name: str
    lut: np.ndarray    # (256,) uint8: stored value -> train id or 255
    valid: np.ndarray  # (256,) bool: stored values allowed to appear in a file


def train_id_codec(num_classes: int, void_values: Sequence[int] = ()) -> LabelCodec:
    """Codec for files that already hold train ids 0..C-1 (plus 255, plus void values -> 255)."""
    lut = np.full(256, IGNORE_LABEL, dtype=np.uint8)
    lut[:num_classes] = np.arange(num_classes, dtype=np.uint8)
    valid = np.zeros(256, dtype=bool)
    valid[:num_classes] = True
    valid[IGNORE_LABEL] = True
    for v in void_values:
        lut[v], valid[v] = IGNORE_LABEL, True
    return LabelCodec(f"train ids 0..{num_classes - 1}", lut, valid)


@dataclass(frozen=True)
class LabelledFrame:
    """One labelled frame: its label file and the video segment it sits in."""

    name: str                  # e.g. "lindau_000000_000019" or "0016E5_07959"
    label: str                 # label file path
    codec: LabelCodec
    segment: Tuple[str, ...]   # frame paths of its video segment, one step apart, oldest first
    position: int              # index of the labelled frame in `segment`

    @property
    def image(self) -> str:
        """Path of the labelled frame itself."""
        return self.segment[self.position]


@dataclass(frozen=True)
class Snippet:
    """A test snippet: frames to run in order (the first is a keyframe) and the labelled one."""

    frames: Tuple[str, ...]
    label_index: int           # index into frames of the labelled frame
    item: LabelledFrame


class LabelledVideoDataset:
    """Base of Cityscapes / CamVid / user videos: training samples and test snippets."""

    num_classes: int = 0
    class_names: Tuple[str, ...] = ()
    palette: np.ndarray = np.zeros((0, 3), dtype=np.uint8)

    def __init__(self, items: List[LabelledFrame], key_interval: int,
                 pixel_means: Sequence[float], scales: Sequence[int], stride: int = 0,
                 crop_size: Optional[Tuple[int, int]] = None, flip: bool = False,
                 random_key_distance: bool = False, seed: int = 0,
                 skip_missing: bool = False, check_frames: bool = True):
        if key_interval < 1:
            raise ValueError(f"key_interval must be >= 1, got {key_interval}")
        self.key_interval = int(key_interval)
        self.pixel_means = [float(m) for m in pixel_means]
        self.scales = [int(s) for s in scales]
        self.stride = int(stride)
        self.crop_size = None if crop_size is None or min(crop_size) <= 0 else \
            (int(crop_size[0]), int(crop_size[1]))
        self.flip = bool(flip)
        self.random_key_distance = bool(random_key_distance)
        self.seed = int(seed)
        self.skip_missing = bool(skip_missing)
        self.all_items = items
        self.items = self._with_history(items, self.key_interval) if check_frames else items
        if not self.items:
            raise ValueError(f"{type(self).__name__}: no usable labelled frames "
                             f"({len(items)} found before checking frames)")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Dict[str, np.ndarray]:
        """Training sample `index` with randomness fixed by (seed, index)."""
        return self.sample(index, np.random.default_rng([self.seed, index]))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} labelled frames, K={self.key_interval}, "
                f"crop={self.crop_size}, flip={self.flip})")

    # ----------------------------------------------------------- frame availability
    def _window_missing(self, item: LabelledFrame, start: int) -> List[str]:
        return [p for p in item.segment[start:item.position + 1] if not os.path.isfile(p)]

    def _usable(self, item: LabelledFrame, start: int) -> bool:
        """True when frames start..position exist; raise naming the file unless skip_missing."""
        missing = self._window_missing(item, start)
        if not missing:
            return True
        if not self.skip_missing:
            raise FileNotFoundError(
                f"sequence frame missing for labelled frame {item.name}: {missing[0]} "
                f"({len(missing)} missing; set dataset.skip_missing: true (--skip-missing) to "
                f"skip such samples)")
        logger.warning("skipping %s: sequence frame missing: %s", item.name, missing[0])
        return False

    def _with_history(self, items: List[LabelledFrame], k: int) -> List[LabelledFrame]:
        """Keep labelled frames with k-1 earlier frames in their segment, all present."""
        short = [it for it in items if it.position < k - 1]
        if short:
            logger.info("%s: %d of %d labelled frames have fewer than K-1=%d earlier frames in "
                        "their segment (start of a video); not used for training",
                        type(self).__name__, len(short), len(items), k - 1)
        return [it for it in items if it.position >= k - 1 and self._usable(it, it.position - k + 1)]

    # ----------------------------------------------------------------- label I/O
    def load_label(self, item: LabelledFrame) -> np.ndarray:
        """Read a label file and map it to train ids (uint8 (H, W), 255 ignored); strict."""
        raw = imutil.read_label(item.label)
        bad = values_outside(raw, item.codec.valid)
        if bad.size:
            raise ValueError(f"label file {item.label}: values {bad.tolist()} are not in the "
                             f"class set ({item.codec.name}, {IGNORE_LABEL} = ignore)")
        return lut_apply(raw, item.codec.lut)

    # ----------------------------------------------------------- training sample
    def reference_positions(self, item: LabelledFrame, distance: int) -> List[int]:
        """Positions of the K-1 reference frames, keyframe (at `distance` steps back) first."""
        k1 = self.key_interval - 1
        if not 0 <= distance <= k1:
            raise ValueError(f"keyframe distance must be in [0, {k1}], got {distance}")
        key = item.position - distance
        # A shorter distance repeats the keyframe at the front so data_ref keeps K-1 frames;
        # flow between identical frames is ~0, so the extra hops leave the features as they are.
        if distance == 0:
            return [item.position] * k1
        return [key] * (k1 - distance + 1) + list(range(key + 1, item.position))

    def sample(self, index: int, rng: np.random.Generator) -> Dict[str, np.ndarray]:
        """Build the training sample of labelled frame `index` using `rng` for crop/flip/distance.

        With key_interval 1 (frame-by-frame training) the sample is the frame and its label
        alone: no `data_ref` / `eq_flag`.
        """
        item = self.items[index]
        k1 = self.key_interval - 1
        distance = int(rng.integers(0, k1 + 1)) if self.random_key_distance and k1 else k1
        positions = self.reference_positions(item, distance) if k1 else []
        cache: Dict[int, np.ndarray] = {}
        for p in set(positions) | {item.position}:
            cache[p] = imutil.read_image(item.segment[p])
        cur = cache[item.position]
        label = self.load_label(item)
        self._check_sizes(item, cur, label, cache)

        h, w, _ = imutil.scaled_size(cur.shape[0], cur.shape[1], self.scales)
        window = self._crop_window(h, w, rng)
        flip = self.flip and rng.random() < 0.5

        def image_tensor(img: np.ndarray) -> np.ndarray:
            img = _crop_flip(imutil.resize_image(img, (h, w)), window, flip)
            return self._pad(imutil.image_to_tensor(img, self.pixel_means), 0.0)

        tensors = {p: image_tensor(img) for p, img in cache.items()}
        lab = _crop_flip(imutil.resize_label(label, (h, w)), window, flip)
        sample = {
            "data": tensors[item.position],
            "label": self._pad(imutil.label_to_tensor(lab), IGNORE_LABEL),
            "name": item.name,
        }
        if k1:
            sample["data_ref"] = np.concatenate([tensors[p] for p in positions], axis=0)
            sample["eq_flag"] = np.array([1.0 if distance == 0 else 0.0], dtype=np.float32)
        return sample

    def _check_sizes(self, item: LabelledFrame, cur: np.ndarray, label: np.ndarray,
                     frames: Dict[int, np.ndarray]) -> None:
        if label.shape != cur.shape[:2]:
            raise ValueError(f"label file {item.label} is {label.shape[1]}x{label.shape[0]} but "
                             f"image {item.image} is {cur.shape[1]}x{cur.shape[0]} (W x H)")
        for p, img in frames.items():
            if img.shape != cur.shape:
                raise ValueError(f"frame {item.segment[p]} is {img.shape[1]}x{img.shape[0]} but "
                                 f"labelled frame {item.image} is {cur.shape[1]}x{cur.shape[0]}")

    def _crop_window(self, h: int, w: int, rng: np.random.Generator) -> Tuple[int, int, int, int]:
        if self.crop_size is None:
            return 0, 0, h, w
        ch, cw = self.crop_size
        y0 = int(rng.integers(0, max(h - ch, 0) + 1))
        x0 = int(rng.integers(0, max(w - cw, 0) + 1))
        return y0, x0, min(ch, h), min(cw, w)

    def _pad(self, tensor: np.ndarray, value: float) -> np.ndarray:
        """Pad a crop smaller than crop_size up to it, then to the stride (bottom/right)."""
        if self.crop_size is not None:
            ph, pw = self.crop_size[0] - tensor.shape[-2], self.crop_size[1] - tensor.shape[-1]
            if ph > 0 or pw > 0:
                pad = [(0, 0)] * (tensor.ndim - 2) + [(0, max(ph, 0)), (0, max(pw, 0))]
                tensor = np.pad(tensor, pad, mode="constant", constant_values=value)
        return imutil.pad_to_stride(tensor, self.stride, value)

    # -------------------------------------------------------------- test snippets
    def test_snippets(self, interval: int, avg: bool = False) -> List[Snippet]:
        """Snippets ending on each labelled frame, the first frame being a keyframe.

        Worst case (default): start interval-1 steps before the labelled frame, so it is
        the farthest from its keyframe. `avg`: one snippet per offset 0..interval-1 (the
        mean over them is the expected accuracy at that interval). Near the start of a
        segment the snippet starts at the segment's first frame.
        """
        if interval < 1:
            raise ValueError(f"interval must be >= 1, got {interval}")
        offsets = range(interval) if avg else [interval - 1]
        snippets, clamped = [], 0
        for item in self.all_items:
            starts = sorted({max(item.position - o, 0) for o in offsets}, reverse=True)
            clamped += item.position < max(offsets)
            if not self._usable(item, starts[-1]):
                continue
            for s in starts:
                snippets.append(Snippet(item.segment[s:item.position + 1], item.position - s, item))
        if clamped:
            logger.info("%d labelled frames are fewer than %d steps into their segment: their "
                        "snippets start at the segment's first frame", clamped, max(offsets))
        return snippets


def _crop_flip(arr: np.ndarray, window: Tuple[int, int, int, int], flip: bool) -> np.ndarray:
    y0, x0, ch, cw = window
    arr = arr[y0:y0 + ch, x0:x0 + cw]
    return arr[:, ::-1] if flip else arr
