"""Accel (or DFF) end-to-end training: the labelled frame, its K-1 reference frames and
the pretrained chain flow / base / ec, as the original `train_end2end`."""
import logging

from accel.core.pretrained import accel_chain, load_pretrained
from accel.core.trainer import TrainResult, checkpoint_prefix, contexts, fit
from accel.dataset import dataset_from_config
from dff_deeplab.symbol import network_from_config

logger = logging.getLogger(__name__)

def train_net(cfg, cfg_path: str, cpu: bool = False, resume: bool = False, **fit_kwargs
              ) -> TrainResult:
    """Train the configured Accel version end to end; checkpoints at checkpoint_prefix()."""
    if cfg.TRAIN.BATCH_IMAGES != 1:
        raise ValueError(f"TRAIN.BATCH_IMAGES = {cfg.TRAIN.BATCH_IMAGES}: Accel end-to-end "
                         f"training takes one labelled frame (plus its K-1 reference frames) "
                         f"per device; use more devices for a bigger batch")
    network = network_from_config(cfg)
    symbol = network.train(cfg.TRAIN.KEY_INTERVAL)
    dataset = dataset_from_config(cfg, train=True)
    chain = accel_chain(network.version)
    return fit(cfg, symbol, dataset, checkpoint_prefix(cfg, cfg_path),
               lambda shapes, batch: load_pretrained(cfg, symbol, shapes, chain, batch),
               contexts(cfg, cpu), resume=resume or cfg.TRAIN.RESUME, **fit_kwargs)
