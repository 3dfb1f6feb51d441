"""Evaluate a frame-by-frame DeepLab checkpoint on the test split.

    python deeplab/test.py --cfg <yaml> [--epoch N] [--cpu] [--runtime torch] [KEY=VALUE ...]

The checkpoint is the --cfg's training run's (epoch TEST.test_epoch unless --epoch); the
results JSON is written beside it (accel.config.run_results_path). Flags:
accel.cli.train.test_only. Neither MXNet (with --runtime torch) nor the training code is
imported.
"""
from typing import Dict, Optional, Sequence

from accel.cli import run
from accel.cli.runtime import device_runtime
from accel.config import checkpoint_prefix, run_results_path
from accel.core.inference import FrameSegmenter
from accel.core.tester import evaluate_checkpoint
from accel.dataset import dataset_from_config
from accel.utils.checkpoint import load_checkpoint, params_path


def test_net(cfg, cfg_path: str, epoch: Optional[int] = None, cpu: bool = False,
             runtime=None) -> Dict[str, object]:
    """mIoU of checkpoint `epoch` (default TEST.test_epoch) on every labelled test frame;
    runtime: an accel.runtime.Runtime (default: MXNet on the config's device)."""
    epoch = cfg.TEST.test_epoch if epoch is None else epoch
    prefix = checkpoint_prefix(cfg, cfg_path)
    arg_params, aux_params = load_checkpoint(prefix, epoch, numpy=True)
    # The run's own checkpoint: every name must be the network's (issue #13.6), which the
    # segmenter checks (allow_extra=False).
    segmenter = FrameSegmenter(cfg.dataset.NUM_CLASSES, arg_params, aux_params,
                               source=params_path(prefix, epoch), symbol=cfg.symbol,
                               runtime=runtime or device_runtime("mxnet", cfg, cpu),
                               allow_extra=False)
    dataset = dataset_from_config(cfg, train=False, key_interval=1)
    return evaluate_checkpoint(dataset, dataset.test_snippets(1), segmenter, 1,
                               params_path(prefix, epoch),
                               run_results_path(cfg, cfg_path, epoch), symbol=cfg.symbol,
                               test_image_set=cfg.dataset.test_image_set)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Test the --cfg's checkpoint (flags: accel.cli.train.test_only); returns 0."""
    from accel.cli.train import test_only

    return test_only(argv, test_net, __doc__.splitlines()[0], interval=False)


if __name__ == "__main__":
    run(main)
