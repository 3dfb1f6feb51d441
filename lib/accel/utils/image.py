"""Image and label reading and the network's preprocessing, as in the original Accel/DFF.

Image: read BGR with OpenCV -> resize by `SCALES` (short side to target, long side capped)
-> RGB -> minus the per-channel means (no std) -> NCHW float32 -> zero-pad bottom/right to
a multiple of `IMAGE_STRIDE`. Label: 8-bit map, same size, nearest neighbour, padded with
the ignore value (accel.utils.segmath.IGNORE_LABEL). The steps are composed by the data
sets (training samples) and accel.core.tester.prepare_frame (inference).
"""
import os
from typing import Sequence, Tuple

import cv2
import numpy as np

# Per-channel means subtracted from every frame, in BGR order (the original's; the config's
# network.PIXEL_MEANS default and the data sets' own).
PIXEL_MEANS = (103.06, 115.90, 123.15)


def _imread(path: str, flags: int, what: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file not found: {path}")
    img = cv2.imread(path, flags)
    if img is None:
        raise ValueError(f"{what} file unreadable or corrupt (OpenCV could not decode it): {path}")
    return img


def read_image(path: str) -> np.ndarray:
    """Read a colour image as (H, W, 3) uint8 BGR; raise naming the file if it cannot."""
    return _imread(path, cv2.IMREAD_COLOR, "image")


def read_label(path: str) -> np.ndarray:
    """Read an 8-bit single-channel label map as (H, W) uint8; raise naming the file if not."""
    label = _imread(path, cv2.IMREAD_UNCHANGED, "label")
    if label.ndim != 2 or label.dtype != np.uint8:
        raise ValueError(f"label file {path}: expected an 8-bit single-channel image, got "
                         f"shape {label.shape} dtype {label.dtype}")
    return label


def compute_scale(height: int, width: int, target_size: int, max_size: int) -> float:
    """Scale that brings the short side to target_size unless the long side would pass max_size."""
    short, long_ = min(height, width), max(height, width)
    scale = float(target_size) / short
    if round(scale * long_) > max_size:
        scale = float(max_size) / long_
    return scale


def scaled_size(height: int, width: int, scales: Sequence[int]) -> Tuple[int, int, float]:
    """Return (new_height, new_width, scale) for `scales` = [target short side, max long side]."""
    target, max_size = _check_scales(scales)
    scale = compute_scale(height, width, target, max_size)
    return int(round(height * scale)), int(round(width * scale)), scale


def _check_scales(scales: Sequence[int]) -> Tuple[int, int]:
    if len(scales) != 2 or min(scales) <= 0:
        raise ValueError(f"SCALES must be [target short side, max long side] > 0, got {scales}")
    return int(scales[0]), int(scales[1])


def resize_image(img: np.ndarray, size_hw: Tuple[int, int]) -> np.ndarray:
    """Resize an image to (height, width) bilinearly (no-op when already that size)."""
    if img.shape[:2] == tuple(size_hw):
        return img
    return cv2.resize(img, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_LINEAR)


def resize_label(label: np.ndarray, size_hw: Tuple[int, int]) -> np.ndarray:
    """Resize a label map to (height, width) by nearest neighbour (labels must not blend)."""
    if label.shape[:2] == tuple(size_hw):
        return label
    return cv2.resize(label, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_NEAREST)


def image_to_tensor(img_bgr: np.ndarray, pixel_means_bgr: Sequence[float]) -> np.ndarray:
    """(H, W, 3) uint8 BGR -> (1, 3, H, W) float32 RGB minus the means (given in BGR order)."""
    means = np.asarray(pixel_means_bgr, dtype=np.float32)
    if means.shape != (3,):
        raise ValueError(f"PIXEL_MEANS must be 3 values in BGR order, got {pixel_means_bgr}")
    rgb = img_bgr[:, :, ::-1].astype(np.float32) - means[::-1]
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[np.newaxis])


def label_to_tensor(label: np.ndarray) -> np.ndarray:
    """(H, W) uint8 label -> (1, 1, H, W) float32, the layout SoftmaxOutput expects."""
    return label.astype(np.float32)[np.newaxis, np.newaxis]


def pad_to_stride(tensor: np.ndarray, stride: int, value: float = 0.0) -> np.ndarray:
    """Pad the last two axes at the bottom/right to multiples of stride (0 = leave as is)."""
    if stride < 0:
        raise ValueError(f"IMAGE_STRIDE must be >= 0, got {stride}")
    if stride == 0:
        return tensor
    h, w = tensor.shape[-2:]
    ph, pw = -h % stride, -w % stride
    if ph == 0 and pw == 0:
        return tensor
    pad = [(0, 0)] * (tensor.ndim - 2) + [(0, ph), (0, pw)]
    return np.pad(tensor, pad, mode="constant", constant_values=value)
