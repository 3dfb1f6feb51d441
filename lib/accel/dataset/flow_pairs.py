"""Frame pairs with optical-flow targets from OpenCV's DIS, for training FlowNet on videos
that have no flow ground truth (our CamVid protocol; any user video in a supported layout).

Target convention = the warp's: for the current frame `data` and the earlier frame
`data_key`, flow(x) is where pixel x of the current frame lies in the earlier one, so
`warp(features(data_key), flow)` approximates features(data). DIS computes it at image
resolution; the target is its area average on the stride-16 feature grid, divided by 16
(feature pixels), exactly what DFF's FlowNet predicts (`Convolution5 * 2.5`).

Synthetic small hops (`hop` > 0; our CamVid protocol v2): where the training frames are
much farther apart than the test frames (CamVid train 1 s, val 66 ms), a real frame is moved
along the DIS flow to its real neighbour by a fraction of it, so the pairs have test-sized
motion, built from real pixels. `FlowPairs` moves the earlier frame forward (the target is
then exactly that fraction of the flow); `SyntheticHops` makes the K-1 reference frames of
an Accel training sample by moving the labelled frame back in time.
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


def shift_along_flow(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """out(x) = img(x + flow(x)): bilinear, edges replicated. img (H, W) or (H, W, C), uint8 or
    float32; flow (H, W, 2) in pixels, x then y (the warp's convention)."""
    h, w = flow.shape[:2]
    if img.shape[:2] != (h, w):
        raise ValueError(f"image {img.shape} and flow {flow.shape} differ in size")
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(img, gx + flow[..., 0].astype(np.float32), gy + flow[..., 1].astype(np.float32),
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def hop_fractions(rng: np.random.Generator, hop: float, count: int) -> np.ndarray:
    """`count` hop sizes, each uniform in [hop/2, 3 hop/2] (fractions of the real gap)."""
    return rng.uniform(0.5 * hop, 1.5 * hop, size=count)


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
    hop: 0 = real pairs. > 0 = synthetic pairs: the current frame is replaced by the earlier
        frame moved along the DIS flow by a fraction f ~ U[hop/2, 3 hop/2] of it,
        cur'(x) = ref(x + f flow(x)), and the target is f flow, exact by construction.
        CamVid train frames are 30 raw frames apart and val's 2: hop = 2/30.
    """

    def __init__(self, video: LabelledVideoDataset, crop_size: Tuple[int, int],
                 max_gap: int = 1, flip: bool = True, seed: int = 0, hop: float = 0.0):
        if crop_size[0] % FEATURE_STRIDE or crop_size[1] % FEATURE_STRIDE:
            raise ValueError(f"crop size {crop_size} must be multiples of {FEATURE_STRIDE}")
        self.video, self.crop_size = video, (int(crop_size[0]), int(crop_size[1]))
        self.flip, self.seed = bool(flip), int(seed)
        if not 0.0 <= hop < 1.0:
            raise ValueError(f"hop = {hop}: expected a fraction of the frame gap in [0, 1)")
        self.hop = float(hop)
        segments = sorted({item.segment for item in video.all_items})
        self.pairs: List[Tuple[str, str]] = [
            (seg[i], seg[i - gap]) for seg in segments for gap in range(1, max_gap + 1)
            for i in range(gap, len(seg))]
        if not self.pairs:
            raise ValueError(f"{video!r}: no frame pairs (segments shorter than 2 frames)")
        logger.info("flow pairs: %d from %d segments (gaps 1..%d)%s", len(self.pairs),
                    len(segments), max_gap, ", synthetic hops of %.3g x the gap (x0.5..1.5)"
                    % self.hop if self.hop else "")

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
        flow = dis_flow(cur, ref)
        if self.hop:
            flow *= hop_fractions(rng, self.hop, 1)[0]
            cur = shift_along_flow(ref, flow)
        flow = flow_to_grid(flow)
        return {"data": imutil.image_to_tensor(cur, self.video.pixel_means),
                "data_key": imutil.image_to_tensor(ref, self.video.pixel_means),
                "flow_label": flow, "name": "%s<-%s" % (cur_path, ref_path)}


class SyntheticHops:
    """Accel training samples whose reference frames are the labelled frame moved back in time.

    video: a LabelledVideoDataset built with key_interval 2 (its sample gives the labelled
        frame f and the real frame f-1 before it, one crop and flip). The DIS flow H from f
        to f-1 (f(x) ~ f-1(x + H(x))) moves f back by cumulative fractions c_1 < ... < c_K-1
        of it (each hop ~ U[hop/2, 3 hop/2]): reference j is f(x - c_j H(x)) (the flow taken
        at the target pixel, the usual approximation of frame interpolation). data_ref is
        then those K-1 frames, oldest (the keyframe) first, as the real samples; the label
        stays the real one of f. Padding (bottom/right, exactly 0) is left as it is.
    """

    def __init__(self, video: LabelledVideoDataset, key_interval: int, hop: float):
        if video.key_interval != 2:
            raise ValueError(f"SyntheticHops needs the video with key_interval 2 (f and f-1), "
                             f"got {video.key_interval}")
        if key_interval < 2 or not 0.0 < hop < 1.0:
            raise ValueError(f"key_interval {key_interval} must be >= 2 and hop {hop} in (0, 1)")
        self.video, self.key_interval, self.hop = video, int(key_interval), float(hop)
        self.seed = video.seed
        logger.info("synthetic hops: %d reference frames per sample, each hop %.3g x the "
                    "training frame gap (x0.5..1.5)", self.key_interval - 1, self.hop)

    def __len__(self) -> int:
        return len(self.video)

    def __repr__(self) -> str:
        return f"SyntheticHops({self.video!r}, K={self.key_interval}, hop={self.hop:.4g})"

    def __getitem__(self, index: int) -> Dict[str, np.ndarray]:
        return self.sample(index, np.random.default_rng([self.seed, index]))

    def sample(self, index: int, rng: np.random.Generator) -> Dict[str, np.ndarray]:
        """The video's sample with data_ref (K-1, 3, H, W) synthesized from data."""
        s = self.video.sample(index, rng)
        cur, prev = s["data"][0], s["data_ref"][0]            # (3, H, W), means subtracted
        rows = np.flatnonzero(np.abs(cur).sum(axis=(0, 2)) > 0)
        cols = np.flatnonzero(np.abs(cur).sum(axis=(0, 1)) > 0)
        h, w = (rows[-1] + 1, cols[-1] + 1) if rows.size else cur.shape[1:]
        means = np.asarray(self.video.pixel_means, np.float32)[::-1]   # RGB, as the tensor
        to_bgr = lambda t: np.clip(t[:, :h, :w].transpose(1, 2, 0) + means, 0, 255
                                   ).astype(np.uint8)[:, :, ::-1]
        flow = dis_flow(to_bgr(cur), to_bgr(prev))
        cum = np.cumsum(hop_fractions(rng, self.hop, self.key_interval - 1))
        valid = np.ascontiguousarray(cur[:, :h, :w].transpose(1, 2, 0))
        refs = []
        for c in cum[::-1]:                                    # oldest first
            frame = np.zeros_like(cur)
            frame[:, :h, :w] = shift_along_flow(valid, -c * flow).transpose(2, 0, 1)
            refs.append(frame[None])
        s["data_ref"] = np.concatenate(refs, axis=0).astype(np.float32)
        s["eq_flag"] = np.zeros(1, np.float32)
        return s


def endpoint_error(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean end-point error (same units as the inputs) of (N, 2, h, w) flows."""
    return float(np.sqrt(((pred - target) ** 2).sum(axis=1)).mean())
