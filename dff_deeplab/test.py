"""Evaluate an Accel/DFF checkpoint on the test split with the streaming segmenter."""
import logging
from typing import Dict, Optional

from accel.core.inference import VideoSegmenter
from accel.core.tester import evaluate_snippets
from accel.core.trainer import checkpoint_prefix, contexts
from accel.dataset import dataset_from_config
from accel.utils import paths
from accel.utils.checkpoint import check_names, load_checkpoint, params_path
from accel.utils.io import write_json
from dff_deeplab.symbol import network_from_config

logger = logging.getLogger(__name__)


def results_path(cfg, cfg_path: str, epoch: int, interval: int) -> str:
    """<checkpoint prefix>-%04d_<test split>_interval<K>.json beside the checkpoint."""
    return paths.results_path(checkpoint_prefix(cfg, cfg_path), epoch,
                              cfg.dataset.test_image_set, interval)


def test_net(cfg, cfg_path: str, epoch: Optional[int] = None, interval: Optional[int] = None,
             cpu: bool = False, avg: bool = False, runtime=None) -> Dict[str, object]:
    """mIoU of checkpoint `epoch` (default TEST.test_epoch) at keyframe `interval` (default
    TEST.KEY_INTERVAL), worst-case offset (or all offsets with `avg`); writes the JSON.
    runtime: an accel.runtime.Runtime (default: MXNet on the config's device)."""
    epoch = cfg.TEST.test_epoch if epoch is None else epoch
    interval = interval or cfg.TEST.KEY_INTERVAL
    prefix = checkpoint_prefix(cfg, cfg_path)
    arg_params, aux_params = load_checkpoint(prefix, epoch)
    network = network_from_config(cfg)
    # The run's own checkpoint: every name must be the network's (issue #13.6).
    check_names(network.train(cfg.TRAIN.KEY_INTERVAL), arg_params, aux_params,
                ("data", "data_ref", "eq_flag", "label"), params_path(prefix, epoch))
    segmenter = VideoSegmenter(network, arg_params, aux_params, interval,
                               ctx=None if runtime else contexts(cfg, cpu)[0],
                               runtime=runtime, source=params_path(prefix, epoch))
    dataset = dataset_from_config(cfg, train=False, key_interval=interval)
    snippets = dataset.test_snippets(interval, avg=avg)
    results = evaluate_snippets(dataset, snippets, segmenter.step, segmenter.reset,
                                desc="test", interval=interval)
    results.update(checkpoint=params_path(prefix, epoch), symbol=cfg.symbol,
                   test_image_set=cfg.dataset.test_image_set, avg=avg,
                   runtime=segmenter.runtime.name, device=segmenter.runtime.device)
    path = write_json(results_path(cfg, cfg_path, epoch, interval), results)
    logger.info("%s interval %d on %s: mIoU %.4f, pixel acc %.4f (%s)", cfg.symbol, interval,
                cfg.dataset.test_image_set, results["mIoU"], results["pixel_acc"], path)
    return results
