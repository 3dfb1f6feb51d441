"""The training loop shared by the DeepLab and Accel runners: data parallel SGD with frozen
prefixes, per-parameter lr_mult, kvstore aggregation, epoch checkpoints and exact resume.

One executor per device, each fed `TRAIN.BATCH_IMAGES` training samples; a batch is
devices x BATCH_IMAGES samples (x workers under dist_sync). Gradients of the trainable
parameters are summed over devices (and workers) by the kvstore and every device applies the
same SGD update locally (as MXNet's Module does without update_on_kvstore), so optimizer
states live in this process and can be saved, also under dist_sync.

At each epoch end `<prefix>-%04d.params` (every parameter, arg:/aux:), `<prefix>-%04d.states`
(momentum) and `<prefix>-%04d.json` (update count, sampler position) are written atomically;
the params file last, so a params file with its two companions is a complete checkpoint.
The sample order and crops are functions of (seed, epoch, position) and the learning rate
a function of the update count, so a run resumed from epoch e ends with exactly the
parameters of an uninterrupted run.
"""
import argparse
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np

from accel.config import dump_config, load_config, merge_overrides, parse_gpus
from accel.core.pretrained import frozen_names
from accel.dataset.loader import PrefetchLoader
from accel.utils.checkpoint import (CheckpointError, atomic_path, list_checkpoints,
                                    load_checkpoint, load_optimizer_states, params_path,
                                    save_checkpoint, save_optimizer_states, states_path)
from accel.utils.image import IGNORE_LABEL
from accel.utils.logger import create_logger, format_seconds, output_dir
from accel.utils.lr_scheduler import scheduler_from_config

logger = logging.getLogger(__name__)

__all__ = ["checkpoint_prefix", "contexts", "train_state_path", "ShardedSamples", "TrainResult",
           "fit", "train_test_main"]

Params = Dict[str, mx.nd.NDArray]
# (input shapes, one batch of inputs) -> (arg_params, aux_params) of every parameter: the
# pretrained chain (the batch calibrates parts started from scratch).
InitParams = Callable[[Mapping[str, Tuple[int, ...]], Mapping[str, np.ndarray]],
                      Tuple[Params, Params]]



def checkpoint_prefix(cfg, cfg_path: str) -> str:
    """Where a config's runner writes `<prefix>-%04d.params`:
    <output_path>/<cfg name>/<image_set>/<TRAIN.model_prefix>."""
    return os.path.join(output_dir(cfg.output_path, cfg_path, cfg.dataset.image_set),
                        cfg.TRAIN.model_prefix)


def train_state_path(prefix: str, epoch: int) -> str:
    """'<prefix>-%04d.json': update count and sampler position saved with epoch `epoch`."""
    return "%s-%04d.json" % (prefix, epoch)


def contexts(cfg, cpu: bool = False) -> List[mx.Context]:
    """Devices from cfg.gpus ('0,1' -> two GPUs); the CPU when `cpu` or gpus is ''."""
    gpus = parse_gpus(cfg.gpus)
    if cpu or not gpus:
        return [mx.cpu()]
    available = mx.context.num_gpus()
    if max(gpus) >= available:
        raise ValueError(f"gpus = {cfg.gpus!r} but this machine has {available} GPU(s); "
                         f"pick existing ids or run on the CPU (--cpu, or gpus: '')")
    return [mx.gpu(i) for i in gpus]


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


