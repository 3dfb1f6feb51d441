"""Divergent training stops at once (issue #25.9): the first non-finite loss, or a
non-finite weight about to be saved, ends the run with one line naming the epoch, the
batch and the learning rate. Nothing non-finite is ever written, so the last checkpoint
(finite) stays the latest one and --resume continues from it.

The loss is checked after every batch (the meter computes it anyway); the weights once per
epoch, before they are saved (a weight can overflow while the loss still reads finite).
"""
import math
from typing import Mapping, Optional, Sequence

import numpy as np

from accel.utils.checkpoint import list_checkpoints, params_path

__all__ = ["DivergenceError", "check_loss", "check_weights"]


class DivergenceError(ValueError):
    """Training produced NaN or infinity (a user's setting, usually the learning rate)."""


def _last_checkpoint(prefix: str, before: int) -> str:
    done = [e for e in list_checkpoints(prefix) if e <= before]
    if not done:
        return "no checkpoint was saved"
    return (f"the last checkpoint {params_path(prefix, done[-1])} is finite and stays the "
            f"latest (--resume continues from it)")


def _stop(what: str, epoch: int, batch: Optional[int], batches: int, lr: float,
          prefix: str) -> DivergenceError:
    where = f"epoch {epoch}, batch {batch}/{batches}" if batch is not None else \
        f"the end of epoch {epoch}"
    return DivergenceError(f"training diverged at {where} (Epoch[{epoch}] in the log), lr "
                           f"{lr:g}: {what}; {_last_checkpoint(prefix, epoch)}; lower TRAIN.lr "
                           f"(or TRAIN.warmup_lr), or check the data")


def check_loss(loss: float, epoch: int, batch: int, batches: int, lr: float,
               prefix: str) -> None:
    """Raise DivergenceError when this batch's loss is NaN or infinite (`batch` from 1)."""
    if not math.isfinite(loss):
        raise _stop(f"the loss is {loss}", epoch, batch, batches, lr, prefix)


def check_weights(params: Mapping[str, object], names: Sequence[str], epoch: int,
                  batches: int, lr: float, prefix: str) -> None:
    """Raise DivergenceError when a weight in `names` of `params` (NDArrays) holds NaN or
    infinity, naming the first ones."""
    bad = []
    for name in names:
        if not np.isfinite(params[name].asnumpy()).all():
            bad.append(name)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise _stop(f"{len(bad)} weight(s) are not finite ({shown})", epoch, None, batches,
                    lr, prefix)
