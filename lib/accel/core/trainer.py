"""The training loop shared by the DeepLab and Accel runners: data parallel SGD with frozen
prefixes, per-parameter lr_mult, kvstore aggregation, epoch checkpoints and exact resume.

One executor per device, each fed `TRAIN.BATCH_IMAGES` training samples; a batch is
devices x BATCH_IMAGES samples (x workers under dist_sync). Gradients of the trainable
parameters are summed over devices (and workers) by the kvstore and every device applies the
same SGD update locally (as MXNet's Module does without update_on_kvstore), so optimizer
states live in this process and can be saved, also under dist_sync.

At each epoch end `<prefix>-%04d.states` (momentum, mx.nd.save), `<prefix>-%04d.json`
(update count, sampler position, provenance) and `<prefix>-%04d.params` (every parameter,
arg:/aux:) are written atomically, the params file last, so a params file with its two
companions is a complete checkpoint (file names: accel.utils.paths). Only the last
TRAIN.keep_states epochs keep their .states. A failed write (a full disk) stops the run with
an error naming the file and the previous, intact checkpoint. The sample order and crops
are functions of (seed, epoch, position) and the learning rate a function of the update
count, so a run resumed from epoch e ends with exactly the parameters of an uninterrupted
run. A run never starts over an existing run of the same prefix unless told to resume or
to overwrite it (prepare_run_folder). The first NaN or infinite loss or weight stops the
run before anything non-finite is saved (accel.core.divergence).
"""
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np

from accel.config import parse_lr_steps
from accel.core.divergence import check_loss, check_weights
from accel.core.pretrained import frozen_names
from accel.dataset.loader import PrefetchLoader
from accel.utils import paths
from accel.utils.checkpoint import (CheckpointError, atomic_path, check_names, list_checkpoints,
                                    load_checkpoint, load_optimizer_states, params_path,
                                    remove_stale_temporaries, save_checkpoint,
                                    save_optimizer_states, states_path, write_error)
from accel.utils.progress import format_seconds
from accel.utils.provenance import provenance_line, run_provenance
from accel.utils.lr_scheduler import WarmupMultiFactorScheduler, epochs_to_updates
from accel.utils.segmath import IGNORE_LABEL

logger = logging.getLogger(__name__)

__all__ = ["train_state_path", "lr_scheduler", "prepare_run_folder", "RunExistsError",
           "ShardedSamples", "TrainResult", "fit"]

train_state_path = paths.train_state_path

Params = Dict[str, mx.nd.NDArray]
# (input shapes, one batch of inputs) -> (arg_params, aux_params) of every parameter: the
# pretrained chain (the batch calibrates parts started from scratch).
InitParams = Callable[[Mapping[str, Tuple[int, ...]], Mapping[str, np.ndarray]],
                      Tuple[Params, Params]]



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


def lr_scheduler(cfg, batches_per_epoch: int) -> WarmupMultiFactorScheduler:
    """The schedule of cfg.TRAIN (lr, lr_step in epochs, lr_factor, warm-up) in updates."""
    t = cfg.TRAIN
    steps = epochs_to_updates(parse_lr_steps(t.lr_step), batches_per_epoch)
    logger.info("lr %g, x%g at updates %s (epochs %s, %d batches/epoch)%s", t.lr, t.lr_factor,
                steps, t.lr_step or "none", batches_per_epoch,
                ", warm-up %g for %d updates" % (t.warmup_lr, t.warmup_step) if t.warmup else "")
    return WarmupMultiFactorScheduler(steps, t.lr_factor, t.lr, t.warmup, t.warmup_lr,
                                      t.warmup_step)


def _provenance() -> Dict[str, Any]:
    """What this process runs on (accel.utils.provenance), logged once per run start."""
    info = run_provenance()
    logger.info("provenance: %s", provenance_line(info))
    return info


class ShardedSamples:
    """Worker `rank`'s share of a data set under dist_sync: samples rank, rank + n, ..."""

    def __init__(self, dataset, rank: int, num_workers: int):
        self.dataset, self.rank, self.num_workers = dataset, int(rank), int(num_workers)
        if len(dataset) < num_workers:
            raise ValueError(f"{len(dataset)} training samples cannot be shared by "
                             f"{num_workers} workers")

    def __len__(self) -> int:
        return len(self.dataset) // self.num_workers

    def sample(self, index: int, rng: np.random.Generator) -> Dict[str, np.ndarray]:
        """Sample `index` of this worker's share."""
        return self.dataset.sample(index * self.num_workers + self.rank, rng)


