"""A training run's files: never over another run's, what an epoch's checkpoint holds
beyond its parameters, and how a run resumes from it.

At each epoch end the trainer (accel.core.trainer) writes `<prefix>-%04d.states` (momentum,
mx.nd.save, one buffer per trainable parameter and device: '<name>@<device>'),
`<prefix>-%04d.json` (update count, batches per epoch, sampler position, provenance) and
`<prefix>-%04d.params` (every parameter, arg:/aux:), atomically and the params file last,
so a params file with its two companions is a complete checkpoint (file names:
accel.utils.paths). Only the last TRAIN.keep_states epochs keep their .states. A failed
write (a full disk) stops the run with an error naming the file and the previous, intact
checkpoint.
"""
import contextlib
import json
import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

import mxnet as mx

from accel.utils.checkpoint import (CheckpointError, atomic_path, list_checkpoints,
                                    load_optimizer_states, params_path,
                                    remove_stale_temporaries, save_checkpoint,
                                    save_optimizer_states, states_path, write_error)
from accel.utils import paths
from accel.utils.paths import train_state_path

__all__ = ["RunExistsError", "prepare_run_folder", "resume_point", "read_train_state", "states_to_save", "restore_states",
           "save_epoch"]

logger = logging.getLogger("accel.core.trainer")


class RunExistsError(CheckpointError):
    """The run folder already holds checkpoints of this prefix and no one said what to do."""


def prepare_run_folder(prefix: str, resume: bool, overwrite: bool = False,
                       begin_epoch: int = 0) -> List[str]:
    """Refuse to start a fresh run over an existing one (or, with `overwrite`, delete its
    epoch files first); returns the files deleted. A resumed run, or one started from
    TRAIN.begin_epoch > 0 (which loads that epoch), continues the folder's run."""
    if resume or begin_epoch > 0:
        return []
    existing = paths.epoch_files(prefix)
    if not existing:
        return []
    if not overwrite:
        epochs = list_checkpoints(prefix)
        folder = os.path.dirname(os.path.abspath(prefix))
        raise RunExistsError(
            f"{folder} already holds a run of '{os.path.basename(prefix)}' ({len(existing)} "
            f"files, epochs {epochs or 'none complete'}); starting again would mix two runs. "
            f"Continue it with --resume, or start a new one elsewhere (output_path=NEW_FOLDER)"
            f" or over it (--overwrite deletes its checkpoints and results)")
    for path in existing + paths.stale_temporaries(prefix):
        with contextlib.suppress(FileNotFoundError):  # another dist_sync worker was first
            os.remove(path)
    logger.warning("--overwrite: deleted %d files of the previous run %s-*", len(existing),
                   prefix)
    return existing


def resume_point(prefix: str) -> Optional[int]:
    """Last epoch whose params, optimizer states and train state were all written."""
    complete = [e for e in list_checkpoints(prefix)
                if os.path.isfile(states_path(prefix, e))
                and os.path.isfile(train_state_path(prefix, e))]
    return complete[-1] if complete else None


def read_train_state(prefix: str, epoch: int, batches_per_epoch: int) -> Dict[str, Any]:
    """The sampler state saved with `epoch`; a CheckpointError when the file is unreadable
    or was written with another number of batches per epoch (other data, batch, devices)."""
    state_file = train_state_path(prefix, epoch)
    try:
        with open(state_file, encoding="utf-8") as f:
            train_state = json.load(f)
        saved_batches = int(train_state["batches_per_epoch"])
        sampler_state = train_state["sampler"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"cannot read train state {state_file} (truncated or "
                              f"corrupt: {err}); delete epoch {epoch}'s files "
                              f"to resume from an earlier epoch") from None
    if saved_batches != batches_per_epoch:
        raise CheckpointError(
            f"{state_file}: saved with {saved_batches} batches per epoch, this run has "
            f"{batches_per_epoch}; the data, batch size or devices changed")
    return sampler_state


