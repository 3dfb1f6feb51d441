"""A tiny training run for tests/test_dist_sync.py: one process of a dist_sync run, or the
single-process run it must equal. Not a test module; run as a script.

    python dist_sync_worker.py OUT_DIR dist     # a dist_sync worker (DMLC_* set by the launcher)
    python dist_sync_worker.py OUT_DIR single   # one process, two CPU contexts, same samples

Under dist_sync with 2 workers worker r trains on samples r, r + 2, ... (ShardedSamples) with
one sample per update, so update t averages samples 2t and 2t + 1; the single-process run
with two contexts and SHUFFLE off feeds context k sample 2t + k: the same two samples per
update. Each process writes its final parameters to OUT_DIR/params_<mode>_<rank>.npz.
"""
import logging
import sys

import accel  # noqa: F401  (before mxnet: thread defaults)
import mxnet as mx
import numpy as np

from accel.config import get_defaults
from accel.core import trainer
from accel.symbols.layers import segmentation_loss

NUM_SAMPLES, NUM_CLASSES, SIZE = 8, 3, 8


class Samples:
    """Fixed random images and labels (some pixels 255), no augmentation."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.data = rng.normal(size=(NUM_SAMPLES, 1, 3, SIZE, SIZE)).astype(np.float32)
        label = rng.integers(0, NUM_CLASSES, size=(NUM_SAMPLES, 1, 1, SIZE, SIZE))
        label[rng.random(label.shape) < 0.1] = 255
        self.label = label.astype(np.float32)

    def __len__(self):
        return NUM_SAMPLES

    def sample(self, index, rng):
        return {"data": self.data[index], "label": self.label[index]}


def symbol():
    data = mx.sym.Variable("data")
    x = mx.sym.Convolution(data, num_filter=6, kernel=(3, 3), pad=(1, 1), name="conv1")
    x = mx.sym.BatchNorm(x, fix_gamma=False, use_global_stats=True, name="bn1")
    x = mx.sym.Activation(x, act_type="relu")
    score = mx.sym.Convolution(x, num_filter=NUM_CLASSES, kernel=(1, 1), name="score",
                               bias=mx.sym.Variable("score_bias", lr_mult=2.0))
    return segmentation_loss(score, mx.sym.Variable("label"))


def init_params(sym):
    def init(input_shapes, batch):
        rng = np.random.default_rng(1)
        arg_shapes, _, aux_shapes = sym.infer_shape(**input_shapes)
        args = {n: mx.nd.array(rng.normal(scale=0.3, size=s))
                for n, s in zip(sym.list_arguments(), arg_shapes) if n not in input_shapes}
        aux = {n: mx.nd.array(np.zeros(s) if "mean" in n else np.ones(s))
               for n, s in zip(sym.list_auxiliary_states(), aux_shapes)}
        return args, aux
    return init


def main(out_dir, mode):
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    cfg = get_defaults()
    cfg.default.kvstore = "dist_sync" if mode == "dist" else "device"
    cfg.default.frequent = 100
    t = cfg.TRAIN
    t.BATCH_IMAGES, t.SHUFFLE, t.begin_epoch, t.end_epoch = 1, False, 0, 2
    t.lr, t.lr_step, t.warmup, t.momentum, t.wd = 0.1, "", False, 0.9, 0.0005
    cfg.network.FIXED_PARAMS = []
    ctxs = [mx.cpu()] if mode == "dist" else [mx.cpu(0), mx.cpu(1)]
    executors = []
    bind = mx.sym.Symbol.bind

    def keep(self, *args, **kwargs):  # the trainer's executors hold the final parameters
        exe = bind(self, *args, **kwargs)
        executors.append(exe)
        return exe

    mx.sym.Symbol.bind = keep
    sym = symbol()
    result = trainer.fit(cfg, sym, Samples(), f"{out_dir}/tiny_{mode}", init_params(sym), ctxs)
    exe = executors[-len(ctxs)]
    params = {n: v.asnumpy() for n, v in exe.arg_dict.items() if n not in ("data", "label")}
    np.savez(f"{out_dir}/params_{mode}_{result.rank}.npz", num_batches=len(result.losses),
             **params)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
