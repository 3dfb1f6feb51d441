"""Evaluate a frame-by-frame DeepLab checkpoint on the test split.

    python deeplab/test.py --cfg <yaml> [--epoch N] [--cpu] [KEY=VALUE ...]

The checkpoint is the --cfg's training run's (epoch TEST.test_epoch unless --epoch); the
results JSON is written beside it (results_path). Flags: accel.cli.train.test_only.
"""
if __name__ == "__main__":  # MXNET_VERSION (--mxnet-version): before mxnet loads
    from accel.cli import bootstrap_script
    bootstrap_script()

import logging
from typing import Dict, Optional, Sequence

from accel.core.inference import FrameSegmenter
from accel.core.tester import evaluate_snippets
from accel.core.trainer import checkpoint_prefix, contexts
from accel.dataset import dataset_from_config
from accel.utils import paths
from accel.runtime import make_runtime
from accel.utils.checkpoint import load_checkpoint, params_path
from accel.utils.io import write_json

logger = logging.getLogger(__name__)


def results_path(cfg, cfg_path: str, epoch: int) -> str:
    """<checkpoint prefix>-%04d_<test split>.json beside the checkpoint."""
    return paths.results_path(checkpoint_prefix(cfg, cfg_path), epoch,
                              cfg.dataset.test_image_set)


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
                               runtime=runtime or make_runtime("mxnet",
                                                               ctx=contexts(cfg, cpu)[0]),
                               allow_extra=False)
    dataset = dataset_from_config(cfg, train=False, key_interval=1)
    results = evaluate_snippets(dataset, dataset.test_snippets(1), segmenter.step,
                                segmenter.reset, desc="test", interval=1)
    results.update(checkpoint=params_path(prefix, epoch), symbol=cfg.symbol,
                   test_image_set=cfg.dataset.test_image_set,
                   runtime=segmenter.runtime.name, device=segmenter.runtime.device)
    path = write_json(results_path(cfg, cfg_path, epoch), results)
    logger.info("%s on %s: mIoU %.4f, pixel acc %.4f (%s)", cfg.symbol,
                cfg.dataset.test_image_set, results["mIoU"], results["pixel_acc"], path)
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Test the --cfg's checkpoint (flags: accel.cli.train.test_only); returns 0."""
    from accel.cli.train import test_only

    return test_only(argv, test_net, __doc__.splitlines()[0], interval=False)


if __name__ == "__main__":
    from accel.cli import run

    run(main)
