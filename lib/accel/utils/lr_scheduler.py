"""Learning-rate schedule of the original runners: constant warm-up, then multi-factor steps.

The schedule is a pure function of the update count (MXNet's `Optimizer.num_update`, which
counts from 1 for the first update), so a resumed run that restores the count gets exactly
the learning rates of an uninterrupted one. Steps are given in epochs (the config's
`TRAIN.lr_step`, fractional allowed; the trainer parses it) and converted to updates with
the batches per epoch. Plain values in: nothing here reads a config.
"""
import bisect
import logging
from typing import Sequence

import mxnet as mx

logger = logging.getLogger(__name__)

__all__ = ["WarmupMultiFactorScheduler", "epochs_to_updates"]


def epochs_to_updates(epochs: Sequence[float], batches_per_epoch: int) -> list:
    """[40.336] with 100 batches/epoch -> [4033] (the original truncates with int())."""
    if batches_per_epoch <= 0:
        raise ValueError(f"batches_per_epoch must be > 0, got {batches_per_epoch}")
    return [int(e * batches_per_epoch) for e in epochs]


class WarmupMultiFactorScheduler(mx.lr_scheduler.LRScheduler):
    """lr = warmup_lr while num_update < warmup_step (if warm-up is on), else
    base_lr * factor ** (number of steps s with num_update > s).

    Same thresholds as DFF's WarmupMultiFactorScheduler, but stateless (no cursor into the
    step list), so it may be called with any count in any order.
    """

    def __init__(self, steps: Sequence[int], factor: float = 0.1, base_lr: float = 0.01,
                 warmup: bool = False, warmup_lr: float = 0.0, warmup_step: int = 0):
        super().__init__(base_lr=base_lr)
        steps = [int(s) for s in steps]
        if any(s < 0 for s in steps) or steps != sorted(steps):
            raise ValueError(f"lr steps must be non-negative and increasing, got {steps}")
        if not 0 < factor <= 1:
            raise ValueError(f"lr factor must be in (0, 1], got {factor}")
        self.steps, self.factor = steps, float(factor)
        self.warmup, self.warmup_lr, self.warmup_step = bool(warmup), float(warmup_lr), \
            int(warmup_step)

    def __call__(self, num_update: int) -> float:
        if self.warmup and num_update < self.warmup_step:
            return self.warmup_lr
        passed = bisect.bisect_left(self.steps, num_update)  # steps s with s < num_update
        return self.base_lr * self.factor ** passed
