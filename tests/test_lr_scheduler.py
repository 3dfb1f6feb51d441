"""Warm-up then multi-factor steps, in updates converted from (fractional) epochs."""
import pytest

from accel.config import get_defaults
from accel.core.trainer import lr_scheduler
from accel.utils.lr_scheduler import WarmupMultiFactorScheduler, epochs_to_updates


def test_warmup_then_steps_with_the_original_thresholds():
    s = WarmupMultiFactorScheduler([10, 20], 0.1, base_lr=0.5, warmup=True, warmup_lr=0.05,
                                   warmup_step=3)
    lrs = {n: s(n) for n in (1, 2, 3, 10, 11, 20, 21, 1000)}
    assert lrs[1] == lrs[2] == 0.05
    assert lrs[3] == lrs[10] == 0.5          # changes only once num_update > step
    assert lrs[11] == lrs[20] == pytest.approx(0.05)
    assert lrs[21] == lrs[1000] == pytest.approx(0.005)
    # Stateless: asking again, in any order, gives the same values (exact resume).
    assert s(2) == 0.05 and s(11) == pytest.approx(0.05)


def test_fractional_epochs_and_config():
    assert epochs_to_updates([40.336], 2975) == [119999]   # 119999.6, truncated
    cfg = get_defaults()
    cfg.TRAIN.update(lr=0.01, lr_step="1.5,2", lr_factor=0.5, warmup=False)
    s = lr_scheduler(cfg, 10)
    assert s.steps == [15, 20]
    assert [s(n) for n in (15, 16, 21)] == [0.01, 0.005, 0.0025]


def test_bad_steps_are_rejected():
    with pytest.raises(ValueError, match="increasing"):
        WarmupMultiFactorScheduler([5, 3])
    with pytest.raises(ValueError, match="batches_per_epoch"):
        epochs_to_updates([1.0], 0)
