"""The training loop shared by the DeepLab and Accel runners: data parallel SGD with frozen
prefixes, per-parameter lr_mult, kvstore aggregation, epoch checkpoints and exact resume.

One executor per device, each fed `TRAIN.BATCH_IMAGES` training samples; a batch is
devices x BATCH_IMAGES samples (x workers under dist_sync). Gradients of the trainable
parameters are summed over devices (and workers) by the kvstore and every device applies the
same SGD update locally (as MXNet's Module does without update_on_kvstore), so optimizer
states live in this process and can be saved, also under dist_sync.

At each epoch end a complete checkpoint is written (accel.core.train_state: parameters,
momentum, update count and sampler position; a failed write names the file and the previous,
intact checkpoint). The sample order and crops are functions of (seed, epoch, position) and
the learning rate a function of the update count, so a run resumed from epoch e ends with
exactly the parameters of an uninterrupted run. A run never starts over an existing run of
the same prefix unless told to resume or to overwrite it (prepare_run_folder). The first
NaN or infinite loss or weight stops the run before anything non-finite is saved
(accel.core.divergence).
"""
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np

from accel.config import checkpoint_prefix, parse_gpus, parse_lr_steps
from accel.core.divergence import check_loss, check_weights
from accel.core.pretrained import frozen_names
from accel.dataset.loader import PrefetchLoader
from accel.core.train_state import (prepare_run_folder, read_train_state, restore_states,
                                    resume_point, save_epoch, states_to_save)
from accel.utils.checkpoint import (CheckpointError, check_names, load_checkpoint, params_path,
                                    remove_stale_temporaries)
from accel.utils.device import training_contexts
from accel.utils.progress import format_seconds
from accel.utils.provenance import provenance_line, run_provenance
from accel.utils.lr_scheduler import WarmupMultiFactorScheduler, epochs_to_updates
from accel.utils.segmath import IGNORE_LABEL

logger = logging.getLogger(__name__)

__all__ = ["lr_scheduler", "ShardedSamples", "TrainResult", "SoftmaxMeter", "fit",
           "train_config"]

Params = Dict[str, mx.nd.NDArray]
Shape = Tuple[int, ...]
# (input shapes, one batch of inputs) -> (arg_params, aux_params) of every parameter: the
# pretrained chain (the batch calibrates parts started from scratch).
InitParams = Callable[[Mapping[str, Tuple[int, ...]], Mapping[str, np.ndarray]],
                      Tuple[Params, Params]]



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


@dataclass
class _Inputs:
    """What a training symbol reads from a batch and what it learns."""

    names: List[str]                # data inputs: the samples' keys
    shapes: Dict[str, Shape]        # their shapes on one device
    params: List[str]               # every parameter
    trainable: List[str]            # those not frozen by network.FIXED_PARAMS


def _inputs(symbol: mx.sym.Symbol, probe: Mapping[str, np.ndarray], per_device: int,
            fixed: Sequence[str]) -> _Inputs:
    """Inputs and parameters of `symbol` given one sample (`probe`)."""
    names = [n for n in symbol.list_arguments() if n in probe]
    shapes = {n: (probe[n].shape[0] * per_device,) + probe[n].shape[1:] for n in names}
    params = [n for n in symbol.list_arguments() if n not in shapes]
    frozen = set(frozen_names(params, fixed))
    trainable = [n for n in params if n not in frozen]
    unmatched = [p for p in fixed if not any(n.startswith(p) for n in params)]
    if unmatched:
        logger.warning("network.FIXED_PARAMS prefixes matching no parameter: %s", unmatched)
    if not trainable:
        raise ValueError("network.FIXED_PARAMS freezes every parameter; nothing to train")
    logger.info("inputs %s; %d parameters, %d frozen, %d trainable (e.g. %s)", shapes,
                len(params), len(frozen), len(trainable), ", ".join(trainable[:4]))
    return _Inputs(names, shapes, params, trainable)


def _begin(prefix: str, t, resume: bool, rank: int, loader: PrefetchLoader
           ) -> Tuple[int, bool, bool]:
    """(epoch to start from, resumed with optimizer states, the run is already complete);
    a resumed run's sampler position is restored."""
    if not resume:
        return t.begin_epoch, False, False
    if rank == 0:
        remove_stale_temporaries(prefix)
    found = resume_point(prefix)
    if found is None:
        logger.warning("resume: no complete checkpoint %s-%%04d.params/.states/.json; "
                       "starting at TRAIN.begin_epoch = %d", prefix, t.begin_epoch)
        return t.begin_epoch, False, False
    if found >= t.end_epoch:
        logger.info("resume: %s is complete (epoch %d >= TRAIN.end_epoch %d); nothing to "
                    "do", params_path(prefix, found), found, t.end_epoch)
        return found, False, True
    loader.load_state_dict(read_train_state(prefix, found, len(loader)))
    return found, True, False


