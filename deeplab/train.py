"""Frame-by-frame DeepLab training (stage 1): single labelled frames, ImageNet ResNet-101."""
import copy
import logging
from typing import Dict

import numpy as np

from accel.core.pretrained import DEEPLAB_CHAIN, load_pretrained
from accel.core.trainer import TrainResult, checkpoint_prefix, contexts, fit
from accel.dataset import dataset_from_config
from deeplab.symbol import deeplab_symbol

logger = logging.getLogger(__name__)


class FrameSamples:
    """Training samples of single labelled frames: {'data', 'label'} of a data set's items.

    The data sets' `sample()` builds Accel's multi-frame samples (K >= 2). Seen as K = 2 with
    the keyframe at distance 0, a sample reads the labelled frame alone (its one reference
    frame is itself), with the same crop and flip rules; only data and label are kept.
    """

    def __init__(self, dataset):
        self.dataset = dataset
        self._view = copy.copy(dataset)  # same items; shares nothing mutable with `dataset`
        self._view.key_interval, self._view.random_key_distance = 2, True

    def __len__(self) -> int:
        return len(self.dataset)

    def sample(self, index: int, rng: np.random.Generator) -> Dict[str, np.ndarray]:
        """Labelled frame `index` with its label, cropped/flipped by `rng`."""
        sample = self._view.sample(index, _ZeroDistance(rng))
        return {"data": sample["data"], "label": sample["label"], "name": sample["name"]}


class _ZeroDistance:
    """Passes draws on to `rng`, except the first integers() (the keyframe distance): 0."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.first = rng, True

    def integers(self, *args, **kwargs):
        if self.first:
            self.first = False
            return 0
        return self.rng.integers(*args, **kwargs)

    def random(self, *args, **kwargs):
        return self.rng.random(*args, **kwargs)


def train_net(cfg, cfg_path: str, cpu: bool = False, resume: bool = False, **fit_kwargs
              ) -> TrainResult:
    """Train DeepLab ResNet-v1-101 frame by frame; checkpoints at checkpoint_prefix()."""
    for key in ("pretrained_base", "pretrained_ec"):
        if cfg.network[key]:
            raise ValueError(f"network.{key} = {cfg.network[key]!r} is not used by the "
                             f"frame-by-frame DeepLab (it starts from network.pretrained); "
                             f"set it to ''")
    symbol = deeplab_symbol(cfg.symbol, cfg.dataset.NUM_CLASSES, is_train=True)
    dataset = FrameSamples(dataset_from_config(cfg, train=True, key_interval=1))
    return fit(cfg, symbol, dataset, checkpoint_prefix(cfg, cfg_path),
               lambda shapes, batch: load_pretrained(cfg, symbol, shapes, DEEPLAB_CHAIN, batch),
               contexts(cfg, cpu), resume=resume or cfg.TRAIN.RESUME, **fit_kwargs)
