"""Frame-by-frame DeepLab training (stage 1): single labelled frames; ResNet-v1-101 from
ImageNet weights, or the update branches (DeepLab-18/34/50), by cfg.symbol.

    python deeplab/train.py --cfg <yaml> [--cpu] [--resume] [--overwrite] [KEY=VALUE ...]

trains only (experiments/deeplab/deeplab_train_test.py also tests); flags: accel.cli.train.
The training code is imported inside train_net, after accel.cli.run has chosen MXNet.
"""
from accel.cli import run


def train_net(cfg, cfg_path: str, cpu: bool = False, resume: bool = False, **fit_kwargs):
    """Train DeepLab ResNet-v1-101 frame by frame; checkpoints at accel.config.checkpoint_prefix.
    Returns accel.core.trainer.TrainResult; fit_kwargs go to accel.core.trainer.fit."""
    from accel.core.pretrained import DEEPLAB_CHAIN, pretrained_init
    from accel.core.trainer import train_config
    from accel.dataset import dataset_from_config
    from deeplab.symbol import deeplab_symbol

    for key in ("pretrained_base", "pretrained_ec"):
        if cfg.network[key]:
            raise ValueError(f"network.{key} = {cfg.network[key]!r} is not used by the "
                             f"frame-by-frame DeepLab (it starts from network.pretrained); "
                             f"set it to ''")
    symbol = deeplab_symbol(cfg.symbol, cfg.dataset.NUM_CLASSES, is_train=True)
    # key_interval 1: each sample is a labelled frame and its label alone.
    dataset = dataset_from_config(cfg, train=True, key_interval=1)
    return train_config(cfg, cfg_path, symbol, dataset,
                        pretrained_init(cfg, symbol, DEEPLAB_CHAIN), cpu, resume, **fit_kwargs)


def main(argv):
    """Train only (flags: accel.cli.train)."""
    from accel.cli.train import Runner, train_test

    return train_test(argv, Runner(train_net, None, __doc__.splitlines()[0]))


if __name__ == "__main__":
    run(main)
