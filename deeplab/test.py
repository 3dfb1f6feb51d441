"""Evaluate a frame-by-frame DeepLab checkpoint on the test split."""
import logging
import time
from typing import Dict, Optional

import mxnet as mx
import numpy as np

from accel.core.inference import BoundGraph, FrameResult, param_shapes
from accel.core.tester import evaluate_snippets
from accel.core.trainer import checkpoint_prefix, contexts
from accel.dataset import dataset_from_config
from accel.utils import paths
from accel.utils.checkpoint import check_names, check_params, load_checkpoint, params_path
from accel.utils.io import write_json as write_results
from deeplab.symbol import deeplab_symbol

logger = logging.getLogger(__name__)


class FrameSegmenter:
    """A DeepLab network on single frames (every frame a keyframe): `croped_score` bound once
    per frame shape; the segmenter interface of accel.core.tester (interval, reset, step).
    symbol: a deeplab.symbol.TRUNKS name (cfg.symbol)."""

    interval = 1

    def __init__(self, num_classes: int, arg_params, aux_params, ctx: mx.Context,
                 source: str = "", symbol: str = "deeplab_resnet_v1_101"):
        self.sym = deeplab_symbol(symbol, num_classes).get_internals()["croped_score_output"]
        self.args = {k: v.as_in_context(ctx) for k, v in arg_params.items()}
        self.aux = {k: v.as_in_context(ctx) for k, v in aux_params.items()}
        self.ctx, self.source = ctx, source
        self._graph: Optional[BoundGraph] = None

    def reset(self) -> None:
        """No state between frames."""

    def step(self, data: np.ndarray) -> FrameResult:
        """(1, 3, H, W) preprocessed frame -> its (H, W) uint8 class map and timing."""
        if self._graph is None or self._graph.exe.arg_dict["data"].shape != data.shape:
            shapes = {"data": tuple(data.shape)}
            check_params(param_shapes(self.sym, shapes), self.args, self.aux, allow_extra=True,
                         source=self.source)
            self._graph = BoundGraph(self.sym, shapes, self.args, self.aux, self.ctx)
        t0 = time.perf_counter()
        scores = self._graph.forward(data=data)["croped_score_output"]
        pred = mx.nd.argmax(scores, axis=1).asnumpy()[0].astype(np.uint8)
        return FrameResult(pred, True, time.perf_counter() - t0)


def results_path(cfg, cfg_path: str, epoch: int) -> str:
    """<checkpoint prefix>-%04d_<test split>.json beside the checkpoint."""
    return paths.results_path(checkpoint_prefix(cfg, cfg_path), epoch,
                              cfg.dataset.test_image_set)


def test_net(cfg, cfg_path: str, epoch: Optional[int] = None, cpu: bool = False
             ) -> Dict[str, object]:
    """mIoU of checkpoint `epoch` (default TEST.test_epoch) on every labelled test frame."""
    epoch = cfg.TEST.test_epoch if epoch is None else epoch
    prefix = checkpoint_prefix(cfg, cfg_path)
    arg_params, aux_params = load_checkpoint(prefix, epoch)
    # The run's own checkpoint: every name must be the network's (issue #13.6).
    check_names(deeplab_symbol(cfg.symbol, cfg.dataset.NUM_CLASSES, is_train=True),
                arg_params, aux_params, ("data", "label"), params_path(prefix, epoch))
    segmenter = FrameSegmenter(cfg.dataset.NUM_CLASSES, arg_params, aux_params,
                               contexts(cfg, cpu)[0], params_path(prefix, epoch), cfg.symbol)
    dataset = dataset_from_config(cfg, train=False, key_interval=1)
    results = evaluate_snippets(dataset, dataset.test_snippets(1), segmenter.step,
                                segmenter.reset, desc="test", interval=1)
    results.update(checkpoint=params_path(prefix, epoch), symbol=cfg.symbol,
                   test_image_set=cfg.dataset.test_image_set)
    path = write_results(results_path(cfg, cfg_path, epoch), results)
    logger.info("%s on %s: mIoU %.4f, pixel acc %.4f (%s)", cfg.symbol,
                cfg.dataset.test_image_set, results["mIoU"], results["pixel_acc"], path)
    return results
