"""Our own implementation of the deterministic-weights rule of the reference fixtures.

Each parameter is drawn from a generator seeded by the CRC-32 of its name, so weights depend
only on official names and shapes (the rule is stated in shared/reference/oracle_params.py's
docstring; this is an independent implementation of it).
"""
import math
import zlib

import numpy as np

FLOW_PREDICTOR = "Convolution5_weight"  # scaled x10 so that fixtures move features visibly


def oracle_value(name: str, shape) -> np.ndarray:
    """The fixture weight of parameter `name` with `shape` (float32)."""
    shape = tuple(int(s) for s in shape)
    rng = np.random.default_rng(zlib.crc32(name.encode("utf-8")))
    if name.endswith("_weight"):
        fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
        value = rng.standard_normal(shape) / math.sqrt(fan_in)
        if name == FLOW_PREDICTOR:
            value *= 10.0
    elif name.endswith(("_bias", "_beta")):
        value = 0.01 * rng.standard_normal(shape)
    elif name.endswith("_gamma"):
        value = 0.3 + 0.05 * rng.standard_normal(shape)
    elif name.endswith("_moving_mean"):
        value = 0.1 * rng.standard_normal(shape)
    elif name.endswith("_moving_var"):
        value = rng.uniform(0.5, 1.5, shape)
    else:
        raise KeyError("no fixture rule for parameter %r" % name)
    return value.astype(np.float32)
