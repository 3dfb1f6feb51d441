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


def oracle_network_params(network, frame_shape):
    """Fixture weights (as NDArrays) for every parameter of a network's key and non-key
    graphs at frames of `frame_shape` (N, 3, H, W)."""
    import mxnet as mx

    shapes = {"data": frame_shape, "data_key": frame_shape}
    feat_shape = network.key_test().get_internals()["res5c_relu_output"].infer_shape(
        data=frame_shape)[1][0]
    shapes["feat_key"] = feat_shape
    args, aux = {}, {}
    for sym in (network.key_test(), network.cur_test()):
        inputs = {k: v for k, v in shapes.items() if k in sym.list_arguments()}
        arg_shapes, _, aux_shapes = sym.infer_shape(**inputs)
        for name, shape in zip(sym.list_arguments(), arg_shapes):
            if name not in shapes:
                args[name] = mx.nd.array(oracle_value(name, shape))
        for name, shape in zip(sym.list_auxiliary_states(), aux_shapes):
            aux[name] = mx.nd.array(oracle_value(name, shape))
    return args, aux
