"""Accel (or DFF) end-to-end training: the labelled frame, its K-1 reference frames and
the pretrained chain flow / base / ec, as the original `train_end2end`.

    python dff_deeplab/train_end2end.py --cfg <yaml> [--cpu] [--resume] [--overwrite] [KEY=VALUE ...]

trains only (experiments/dff_deeplab/dff_deeplab_end2end_train_test.py also tests); flags:
accel.cli.train. The training code is imported inside train_net, after accel.cli.run has
chosen MXNet.
"""
from accel.cli import run


def train_net(cfg, cfg_path: str, cpu: bool = False, resume: bool = False, **fit_kwargs):
    """Train the configured Accel version end to end; checkpoints at accel.config.checkpoint_prefix.
    Returns accel.core.trainer.TrainResult; fit_kwargs go to accel.core.trainer.fit."""
    from accel.core.pretrained import accel_chain, pretrained_init
    from accel.core.trainer import train_config
    from accel.dataset import dataset_from_config
    from accel.dataset.flow_pairs import SyntheticHops
    from dff_deeplab.symbol import network_from_config

    if cfg.TRAIN.BATCH_IMAGES != 1:
        raise ValueError(f"TRAIN.BATCH_IMAGES = {cfg.TRAIN.BATCH_IMAGES}: Accel end-to-end "
                         f"training takes one labelled frame (plus its K-1 reference frames) "
                         f"per device; use more devices for a bigger batch")
    network = network_from_config(cfg)
    symbol = network.train(cfg.TRAIN.KEY_INTERVAL)
    if cfg.TRAIN.SYNTHETIC_HOP:
        dataset = SyntheticHops(dataset_from_config(cfg, train=True, key_interval=2),
                                cfg.TRAIN.KEY_INTERVAL, cfg.TRAIN.SYNTHETIC_HOP)
    else:
        dataset = dataset_from_config(cfg, train=True)
    init = pretrained_init(cfg, symbol, accel_chain(network.version))
    return train_config(cfg, cfg_path, symbol, dataset, init, cpu, resume, **fit_kwargs)


def main(argv):
    """Train only (flags: accel.cli.train)."""
    from accel.cli.train import Runner, train_test

    return train_test(argv, Runner(train_net, None, __doc__.splitlines()[0]))


if __name__ == "__main__":
    run(main)
