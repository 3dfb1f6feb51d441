"""Training FlowNet on unlabelled video by distilling OpenCV's DIS optical flow.

The original starts from FlowNet weights trained on FlyingChairs (inside DFF's model);
where those cannot be had, or for a user's own footage, FlowNetS is trained here to predict
DIS flow on the stride-16 grid (`accel.dataset.flow_pairs`), with the same training loop
(checkpoints, resume, lr schedule) as the segmentation runners. Its checkpoint is then
`network.pretrained` (part `flow`) of an Accel config.
"""
import logging
from typing import Dict, Optional

import mxnet as mx
import numpy as np

from accel.config import checkpoint_prefix, parse_gpus, run_results_path
from accel.core.initializer import initialize_missing
from accel.core.trainer import TrainResult, train_config
from accel.dataset import dataset_from_config
from accel.dataset.flow_pairs import FlowPairs, endpoint_error
from accel.symbols.flownet import flownet_s, flownet_training
from accel.utils.checkpoint import load_checkpoint, load_param_file, params_path
from accel.utils.device import training_contexts
from accel.utils.io import write_json

logger = logging.getLogger(__name__)


class EPEMeter:
    """Running mean end-point error (feature pixels) since the last log line."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.total, self.batches = 0.0, 0

    def add(self, exe) -> float:
        """Output 0 = the loss (mean EPE of the batch)."""
        epe = float(exe.outputs[0].asnumpy().mean())
        self.total += epe
        self.batches += 1
        return epe

    def line(self) -> str:
        return "EPE=%.4f feature px" % (self.total / max(self.batches, 1))


def flow_pairs_from_config(cfg, train: bool) -> FlowPairs:
    """Frame pairs (gaps 1..KEY_INTERVAL-1) of the configured data set's train/test split;
    training pairs are synthetic small hops when TRAIN.SYNTHETIC_HOP > 0, test pairs real."""
    video = dataset_from_config(cfg, train=False, key_interval=1, strict_gaps=train,
                                image_set=cfg.dataset.image_set if train
                                else cfg.dataset.test_image_set)
    return FlowPairs(video, (cfg.TRAIN.CROP_HEIGHT, cfg.TRAIN.CROP_WIDTH),
                     max_gap=max(cfg.TRAIN.KEY_INTERVAL - 1, 1),
                     flip=bool(cfg.TRAIN.FLIP) and train, seed=cfg.TRAIN.seed,
                     hop=float(cfg.TRAIN.SYNTHETIC_HOP) if train else 0.0)


def train_flownet(cfg, cfg_path: str, cpu: bool = False, resume: bool = False,
                  **fit_kwargs) -> TrainResult:
    """Train FlowNetS on DIS targets; starts from network.pretrained when set (a DFF model or
    an earlier run), else from scratch."""
    symbol = flownet_training()

    def init(shapes, batch):
        args, aux = {}, {}
        if cfg.network.pretrained:
            path = params_path(cfg.network.pretrained, cfg.network.pretrained_epoch)
            file_args, _ = load_param_file(path)
            names = set(symbol.list_arguments())
            args = {k: v for k, v in file_args.items() if k in names}
            logger.info("FlowNet starts from %s (%d arrays)", path, len(args))
            unused = sorted(set(file_args) - names)
            if unused:  # expected: a DFF or Accel file holds much more than FlowNet
                logger.warning("%s: %d array(s) that FlowNet does not use (ignored): %s", path,
                               len(unused), ", ".join(unused))
        return initialize_missing(symbol, dict(shapes), args, aux, cfg.TRAIN.seed)

    return train_config(cfg, cfg_path, symbol, flow_pairs_from_config(cfg, train=True), init,
                        cpu, resume, meter=EPEMeter(), **fit_kwargs)


def evaluate_flownet(cfg, cfg_path: str, epoch: Optional[int] = None, cpu: bool = False
                     ) -> Dict[str, float]:
    """Mean EPE against DIS on the test split's consecutive pairs (and of zero flow, for
    scale); writes <prefix>-%04d_<test set>_flow.json."""
    epoch = cfg.TEST.test_epoch if epoch is None else epoch
    prefix = checkpoint_prefix(cfg, cfg_path)
    args, _ = load_checkpoint(prefix, epoch)
    pairs = flow_pairs_from_config(cfg, train=False)
    sym = flownet_s(mx.sym.Variable("data"), mx.sym.Variable("data_key"))
    ctx = training_contexts(parse_gpus(cfg.gpus), cpu)[0]
    exe, epe, zero = None, [], []
    for i in range(len(pairs)):
        s = pairs[i]
        if exe is None:
            exe = sym.simple_bind(ctx, grad_req="null", data=s["data"].shape,
                                  data_key=s["data_key"].shape)
            exe.copy_params_from({k: v for k, v in args.items() if k in exe.arg_dict},
                                 allow_extra_params=True)
        exe.arg_dict["data"][:] = s["data"]
        exe.arg_dict["data_key"][:] = s["data_key"]
        pred = exe.forward(is_train=False)[0].asnumpy()
        epe.append(endpoint_error(pred, s["flow_label"]))
        zero.append(endpoint_error(np.zeros_like(pred), s["flow_label"]))
    results = {"epe": float(np.mean(epe)), "epe_zero_flow": float(np.mean(zero)),
               "pairs": len(pairs), "checkpoint": params_path(prefix, epoch),
               "units": "feature pixels (1/16 of the input)"}
    path = write_json(run_results_path(cfg, cfg_path, epoch, kind="flow"), results)
    logger.info("FlowNet EPE on %s: %.3f (zero flow %.3f) over %d pairs (%s)",
                cfg.dataset.test_image_set, results["epe"], results["epe_zero_flow"],
                len(pairs), path)
    return results