def _state_key(name: str, device: int) -> str:
    """Name of a momentum buffer in the .states file: '<parameter>@<device index>'."""
    return "%s@%d" % (name, device)


def states_to_save(updater, trainable: Sequence[str], ndev: int) -> Dict[str, mx.nd.NDArray]:
    """The updater's {index: momentum} as {'<name>@<device>': NDArray} (None = no momentum)."""
    out = {}
    for index, state in updater.states.items():
        if state is None:
            continue
        if not isinstance(state, mx.nd.NDArray):
            raise TypeError(f"optimizer state of {trainable[index // ndev]} is a "
                            f"{type(state).__name__}; only single momentum buffers are saved")
        out[_state_key(trainable[index // ndev], index % ndev)] = state
    return out


def restore_states(updater, prefix: str, epoch: int, trainable: Sequence[str], ndev: int,
                    momentum: float, allow_pickle: bool) -> None:
    """Put the momentum buffers of `<prefix>-%04d.states` into `updater`, strictly."""
    path = states_path(prefix, epoch)
    loaded = load_optimizer_states(prefix, epoch, allow_pickle=allow_pickle)
    if loaded and all(isinstance(k, int) for k in loaded):  # old pickled {index: state}
        states = dict(loaded)
        logger.warning("%s: read the old pickled format (--legacy-states); later epochs are "
                       "saved in the new one", path)
    else:
        index = {_state_key(n, k): i * ndev + k for i, n in enumerate(trainable)
                 for k in range(ndev)}
        unexpected = sorted(set(loaded) - set(index))
        missing = sorted(set(index) - set(loaded)) if momentum else []
        if unexpected or missing:
            raise CheckpointError(
                f"{path} does not match this run ({len(trainable)} trainable parameters x "
                f"{ndev} device(s)): " + "; ".join(
                    part for part in (f"unexpected {', '.join(unexpected)}" if unexpected
                                      else "", f"missing {', '.join(missing)}" if missing
                                      else "") if part))
        states = {index[k]: v for k, v in loaded.items()}
    updater.states = states
    # As Updater.set_states: copied to each weight's device at its first update.
    updater.states_synced = dict.fromkeys(states, False)


def save_epoch(prefix: str, epoch: int, exe, input_shapes, states: Mapping[str, mx.nd.NDArray],
          train_state: Mapping[str, Any], keep_states: int) -> None:
    """Write states and train state first, params last (the params file marks completion),
    then drop the .states of epochs older than the last `keep_states` (0 = keep all)."""
    remove_stale_temporaries(prefix)
    state_file = train_state_path(prefix, epoch)
    try:
        save_optimizer_states(prefix, epoch, states)
        try:
            with atomic_path(state_file) as tmp:
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump({"epoch": epoch, **train_state}, f, indent=1)
        except OSError as err:
            raise write_error(state_file, err) from None
        arg_params = {n: v.copyto(mx.cpu()) for n, v in exe.arg_dict.items()
                      if n not in input_shapes}
        aux_params = {n: v.copyto(mx.cpu()) for n, v in exe.aux_dict.items()}
        save_checkpoint(prefix, epoch, arg_params, aux_params)
    except CheckpointError as err:
        earlier = [e for e in list_checkpoints(prefix) if e < epoch]
        intact = (f"the previous checkpoint {params_path(prefix, earlier[-1])} is intact "
                  f"(--resume continues from it once there is room)" if earlier
                  else "no earlier checkpoint exists")
        raise CheckpointError(f"epoch {epoch} not saved: {err}; {intact}") from None
    if keep_states > 0:
        for old in list_checkpoints(prefix):
            path = states_path(prefix, old)
            if old <= epoch - keep_states and os.path.isfile(path):
                os.remove(path)
                logger.debug("removed %s (TRAIN.keep_states = %d)", path, keep_states)