@dataclass
class TrainResult:
    """What a run did: the checkpoint prefix, epochs run and the loss of every batch."""

    prefix: str
    begin_epoch: int
    end_epoch: int
    rank: int = 0  # this worker's rank under dist_sync (0 otherwise)
    losses: List[float] = field(default_factory=list)
    epoch_losses: Dict[int, float] = field(default_factory=dict)


class SoftmaxMeter:
    """Running softmax loss and pixel accuracy since the last log line.

    The meter interface of `fit`: reset(), add(executor) -> this batch's loss, line().
    """

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.loss_sum, self.correct, self.pixels, self.batches = 0.0, 0, 0, 0

    def add(self, exe) -> float:
        """Output 0 = softmax probabilities (N, C, H, W), input `label` (N, 1, H, W)."""
        prob, label = exe.outputs[0].asnumpy(), exe.arg_dict["label"].asnumpy()
        lab = label[:, 0].astype(np.int64)
        valid = lab != IGNORE_LABEL
        safe = np.where(valid, lab, 0)
        p = np.take_along_axis(prob, safe[:, None], axis=1)[:, 0]
        n = int(valid.sum())
        loss = float(-np.log(np.maximum(p[valid], 1e-14)).sum() / max(n, 1))
        self.loss_sum += loss
        self.correct += int((prob.argmax(axis=1) == lab)[valid].sum())
        self.pixels += n
        self.batches += 1
        return loss

    def line(self) -> str:
        acc = self.correct / self.pixels if self.pixels else float("nan")
        return "loss=%.4f pixel-acc=%.4f" % (self.loss_sum / max(self.batches, 1), acc)


def _create_kvstore(name: str, num_devices: int):
    """Like Module: no kvstore for one local device; always one for dist_*."""
    if name.startswith("dist"):
        return mx.kv.create(name)
    if num_devices > 1:
        return mx.kv.create(name)
    return None


def _stack(samples: Sequence[Mapping[str, np.ndarray]], names: Sequence[str]
           ) -> Dict[str, np.ndarray]:
    return {n: np.concatenate([s[n] for s in samples], axis=0) for n in names}


def _resume_point(prefix: str) -> Optional[int]:
    """Last epoch whose params, optimizer states and train state were all written."""
    complete = [e for e in list_checkpoints(prefix)
                if os.path.isfile(states_path(prefix, e))
                and os.path.isfile(train_state_path(prefix, e))]
    return complete[-1] if complete else None


def _state_key(name: str, device: int) -> str:
    """Name of a momentum buffer in the .states file: '<parameter>@<device index>'."""
    return "%s@%d" % (name, device)


def _states_to_save(updater, trainable: Sequence[str], ndev: int) -> Dict[str, mx.nd.NDArray]:
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


