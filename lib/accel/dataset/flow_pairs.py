"""Frame pairs with optical-flow targets from OpenCV's DIS, for training FlowNet on videos
that have no flow ground truth (our CamVid protocol; any user video in a supported layout).

Target convention = the warp's: for the current frame `data` and the earlier frame
`data_key`, flow(x) is where pixel x of the current frame lies in the earlier one, so
`warp(features(data_key), flow)` approximates features(data). DIS computes it at image
resolution; the target is its area average on the stride-16 feature grid, divided by 16
(feature pixels), exactly what DFF's FlowNet predicts (`Convolution5 * 2.5`).
"""
import logging
from typing import Dict, List, Tuple

import cv2
import numpy as np

from accel.dataset.base import LabelledVideoDataset
from accel.utils import image as imutil

logger = logging.getLogger(__name__)

FEATURE_STRIDE = 16


def dis_flow(cur_bgr: np.ndarray, ref_bgr: np.ndarray, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
             ) -> np.ndarray:
    """Dense flow (H, W, 2) float32 in pixels, x then y, with cur(x) ~ ref(x + flow(x))."""
    dis = cv2.DISOpticalFlow_create(preset)
    return dis.calc(cv2.cvtColor(cur_bgr, cv2.COLOR_BGR2GRAY),
                    cv2.cvtColor(ref_bgr, cv2.COLOR_BGR2GRAY), None)


def flow_to_grid(flow: np.ndarray, stride: int = FEATURE_STRIDE) -> np.ndarray:
    """Image-resolution flow (H, W, 2) -> (1, 2, H/stride, W/stride) in grid pixels."""
    h, w = flow.shape[:2]
    if h % stride or w % stride:
        raise ValueError(f"flow of size {h}x{w} is not a multiple of the stride {stride}")
    small = cv2.resize(flow, (w // stride, h // stride), interpolation=cv2.INTER_AREA)
    return (small.transpose(2, 0, 1)[None] / float(stride)).astype(np.float32)


class FlowPairs:
    """Consecutive-frame pairs (gap 1..max_gap steps) from the segments of a video data set.

    video: any LabelledVideoDataset (CamVid, Cityscapes sequences, user video); its frame
        segments, means, SCALES and stride are used. Labels are not read.
    crop_size: (h, w), multiples of 16, at most the scaled frame size; one window for both
        frames. Flip mirrors both frames before DIS runs, so the target follows.
    """

    def __init__(self, video: LabelledVideoDataset, crop_size: Tuple[int, int],
                 max_gap: int = 1, flip: bool = True, seed: int = 0):
        if crop_size[0] % FEATURE_STRIDE or crop_size[1] % FEATURE_STRIDE:
            raise ValueError(f"crop size {crop_size} must be multiples of {FEATURE_STRIDE}")
        self.video, self.crop_size = video, (int(crop_size[0]), int(crop_size[1]))
        self.flip, self.seed = bool(flip), int(seed)
        segments = sorted({item.segment for item in video.all_items})
        self.pairs: List[Tuple[str, str]] = [
            (seg[i], seg[i - gap]) for seg in segments for gap in range(1, max_gap + 1)
            for i in range(gap, len(seg))]
        if not self.pairs:
            raise ValueError(f"{video!r}: no frame pairs (segments shorter than 2 frames)")
        logger.info("flow pairs: %d from %d segments (gaps 1..%d)", len(self.pairs),
                    len(segments), max_gap)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Dict[str, np.ndarray]:
        return self.sample(index, np.random.default_rng([self.seed, index]))

    def sample(self, index: int, rng: np.random.Generator) -> Dict[str, np.ndarray]:
        """{'data', 'data_key': (1,3,h,w), 'flow_label': (1,2,h/16,w/16), 'name'}."""
        cur_path, ref_path = self.pairs[index]
        cur, ref = imutil.read_image(cur_path), imutil.read_image(ref_path)
        if cur.shape != ref.shape:
            raise ValueError(f"frames {cur_path} and {ref_path} differ in size")
        h, w, _ = imutil.scaled_size(cur.shape[0], cur.shape[1], self.video.scales)
        cur, ref = imutil.resize_image(cur, (h, w)), imutil.resize_image(ref, (h, w))
        ch, cw = self.crop_size
        if ch > h or cw > w:
            raise ValueError(f"crop {ch}x{cw} is larger than the scaled frames {h}x{w}")
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        cur, ref = cur[y0:y0 + ch, x0:x0 + cw], ref[y0:y0 + ch, x0:x0 + cw]
        if self.flip and rng.random() < 0.5:
            cur, ref = cur[:, ::-1].copy(), ref[:, ::-1].copy()
        flow = flow_to_grid(dis_flow(cur, ref))
        return {"data": imutil.image_to_tensor(cur, self.video.pixel_means),
                "data_key": imutil.image_to_tensor(ref, self.video.pixel_means),
                "flow_label": flow, "name": "%s<-%s" % (cur_path, ref_path)}


def endpoint_error(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean end-point error (same units as the inputs) of (N, 2, h, w) flows."""
    return float(np.sqrt(((pred - target) ** 2).sum(axis=1)).mean())
