"""Divergent training stops at once (accel.core.divergence, issue #25.9): the first
non-finite loss or weight ends the run with one line (epoch, batch, learning rate), exit
status 1, and the last finite checkpoint stays the latest."""
import logging

import numpy as np
import pytest

from accel.utils.checkpoint import list_checkpoints, load_checkpoint
from test_train import tiny_fit


class _Samples:
    """Eight fixed random 8x8 images with 3-class labels."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.data = rng.normal(size=(8, 1, 3, 8, 8)).astype(np.float32)
        self.label = rng.integers(0, 3, size=(8, 1, 1, 8, 8)).astype(np.float32)

    def __len__(self):
        return 8

    def sample(self, index, rng):
        return {"data": self.data[index], "label": self.label[index]}


def _fit(prefix, end_epoch, lr, resume=False):
    return tiny_fit(prefix, end_epoch, lr=lr, samples=_Samples(), resume=resume)


def test_a_diverging_run_stops_at_the_first_non_finite_value(tmp_path):
    """DeepLab with lr 1e6 saved NaN checkpoints and exited 0."""
    from accel.core.divergence import DivergenceError

    prefix = str(tmp_path / "net")
    _fit(prefix, 1, 0.1)
    assert list_checkpoints(prefix) == [1]
    with pytest.raises(DivergenceError) as err:
        _fit(prefix, 3, 1e6, resume=True)
    message = str(err.value)
    assert "\n" not in message
    assert "epoch 1" in message and "batch" in message and "lr 1e+06" in message
    assert f"{prefix}-0001.params" in message
    assert list_checkpoints(prefix) == [1]                       # no NaN checkpoint saved
    args, _ = load_checkpoint(prefix, 1)
    assert all(np.isfinite(v.asnumpy()).all() for v in args.values())


def test_a_diverging_runner_exits_1_with_one_line(tmp_path, caplog):
    from accel.cli import run

    def main(argv):
        _fit(str(tmp_path / "net"), 2, 1e6)
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit_:
        run(main, [], mxnet="never")
    assert exit_.value.code == 1
    assert "training diverged" in caplog.text and "Traceback" not in caplog.text
    assert list_checkpoints(str(tmp_path / "net")) == []
