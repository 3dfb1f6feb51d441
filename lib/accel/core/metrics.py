"""Streaming segmentation evaluation: one confusion matrix, used by every runner."""
from typing import Dict, Optional, Sequence

import numpy as np

from accel.utils.segmath import IGNORE_LABEL, accumulate_confusion


class SegmentationEvaluator:
    """detectron2-style evaluator: reset() / process(pred, label) / evaluate() -> dict.

    IoU_c = TP / (TP + FP + FN) over every processed pixel whose label is not `ignore_label`;
    mIoU averages the classes that occur in the labels or predictions (a class absent from
    both has no IoU and is reported as NaN, as in the Cityscapes scripts).
    """

    def __init__(self, num_classes: int, class_names: Optional[Sequence[str]] = None,
                 ignore_label: int = IGNORE_LABEL):
        self.num_classes = int(num_classes)
        self.class_names = list(class_names) if class_names else [
            str(c) for c in range(self.num_classes)]
        if len(self.class_names) != self.num_classes:
            raise ValueError("%d class names given for %d classes"
                             % (len(self.class_names), self.num_classes))
        self.ignore_label = ignore_label
        self.reset()

    def reset(self) -> None:
        """Forget every processed frame."""
        self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.frames = 0

    def process(self, pred: np.ndarray, label: np.ndarray) -> None:
        """Add one prediction (H, W ints) and its label (H, W, `ignore_label` = void)."""
        if pred.shape != label.shape:
            raise ValueError("prediction shape %s differs from label shape %s"
                             % (pred.shape, label.shape))
        accumulate_confusion(self.confusion, pred.astype(np.int64, copy=False),
                             label.astype(np.int64, copy=False), self.ignore_label)
        self.frames += 1

    def merge(self, other: "SegmentationEvaluator") -> None:
        """Add another evaluator's counts (same classes) into this one."""
        self.confusion += other.confusion
        self.frames += other.frames

    def evaluate(self) -> Dict[str, object]:
        """{'mIoU', 'IoU': {class: value}, 'pixel_acc', 'frames', 'pixels'} (IoU in 0..1)."""
        conf = self.confusion.astype(np.float64)
        tp = np.diag(conf)
        union = conf.sum(0) + conf.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, tp / union, np.nan)
        total = conf.sum()
        return {
            "mIoU": float(np.nanmean(iou)) if np.any(union > 0) else float("nan"),
            "IoU": {n: float(v) for n, v in zip(self.class_names, iou)},
            "pixel_acc": float(tp.sum() / total) if total else float("nan"),
            "frames": self.frames,
            "pixels": int(total),
        }