def _start_params(prefix: str, begin_epoch: int, resumed: bool, symbol: mx.sym.Symbol,
                  inputs: _Inputs, loader: PrefetchLoader, init_params: InitParams,
                  first_batch: Mapping[str, np.ndarray]) -> Tuple[Params, Params]:
    """The parameters to start from: epoch `begin_epoch`'s checkpoint, else `init_params`."""
    if begin_epoch > 0:
        # Like the original, a non-zero begin_epoch without resume starts from that epoch's
        # parameters (fresh momentum).
        arg_params, aux_params = load_checkpoint(prefix, begin_epoch)
        check_names(symbol, arg_params, aux_params, inputs.names,
                    params_path(prefix, begin_epoch))
        if not resumed:
            loader.load_state_dict({**loader.state_dict(), "epoch": begin_epoch, "index": 0})
        logger.info("starting from %s (epoch %d)%s", params_path(prefix, begin_epoch),
                    begin_epoch, " with optimizer states" if resumed else "")
    else:
        arg_params, aux_params = init_params(inputs.shapes, first_batch)
    missing = [n for n in inputs.params if n not in arg_params]
    if missing:
        raise CheckpointError(f"no value for {len(missing)} parameter(s): {missing[:8]}")
    return arg_params, aux_params


def _bind(symbol: mx.sym.Symbol, ctxs: Sequence[mx.Context], inputs: _Inputs,
          arg_params: Params, aux_params: Params) -> List[Any]:
    """One executor per device, sharing nothing: gradients meet in the kvstore."""
    grad_req = {n: "write" if n in inputs.trainable else "null"
                for n in symbol.list_arguments()}
    executors = []
    for ctx in ctxs:
        args = {n: (mx.nd.zeros(inputs.shapes[n], ctx) if n in inputs.shapes
                    else arg_params[n].as_in_context(ctx)) for n in symbol.list_arguments()}
        grads = {n: mx.nd.zeros(args[n].shape, ctx) for n in inputs.trainable}
        aux = {n: aux_params[n].as_in_context(ctx) for n in symbol.list_auxiliary_states()}
        executors.append(symbol.bind(ctx, args=args, args_grad=grads, grad_req=grad_req,
                                     aux_states=aux))
    return executors


class _Steps:
    """The run's executors, kvstore and optimizer: one SGD update per batch."""

    def __init__(self, executors: List[Any], inputs: _Inputs, per_device: int, kv, optimizer,
                 meter):
        self.executors, self.inputs, self.per_device = executors, inputs, per_device
        self.kv, self.optimizer, self.meter = kv, optimizer, meter
        self.updater = mx.optimizer.get_updater(optimizer)
        if kv is not None:
            for i, n in enumerate(inputs.trainable):
                kv.init(i, executors[0].arg_dict[n])

    def lr(self) -> float:
        """The learning rate of the next update."""
        return self.optimizer.lr_scheduler(self.optimizer.num_update)

    def step(self, batch: Sequence[Mapping[str, np.ndarray]]) -> float:
        """Forward and backward on every device, gradients summed over devices (and
        workers), the same update on every device; returns the batch's mean loss."""
        ndev, names = len(self.executors), self.inputs.names
        for k, exe in enumerate(self.executors):
            feed = _stack(batch[k * self.per_device:(k + 1) * self.per_device], names)
            for n, v in feed.items():
                exe.arg_dict[n][:] = v
            exe.forward(is_train=True)
            exe.backward()
        for i, n in enumerate(self.inputs.trainable):
            grads = [exe.grad_dict[n] for exe in self.executors]
            if self.kv is not None:
                self.kv.push(i, grads, priority=-i)
                self.kv.pull(i, grads, priority=-i)
            for k, exe in enumerate(self.executors):
                self.updater(i * ndev + k, grads[k], exe.arg_dict[n])
        return float(np.mean([self.meter.add(exe) for exe in self.executors]))


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
    probe = dataset.sample(0, np.random.default_rng(0))
    inputs = _inputs(symbol, probe, per_device, cfg.network.FIXED_PARAMS)
    begin_epoch, resumed, complete = _begin(prefix, t, resume, rank, loader)
    if complete:
        return TrainResult(prefix, begin_epoch, begin_epoch, rank)
    arg_params, aux_params = _start_params(prefix, begin_epoch, resumed, symbol, inputs,
                                           loader, init_params,
                                           _stack([probe] * per_device, inputs.names))
    if begin_epoch >= t.end_epoch:
        logger.info("nothing to do: begin epoch %d >= TRAIN.end_epoch %d", begin_epoch,
                    t.end_epoch)
        return TrainResult(prefix, begin_epoch, begin_epoch, rank)
    executors = _bind(symbol, ctxs, inputs, arg_params, aux_params)
    ndev = len(executors)
    optimizer = mx.optimizer.SGD(
        learning_rate=t.lr, momentum=t.momentum, wd=t.wd,
        lr_scheduler=lr_scheduler(cfg, len(loader)),
        rescale_grad=1.0 / (ndev * per_device * num_workers), sym=symbol,
        param_idx2name={i * ndev + k: n for i, n in enumerate(inputs.trainable)
                        for k in range(ndev)},
        begin_num_update=begin_epoch * len(loader))
    steps = _Steps(executors, inputs, per_device, kv, optimizer, meter or SoftmaxMeter())
    if resumed:
        restore_states(steps.updater, prefix, begin_epoch, inputs.trainable, ndev, t.momentum,
                       allow_pickle=bool(t.legacy_states))
    provenance = _provenance() if rank == 0 else {}
    if on_start is not None and rank == 0:
        on_start()
    result = TrainResult(prefix, begin_epoch, begin_epoch, rank)
    clock = _Clock((t.end_epoch - begin_epoch) * len(loader))
    for epoch in range(begin_epoch, t.end_epoch):
        _epoch(cfg, epoch, loader, steps, prefix, clock, result)
        if rank == 0:
            save_epoch(prefix, epoch + 1, executors[0], inputs.shapes,
                       states_to_save(steps.updater, inputs.trainable, ndev),
                       {"num_update": int(optimizer.num_update),
                        "batches_per_epoch": len(loader), "sampler": loader.state_dict(),
                        "provenance": provenance}, t.keep_states)
        logger.info("Epoch[%d] done in %s, mean loss %.4f", epoch,
                    format_seconds(clock.epoch_seconds()), result.epoch_losses[epoch + 1])
    return result


