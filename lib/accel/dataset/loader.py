"""Prefetching, resumable training loader.

The sample order is a function of (seed, epoch) and each sample's crop/flip randomness a
function of (seed, epoch, position), so a saved `state_dict()` (seed, epoch, position)
restores exactly the batches that would have come next. Batches are built by worker
threads (OpenCV decoding and resizing release the GIL) a bounded number of steps ahead.
"""
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterator, List

import numpy as np

logger = logging.getLogger(__name__)


class ResumableSampler:
    """Deterministic sample order with a saveable position (seed, epoch, index)."""

    def __init__(self, num_samples: int, shuffle: bool = True, seed: int = 0):
        if num_samples <= 0:
            raise ValueError(f"sampler needs at least one sample, got {num_samples}")
        self.num_samples, self.shuffle, self.seed = int(num_samples), bool(shuffle), int(seed)
        self.epoch, self.index = 0, 0

    def order(self, epoch: int) -> np.ndarray:
        """Sample indices of one epoch."""
        if not self.shuffle:
            return np.arange(self.num_samples)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)

    def rng(self, epoch: int, position: int) -> np.random.Generator:
        """Randomness of the sample at `position` of `epoch` (crop, flip, key distance)."""
        return np.random.default_rng([self.seed, epoch, position, 1])

    def state_dict(self) -> Dict[str, int]:
        """Position to save with a checkpoint."""
        return {"seed": self.seed, "epoch": self.epoch, "index": self.index,
                "num_samples": self.num_samples, "shuffle": int(self.shuffle)}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        """Restore a saved position; the data set and shuffling must be the same."""
        for key, mine in (("num_samples", self.num_samples), ("shuffle", int(self.shuffle))):
            if int(state[key]) != mine:
                raise ValueError(f"sampler state {key}={state[key]} does not match this data "
                                 f"({key}={mine}); resuming would feed different samples")
        self.seed, self.epoch, self.index = int(state["seed"]), int(state["epoch"]), \
            int(state["index"])
        if not 0 <= self.index <= self.num_samples:
            raise ValueError(f"sampler state index {self.index} outside 0..{self.num_samples}")


class PrefetchLoader:
    """Iterate one epoch of batches (lists of `batch_size` training samples, one per device).

    Each sample is the dict made by the data set's `sample()`. Iterating again continues
    with the next epoch; `state_dict()` after a batch counts that batch as consumed.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = True, seed: int = 0,
                 prefetch: int = 4, num_workers: int = 2):
        if batch_size < 1 or batch_size > len(dataset):
            raise ValueError(f"batch_size must be in 1..{len(dataset)} (data set size), "
                             f"got {batch_size}")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.prefetch, self.num_workers = max(1, int(prefetch)), max(1, int(num_workers))
        self.sampler = ResumableSampler(len(dataset), shuffle, seed)

    def __len__(self) -> int:
        """Batches per epoch (the last incomplete batch is dropped)."""
        return len(self.dataset) // self.batch_size

    def state_dict(self) -> Dict[str, int]:
        """Sampler position to store in a checkpoint."""
        return self.sampler.state_dict()

    def load_state_dict(self, state: Dict[str, int]) -> None:
        """Resume from a stored position (takes effect on the next iteration)."""
        self.sampler.load_state_dict(state)

    def _batch(self, order: np.ndarray, epoch: int, start: int) -> List[Dict[str, np.ndarray]]:
        return [self.dataset.sample(int(order[p]), self.sampler.rng(epoch, p))
                for p in range(start, start + self.batch_size)]

    def __iter__(self) -> Iterator[List[Dict[str, np.ndarray]]]:
        s = self.sampler
        if s.index + self.batch_size > s.num_samples:  # saved at the very end of an epoch
            s.epoch, s.index = s.epoch + 1, 0
        epoch, order = s.epoch, s.order(s.epoch)
        starts = iter(range(s.index, len(self) * self.batch_size, self.batch_size))
        pending: deque = deque()
        with ThreadPoolExecutor(self.num_workers, thread_name_prefix="accel-loader") as pool:
            try:
                for start in starts:
                    pending.append((start, pool.submit(self._batch, order, epoch, start)))
                    if len(pending) > self.prefetch:
                        yield self._consume(pending)
                while pending:
                    yield self._consume(pending)
            finally:
                for _, fut in pending:
                    fut.cancel()
        s.epoch, s.index = epoch + 1, 0

    def _consume(self, pending: deque) -> List[Dict[str, np.ndarray]]:
        start, fut = pending.popleft()
        batch = fut.result()
        self.sampler.index = start + self.batch_size
        return batch