def _restore_states(updater, prefix: str, epoch: int, trainable: Sequence[str], ndev: int,
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


def fit(cfg, symbol: mx.sym.Symbol, dataset, prefix: str, init_params: InitParams,
        ctxs: Sequence[mx.Context], resume: bool = False, overwrite: bool = False,
        meter=None, on_start: Optional[Callable[[], None]] = None) -> TrainResult:
    """Train `symbol` (inputs named like the samples' keys, output 0 = softmax) on `dataset`
    from TRAIN.begin_epoch to TRAIN.end_epoch, checkpointing to `prefix` every epoch.

    resume: continue from the last complete checkpoint under `prefix` (params, momentum,
    update count, sampler position); without one, start as a fresh run. A run whose last
    epoch is complete just returns.
    overwrite: a fresh run may replace an existing run of `prefix` (else RunExistsError).
    meter: what the log lines report (default SoftmaxMeter; see accel.core.flow_training).
    on_start: called once everything is checked, right before the first batch (the
    command line saves the run's config there).
    """
    t = cfg.TRAIN
    ctxs = list(ctxs)
    prepare_run_folder(prefix, resume, overwrite, t.begin_epoch)
    kv = _create_kvstore(cfg.default.kvstore, len(ctxs))
    rank, num_workers = (kv.rank, kv.num_workers) if kv is not None else (0, 1)
    if num_workers > 1:
        dataset = ShardedSamples(dataset, rank, num_workers)
        logger.info("worker %d of %d: %d samples of its own", rank, num_workers, len(dataset))
    per_device = t.BATCH_IMAGES
    loader = PrefetchLoader(dataset, batch_size=len(ctxs) * per_device, shuffle=t.SHUFFLE,
                            seed=t.seed)
    batches_per_epoch = len(loader)

    probe = dataset.sample(0, np.random.default_rng(0))
    input_names = [n for n in symbol.list_arguments() if n in probe]
    input_shapes = {n: (probe[n].shape[0] * per_device,) + probe[n].shape[1:]
                    for n in input_names}
    param_names = [n for n in symbol.list_arguments() if n not in input_shapes]
    frozen = set(frozen_names(param_names, cfg.network.FIXED_PARAMS))
    trainable = [n for n in param_names if n not in frozen]
    unmatched = [p for p in cfg.network.FIXED_PARAMS
                 if not any(n.startswith(p) for n in param_names)]
    if unmatched:
        logger.warning("network.FIXED_PARAMS prefixes matching no parameter: %s", unmatched)
    if not trainable:
        raise ValueError("network.FIXED_PARAMS freezes every parameter; nothing to train")
    logger.info("inputs %s; %d parameters, %d frozen, %d trainable (e.g. %s)", input_shapes,
                len(param_names), len(frozen), len(trainable), ", ".join(trainable[:4]))

    begin_epoch, resumed = t.begin_epoch, False
    if resume and rank == 0:
        remove_stale_temporaries(prefix)
    if resume:
        found = _resume_point(prefix)
        if found is None:
            logger.warning("resume: no complete checkpoint %s-%%04d.params/.states/.json; "
                           "starting at TRAIN.begin_epoch = %d", prefix, begin_epoch)
        elif found >= t.end_epoch:
            logger.info("resume: %s is complete (epoch %d >= TRAIN.end_epoch %d); nothing to "
                        "do", params_path(prefix, found), found, t.end_epoch)
            return TrainResult(prefix, found, found, rank)
        else:
            begin_epoch, resumed = found, True
            state_file = train_state_path(prefix, begin_epoch)
            try:
                with open(state_file, encoding="utf-8") as f:
                    train_state = json.load(f)
                saved_batches = int(train_state["batches_per_epoch"])
                sampler_state = train_state["sampler"]
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise CheckpointError(f"cannot read train state {state_file} (truncated or "
                                      f"corrupt: {err}); delete epoch {begin_epoch}'s files "
                                      f"to resume from an earlier epoch") from None
            if saved_batches != batches_per_epoch:
                raise CheckpointError(
                    f"{state_file}: saved with {saved_batches} batches per epoch, this run has "
                    f"{batches_per_epoch}; the data, batch size or devices changed")
            loader.load_state_dict(sampler_state)
    if begin_epoch > 0:
        # Like the original, a non-zero begin_epoch without resume starts from that epoch's
        # parameters (fresh momentum).
        arg_params, aux_params = load_checkpoint(prefix, begin_epoch)
        check_names(symbol, arg_params, aux_params, input_names,
                    params_path(prefix, begin_epoch))
        if not resumed:
            loader.load_state_dict({**loader.state_dict(), "epoch": begin_epoch, "index": 0})
        logger.info("starting from %s (epoch %d)%s", params_path(prefix, begin_epoch),
                    begin_epoch, " with optimizer states" if resumed else "")
    else:
        arg_params, aux_params = init_params(input_shapes, _stack([probe] * per_device,
                                                                  input_names))
    missing = [n for n in param_names if n not in arg_params]
    if missing:
        raise CheckpointError(f"no value for {len(missing)} parameter(s): {missing[:8]}")
    if begin_epoch >= t.end_epoch:
        logger.info("nothing to do: begin epoch %d >= TRAIN.end_epoch %d", begin_epoch,
                    t.end_epoch)
        return TrainResult(prefix, begin_epoch, begin_epoch, rank)

    # -- executors, one per device, sharing nothing: gradients meet in the kvstore --------
    grad_req = {n: "write" if n in trainable else "null" for n in symbol.list_arguments()}
    executors = []
    for ctx in ctxs:
        args = {n: (mx.nd.zeros(input_shapes[n], ctx) if n in input_shapes
                    else arg_params[n].as_in_context(ctx)) for n in symbol.list_arguments()}
        grads = {n: mx.nd.zeros(args[n].shape, ctx) for n in trainable}
        aux = {n: aux_params[n].as_in_context(ctx) for n in symbol.list_auxiliary_states()}
        executors.append(symbol.bind(ctx, args=args, args_grad=grads, grad_req=grad_req,
                                     aux_states=aux))
    ndev = len(executors)
    idx2name = {i * ndev + k: n for i, n in enumerate(trainable) for k in range(ndev)}
    optimizer = mx.optimizer.SGD(
        learning_rate=t.lr, momentum=t.momentum, wd=t.wd,
        lr_scheduler=lr_scheduler(cfg, batches_per_epoch),
        rescale_grad=1.0 / (ndev * per_device * num_workers), sym=symbol,
        param_idx2name=idx2name, begin_num_update=begin_epoch * batches_per_epoch)
    updater = mx.optimizer.get_updater(optimizer)
    if resumed:
        _restore_states(updater, prefix, begin_epoch, trainable, ndev, t.momentum,
                        allow_pickle=bool(t.legacy_states))
    if kv is not None:
        for i, n in enumerate(trainable):
            kv.init(i, executors[0].arg_dict[n])

    provenance = _provenance() if rank == 0 else {}
    if on_start is not None and rank == 0:
        on_start()
    result = TrainResult(prefix, begin_epoch, begin_epoch, rank)
    meter = meter or SoftmaxMeter()
    total_batches = (t.end_epoch - begin_epoch) * batches_per_epoch
    done, start_time = 0, time.perf_counter()
    for epoch in range(begin_epoch, t.end_epoch):
        mx.random.seed(t.seed + epoch)
        epoch_losses = []
        tic = time.perf_counter()
        for nbatch, batch in enumerate(loader):
            for k, exe in enumerate(executors):
                feed = _stack(batch[k * per_device:(k + 1) * per_device], input_names)
                for n, v in feed.items():
                    exe.arg_dict[n][:] = v
                exe.forward(is_train=True)
                exe.backward()
            for i, n in enumerate(trainable):
                grads = [exe.grad_dict[n] for exe in executors]
                if kv is not None:
                    kv.push(i, grads, priority=-i)
                    kv.pull(i, grads, priority=-i)
                for k, exe in enumerate(executors):
                    updater(i * ndev + k, grads[k], exe.arg_dict[n])
            loss = np.mean([meter.add(exe) for exe in executors])
            check_loss(float(loss), epoch, nbatch + 1, batches_per_epoch,
                       optimizer.lr_scheduler(optimizer.num_update), prefix)
            epoch_losses.append(float(loss))
            done += 1
            if (nbatch + 1) % cfg.default.frequent == 0 or nbatch + 1 == batches_per_epoch:
                elapsed = time.perf_counter() - tic
                speed = (nbatch + 1) * ndev * per_device / elapsed
                eta = (time.perf_counter() - start_time) / done * (total_batches - done)
                logger.info("Epoch[%d] Batch [%d/%d] Speed: %.2f samples/sec lr=%.3g %s ETA %s",
                            epoch, nbatch + 1, batches_per_epoch, speed,
                            optimizer.lr_scheduler(optimizer.num_update), meter.line(),
                            format_seconds(eta))
                meter.reset()
        result.losses += epoch_losses
        result.epoch_losses[epoch + 1] = float(np.mean(epoch_losses))
        result.end_epoch = epoch + 1
        check_weights(executors[0].arg_dict, trainable, epoch, batches_per_epoch,
                      optimizer.lr_scheduler(optimizer.num_update), prefix)
        if rank == 0:
            _save(prefix, epoch + 1, executors[0], input_shapes,
                  _states_to_save(updater, trainable, ndev),
                  {"num_update": int(optimizer.num_update),
                   "batches_per_epoch": batches_per_epoch, "sampler": loader.state_dict(),
                   "provenance": provenance}, t.keep_states)
        logger.info("Epoch[%d] done in %s, mean loss %.4f", epoch,
                    format_seconds(time.perf_counter() - tic), result.epoch_losses[epoch + 1])
    return result


def _save(prefix: str, epoch: int, exe, input_shapes, states: Mapping[str, mx.nd.NDArray],
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
