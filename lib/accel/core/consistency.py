"""Temporal consistency of predictions on consecutive frames (no labels needed).

Definition (a label-map version of the warping error of Lai et al., "Learning Blind Video
Temporal Consistency", ECCV 2018): for consecutive frames t-1, t with class maps P_{t-1},
P_t of the same size,

1. optical flow is computed between the two *images* with OpenCV's DIS (Kroeger et al.
   2016), both ways: F_b from t to t-1 and F_f from t-1 to t. An independent flow is used on
   purpose: the model's own FlowNet would favour the flow-propagated (DFF) branch, whose
   predictions agree with that flow by construction;
2. pixel x of frame t is *valid* when x + F_b(x) falls inside frame t-1 and passes the
   forward-backward check of Sundaram et al. (ECCV 2010):
   |F_b(x) + F_f(x + F_b(x))|^2 <= 0.01 (|F_b(x)|^2 + |F_f(x + F_b(x))|^2) + 0.5,
   which drops occluded pixels and unreliable flow;
3. P_{t-1} is warped to frame t by nearest-neighbour sampling at x + F_b(x) (labels do
   not blend), and

       consistency = (valid pixels where P_t(x) == warped P_{t-1}(x)) / (valid pixels),

summed over every pair of a sequence before dividing. 1.0 means no flicker; `flicker` =
1 - consistency. `raw_agreement` (same pixel, no warping) is reported beside it: on a moving
camera it mixes motion with flicker, which is why the warped score is the headline.
"""
from typing import Dict, Optional, Tuple

import cv2
import numpy as np

_FB_REL = 0.01   # Sundaram et al.'s relative tolerance of the forward-backward check
_FB_ABS = 0.5    # ... and its absolute tolerance, in squared pixels


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a (H, W, 3) BGR or (H, W) grey image, got shape {image.shape}")
    return cv2.cvtColor(np.ascontiguousarray(image, dtype=np.uint8), cv2.COLOR_BGR2GRAY)


def _sample_grid(flow: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs + flow[..., 0], ys + flow[..., 1]


def warp_labels(labels: np.ndarray, flow: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Sample `labels` at x + flow(x) by nearest neighbour: (warped (H, W), inside mask).

    flow is (H, W, 2) in pixels, channel 0 = x; points that land outside are marked False.
    """
    if flow.shape[:2] != labels.shape[:2] or flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow shape {flow.shape} does not match labels {labels.shape} "
                         f"(expected (H, W, 2))")
    h, w = labels.shape[:2]
    xi, yi, inside = _nearest(*_sample_grid(flow), h, w)
    warped = labels[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
    return warped, inside


def _nearest(mx: np.ndarray, my: np.ndarray, h: int, w: int):
    """Nearest pixel of each sample point and whether it lies inside the (h, w) frame."""
    xi, yi = np.rint(mx).astype(np.int64), np.rint(my).astype(np.int64)
    return xi, yi, (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)


class TemporalConsistency:
    """Streaming consistency over sequences: reset() / process(image, pred) / evaluate().

    `process` pairs each frame with the previous one since the last `reset()`. Images are
    (H, W, 3) BGR at the prediction's size (resize before calling); preds (H, W) ints.
    The flows and the valid mask depend only on the images: with a `cache` dict, a pair
    given a `key` (e.g. (stream, frame)) computes them once for every run over the same
    frames.
    """

    def __init__(self, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
                 cache: Optional[Dict] = None):
        self._dis = cv2.DISOpticalFlow_create(preset)
        self._cache = cache
        self.agree = self.valid = self.raw_agree = self.pixels = self.pairs = 0
        self._prev: Optional[Tuple[np.ndarray, np.ndarray]] = None

    def reset(self) -> None:
        """Start a new sequence (the next frame is not paired with the last one)."""
        self._prev = None

    def flow(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """DIS optical flow (H, W, 2) from grey image `src` to `dst`: src(x) ~ dst(x + F(x))."""
        return self._dis.calc(src, dst, None)

    def geometry(self, prev_image: np.ndarray, image: np.ndarray
                 ) -> Tuple[np.ndarray, np.ndarray]:
        """(flow from frame t to t-1, valid mask: inside frame t-1 and passing the
        forward-backward check) of one pair of images."""
        g0, g1 = _gray(prev_image), _gray(image)
        back = self.flow(g1, g0)       # frame t -> t-1
        fwd = self.flow(g0, g1)        # frame t-1 -> t
        mx, my = _sample_grid(back)
        inside = _nearest(mx, my, *back.shape[:2])[2]
        fwd_at = cv2.remap(fwd, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        err = np.sum((back + fwd_at) ** 2, axis=2)
        bound = _FB_REL * (np.sum(back ** 2, axis=2) + np.sum(fwd_at ** 2, axis=2)) + _FB_ABS
        return back, inside & (err <= bound)

    def pair(self, prev_image: np.ndarray, prev_pred: np.ndarray, image: np.ndarray,
             pred: np.ndarray, key=None) -> Dict[str, int]:
        """Counts for one pair: {'agree', 'valid', 'raw_agree', 'pixels'}."""
        if prev_pred.shape != pred.shape or image.shape[:2] != pred.shape \
                or prev_image.shape[:2] != prev_pred.shape:
            raise ValueError(f"consistency: images {prev_image.shape[:2]}, {image.shape[:2]} and "
                             f"predictions {prev_pred.shape}, {pred.shape} must share one size")
        cached = self._cache is not None and key is not None
        if cached and key in self._cache:
            back, valid = self._cache[key]
        else:
            back, valid = self.geometry(prev_image, image)
            if cached:
                self._cache[key] = (back, valid)
        warped, _ = warp_labels(prev_pred, back)
        same = warped == pred
        return {"agree": int(np.count_nonzero(same & valid)), "valid": int(np.count_nonzero(valid)),
                "raw_agree": int(np.count_nonzero(prev_pred == pred)), "pixels": int(pred.size)}

    def process(self, image: np.ndarray, pred: np.ndarray, key=None) -> Optional[float]:
        """Add a frame; returns its pair's consistency (None for a sequence's first frame).
        `key` names the pair in the cache (see the class)."""
        result = None
        if self._prev is not None:
            counts = self.pair(self._prev[0], self._prev[1], image, pred, key)
            self.agree += counts["agree"]
            self.valid += counts["valid"]
            self.raw_agree += counts["raw_agree"]
            self.pixels += counts["pixels"]
            self.pairs += 1
            result = counts["agree"] / counts["valid"] if counts["valid"] else float("nan")
        self._prev = (image, pred)
        return result

    def evaluate(self) -> Dict[str, float]:
        """{'consistency', 'flicker', 'raw_agreement', 'valid_fraction', 'pairs'} (NaN if none)."""
        nan = float("nan")
        cons = self.agree / self.valid if self.valid else nan
        return {"consistency": cons, "flicker": 1.0 - cons if self.valid else nan,
                "raw_agreement": self.raw_agree / self.pixels if self.pixels else nan,
                "valid_fraction": self.valid / self.pixels if self.pixels else nan,
                "pairs": self.pairs}
