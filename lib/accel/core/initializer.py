"""Initial values for parameters that no pretrained file provides.

Rules by official name, deterministic per (seed, name), so that two runs with the same seed
start from identical weights whatever order the parameters come in:

* `correction` (Accel's fusion layer): score fusion N(0, 0.01) weight, zero bias, as the
  original; feature fusion (Accel-101) identity on the current frame's half of the 4096
  input channels and zeros on the warped half, so training starts from the update branch.
* `*upsampling_weight` of the DeepLab heads: the fixed bilinear x16 kernel.
* deformable-offset convs: zero (the deformable conv starts as a plain dilated conv).
* other conv/deconv weights: He-normal; biases and BN betas 0; gammas 1; moving mean 0,
  moving var 1.
"""
import logging
import math
import zlib
from typing import Dict, Mapping, Tuple

import mxnet as mx
import numpy as np

from accel.runtime.upsample import bilinear_kernel

logger = logging.getLogger(__name__)

Params = Dict[str, mx.nd.NDArray]


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])


def initial_value(name: str, shape, seed: int = 0) -> np.ndarray:
    """The starting value of parameter `name` with `shape` (float32)."""
    shape = tuple(int(s) for s in shape)
    rng = _rng(seed, name)
    if name == "corr_weight":
        if shape[0] * 2 == shape[1] and shape[0] > 64:  # feature fusion (2048 <- 4096)
            value = np.zeros(shape, np.float32)
            value[np.arange(shape[0]), shape[0] + np.arange(shape[0]), 0, 0] = 1.0
            return value
        return (rng.standard_normal(shape) * 0.01).astype(np.float32)
    if name.endswith("upsampling_weight") and not name.endswith("feat_upsampling_weight"):
        return bilinear_kernel(shape[0], shape[-1])
    if "_offset_" in name:
        return np.zeros(shape, np.float32)
    if name.endswith("_weight"):
        fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
        return (rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(np.float32)
    if name.endswith(("_bias", "_beta", "_moving_mean")):
        return np.zeros(shape, np.float32)
    if name.endswith(("_gamma", "_moving_var")):
        return np.ones(shape, np.float32)
    raise KeyError("no initialisation rule for parameter %r" % name)


def initialize_missing(sym: mx.sym.Symbol, input_shapes: Mapping[str, Tuple[int, ...]],
                       arg_params: Mapping[str, mx.nd.NDArray],
                       aux_params: Mapping[str, mx.nd.NDArray],
                       seed: int = 0) -> Tuple[Params, Params]:
    """Complete `arg_params`/`aux_params` with initial values for every parameter of `sym`
    they lack (inputs in `input_shapes` excluded); returns new dicts, logs what was filled."""
    arg_shapes, _, aux_shapes = sym.infer_shape(**input_shapes)
    args, aux = dict(arg_params), dict(aux_params)
    filled = []
    for name, shape in zip(sym.list_arguments(), arg_shapes):
        if name not in input_shapes and name not in args:
            args[name] = mx.nd.array(initial_value(name, shape, seed))
            filled.append(name)
    for name, shape in zip(sym.list_auxiliary_states(), aux_shapes):
        if name not in aux:
            aux[name] = mx.nd.array(initial_value(name, shape, seed))
            filled.append(name)
    if filled:
        logger.info("initialised %d parameters that no pretrained file provided (e.g. %s)",
                    len(filled), ", ".join(filled[:4]))
    return args, aux


def initialize_network(network, shape: Tuple[int, ...], seed: int = 0
                       ) -> Tuple[Dict[str, mx.nd.NDArray], Dict[str, mx.nd.NDArray]]:
    """Initial values of every parameter of an Accel network's keyframe and non-key graphs
    for frames of `shape` (1, 3, H, W): He-normal weights, bilinear upsampling kernels."""
    key = network.key_test()
    state = key.get_internals()[network.state_output].infer_shape(data=shape)[1][0]
    inputs = {"data": shape, "data_key": shape, "feat_key": tuple(state)}
    args: Dict[str, mx.nd.NDArray] = {}
    aux: Dict[str, mx.nd.NDArray] = {}
    for sym in (key, network.cur_test()):
        args, aux = initialize_missing(sym, {k: v for k, v in inputs.items()
                                             if k in sym.list_arguments()}, args, aux, seed)
    return args, aux