def fit(cfg, symbol: mx.sym.Symbol, dataset, prefix: str, init_params: InitParams,
        ctxs: Sequence[mx.Context], resume: bool = False,
        stop_after_epoch: Optional[int] = None, meter=None) -> TrainResult:
    """Train `symbol` (inputs named like the samples' keys, output 0 = softmax) on `dataset`
    from TRAIN.begin_epoch to TRAIN.end_epoch, checkpointing to `prefix` every epoch.

    resume: continue from the last complete checkpoint under `prefix` (params, momentum,
    update count, sampler position); without one, start as a fresh run.
    stop_after_epoch: return after saving that epoch (tests simulate an interruption).
    meter: what the log lines report (default SoftmaxMeter; see accel.core.flow_training).
    """
    t = cfg.TRAIN
    ctxs = list(ctxs)
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

    begin_epoch, states = t.begin_epoch, None
    if resume:
        found = _resume_point(prefix)
        if found is None:
            logger.warning("resume: no complete checkpoint %s-%%04d.params/.states/.json; "
                           "starting at TRAIN.begin_epoch = %d", prefix, begin_epoch)
        else:
            begin_epoch = found
            states = load_optimizer_states(prefix, begin_epoch)
            with open(train_state_path(prefix, begin_epoch), encoding="utf-8") as f:
                train_state = json.load(f)
            if train_state["batches_per_epoch"] != batches_per_epoch:
                raise CheckpointError(
                    f"{train_state_path(prefix, begin_epoch)}: saved with "
                    f"{train_state['batches_per_epoch']} batches per epoch, this run has "
                    f"{batches_per_epoch}; the data, batch size or devices changed")
            loader.load_state_dict(train_state["sampler"])
    if begin_epoch > 0:
        # Like the original, a non-zero begin_epoch without resume starts from that epoch's
        # parameters (fresh momentum).
        arg_params, aux_params = load_checkpoint(prefix, begin_epoch)
        if states is None:
            loader.load_state_dict({**loader.state_dict(), "epoch": begin_epoch, "index": 0})
        logger.info("starting from %s (epoch %d)%s", params_path(prefix, begin_epoch),
                    begin_epoch, " with optimizer states" if states else "")
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
        lr_scheduler=scheduler_from_config(cfg, batches_per_epoch),
        rescale_grad=1.0 / (ndev * per_device * num_workers), sym=symbol,
        param_idx2name=idx2name, begin_num_update=begin_epoch * batches_per_epoch)
    updater = mx.optimizer.get_updater(optimizer)
    if states is not None:
        updater.set_states(states)
    if kv is not None:
        for i, n in enumerate(trainable):
            kv.init(i, executors[0].arg_dict[n])

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
        if rank == 0:
            _save(prefix, epoch + 1, executors[0], input_shapes, updater, loader,
                  optimizer.num_update, batches_per_epoch)
        logger.info("Epoch[%d] done in %s, mean loss %.4f", epoch,
                    format_seconds(time.perf_counter() - tic), result.epoch_losses[epoch + 1])
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            break
    return result


def _save(prefix: str, epoch: int, exe, input_shapes, updater, loader, num_update: int,
          batches_per_epoch: int) -> None:
    """Write states and train state first, params last (the params file marks completion)."""
    save_optimizer_states(prefix, epoch, updater.get_states(dump_optimizer=False))
    with atomic_path(train_state_path(prefix, epoch)) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"epoch": epoch, "num_update": int(num_update),
                       "batches_per_epoch": batches_per_epoch,
                       "sampler": loader.state_dict()}, f, indent=1)
    arg_params = {n: v.copyto(mx.cpu()) for n, v in exe.arg_dict.items() if n not in input_shapes}
    aux_params = {n: v.copyto(mx.cpu()) for n, v in exe.aux_dict.items()}
    save_checkpoint(prefix, epoch, arg_params, aux_params)


def train_test_main(argv: Optional[Sequence[str]], train_net: Callable, test_net: Callable,
                    description: str) -> int:
    """Command line of the train-then-test runners: --cfg, --cpu, --resume, KEY=VALUE...;
    logs and the merged config go beside the checkpoints; the last epoch is then tested."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cfg", required=True, help="experiment yaml file")
    parser.add_argument("--cpu", action="store_true", help="train and test on the CPU")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the last complete checkpoint (TRAIN.RESUME)")
    parser.add_argument("--no-test", action="store_true", help="train only")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. TRAIN.end_epoch=2 gpus=0,1")
    args = parser.parse_args(argv)
    cfg = merge_overrides(load_config(args.cfg), args.overrides)
    _, out_dir = create_logger(cfg.output_path, args.cfg, cfg.dataset.image_set)
    dump_config(cfg, os.path.join(out_dir, os.path.basename(args.cfg)))
    logger.info("config %s%s", args.cfg, " with " + " ".join(args.overrides)
                if args.overrides else "")
    result = train_net(cfg, args.cfg, cpu=args.cpu, resume=args.resume)
    if not args.no_test and result.rank == 0:
        test_net(cfg, args.cfg, epoch=cfg.TRAIN.end_epoch, cpu=args.cpu)
    return 0
