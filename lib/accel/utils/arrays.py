"""Arrays of any runtime (MXNet NDArray, PyTorch tensor, NumPy) seen as NumPy on the host."""
from typing import Any

import numpy as np

__all__ = ["as_numpy"]


def as_numpy(value: Any) -> np.ndarray:
    """`value` as a NumPy array on the host (an MXNet NDArray, a torch tensor or an array)."""
    if hasattr(value, "asnumpy"):
        return value.asnumpy()
    if hasattr(value, "detach"):
        return value.detach().float().cpu().numpy()
    return np.asarray(value)