def train_config(cfg, cfg_path: str, symbol: mx.sym.Symbol, dataset, init_params: InitParams,
                 cpu: bool = False, resume: bool = False, **fit_kwargs) -> TrainResult:
    """`fit` as a config's run: checkpoints at accel.config.checkpoint_prefix, on the devices
    of cfg.gpus (the CPU with `cpu`), resuming with `resume` or TRAIN.RESUME."""
    return fit(cfg, symbol, dataset, checkpoint_prefix(cfg, cfg_path), init_params,
               training_contexts(parse_gpus(cfg.gpus), cpu), resume=resume or cfg.TRAIN.RESUME,
               **fit_kwargs)


class _Clock:
    """Wall time of the run and of the current epoch, for speed and ETA."""

    def __init__(self, total_batches: int):
        self.total, self.done = total_batches, 0
        self.start = self.tic = time.perf_counter()

    def new_epoch(self) -> None:
        self.tic = time.perf_counter()

    def epoch_seconds(self) -> float:
        return time.perf_counter() - self.tic

    def eta(self) -> float:
        return (time.perf_counter() - self.start) / self.done * (self.total - self.done)


def _epoch(cfg, epoch: int, loader: PrefetchLoader, steps: _Steps, prefix: str,
           clock: _Clock, result: TrainResult) -> None:
    """Train one epoch: every batch, its loss checked, a log line every `frequent`
    batches; the weights checked at the end (accel.core.divergence)."""
    mx.random.seed(cfg.TRAIN.seed + epoch)
    batches, losses = len(loader), []
    clock.new_epoch()
    for nbatch, batch in enumerate(loader):
        loss = steps.step(batch)
        check_loss(loss, epoch, nbatch + 1, batches, steps.lr(), prefix)
        losses.append(loss)
        clock.done += 1
        if (nbatch + 1) % cfg.default.frequent == 0 or nbatch + 1 == batches:
            speed = ((nbatch + 1) * len(steps.executors) * steps.per_device
                     / clock.epoch_seconds())
            logger.info("Epoch[%d] Batch [%d/%d] Speed: %.2f samples/sec lr=%.3g %s ETA %s",
                        epoch, nbatch + 1, batches, speed, steps.lr(), steps.meter.line(),
                        format_seconds(clock.eta()))
            steps.meter.reset()
    result.losses += losses
    result.epoch_losses[epoch + 1] = float(np.mean(losses))
    result.end_epoch = epoch + 1
    check_weights(steps.executors[0].arg_dict, steps.inputs.trainable, epoch, batches,
                  steps.lr(), prefix)
