"""The building blocks of the Accel graphs timed alone in MXNet, reference and fast where
they differ (the benchmark's second table, experiments/benchmark.py).

Blocks compared with each other are bound side by side and run in turns so that machine
noise hits all alike; each time is the median of `repeat` runs after one warm-up run
(MKL-DNN primitive creation), from accel.core.timing.summarize. Inputs are random and
parameters initial values (accel.core.initializer): timing does not depend on them.
"""
import time
from typing import Callable, Dict, Mapping, Sequence, Tuple

import mxnet as mx
import numpy as np

from accel.core.initializer import initialize_missing
from accel.core.timing import summarize
from accel.runtime.upsample import (SeparableUpsampler, bilinear_kernel,
                                    separable_upsampling_filter)
from accel.symbols.flownet import flownet_s, warp
from accel.symbols.layers import segmentation_scores
from deeplab.symbol import deeplab_resnet_v1_101
from dff_deeplab.fast_symbol import FastAccelNetwork
from dff_deeplab.symbol import AccelNetwork, reference_features

__all__ = ["time_parts"]

Shape = Tuple[int, ...]


def _bound(sym: mx.sym.Symbol, inputs: Mapping[str, Shape], seed: int = 0) -> Callable:
    """A forward closure of `sym` bound with random inputs and initial parameters."""
    args, aux = initialize_missing(sym, dict(inputs), {}, {}, seed)
    rng = np.random.default_rng(seed)
    for name, shape in inputs.items():
        args[name] = mx.nd.array(rng.standard_normal(shape).astype(np.float32))
    exe = sym.bind(mx.cpu(), args, aux_states=aux, grad_req="null")

    def run() -> None:
        exe.forward(is_train=False)
        mx.nd.waitall()
    return run


def _in_turns(blocks: Mapping[str, Callable], repeat: int) -> Dict[str, float]:
    """Median time (ms) of each named closure, run in turns after one warm-up run."""
    for run in blocks.values():
        run()
    times: Dict[str, list] = {name: [] for name in blocks}
    for _ in range(repeat):
        for name, run in blocks.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return {name: 1000.0 * summarize(t)["p50"] for name, t in times.items()}


def _upsampling(size: Sequence[int], feat_hw: Tuple[int, int], repeat: int) -> Dict[str, float]:
    """One branch's upsampling + argmax: MXNet's Deconvolution + Crop with a host argmax,
    against the separable upsampler fused with the argmax (accel.runtime.upsample)."""
    shape = (1, 3) + tuple(size)
    kernel = separable_upsampling_filter({"upsampling_weight": bilinear_kernel(1)})
    upsampler = SeparableUpsampler(kernel, tuple(size), feat_hw)
    low = np.random.default_rng(0).standard_normal((19,) + feat_hw).astype(np.float32)
    sym = mx.sym.Crop(mx.sym.Deconvolution(
        mx.sym.Variable("s"), mx.sym.Variable("upsampling_weight"), kernel=(32, 32),
        stride=(16, 16), num_filter=19, num_group=19, no_bias=True), mx.sym.Variable("data"),
        offset=(8, 8))
    args, _ = initialize_missing(sym, {"s": (1,) + low.shape, "data": shape}, {}, {}, 0)
    args.update(s=mx.nd.array(low[None]), data=mx.nd.zeros(shape))
    exe = sym.bind(mx.cpu(), args, grad_req="null")
    return _in_turns({
        "reference": lambda: exe.forward(is_train=False)[0].asnumpy().argmax(axis=1),
        "fast": lambda: upsampler.labels(low)}, repeat)


def time_parts(size: Sequence[int], repeat: int = 5) -> Dict[str, Dict[str, float]]:
    """{building block: {'reference': ms, 'fast': ms}} at frames of `size` (H, W)."""
    shape = (1, 3) + tuple(size)
    data, data_key = mx.sym.Variable("data"), mx.sym.Variable("data_key")
    feat_var, flow_var = mx.sym.Variable("feat"), mx.sym.Variable("flow")
    fh, fw = AccelNetwork("18").key_test().get_internals()["res5c_relu_output"].infer_shape(
        data=shape)[1][0][2:]
    feat_shape, state_shape, flow_shape = (1, 2048, fh, fw), (1, 1024, fh, fw), (1, 2, fh, fw)
    trunks = _in_turns({
        "reference": _bound(reference_features(data, "builtin"), {"data": shape}),
        "fast": _bound(reference_features(data, "fast"), {"data": shape}),
        "plain": _bound(deeplab_resnet_v1_101(19).get_internals()["res5c_relu_output"],
                        {"data": shape})}, repeat)
    parts = {"reference trunk (deformable res5)": {"reference": trunks["reference"],
                                                   "fast": trunks["fast"]},
             "plain-dilated trunk (twin)": {"reference": trunks["plain"]},
             "flow (FlowNetS)": _in_turns({"reference": _bound(
                 flownet_s(data, data_key), {"data": shape, "data_key": shape})}, repeat),
             "warp": _in_turns({
                 "reference": _bound(warp(feat_var, flow_var),
                                     {"feat": feat_shape, "flow": flow_shape}),
                 "fast": _bound(warp(feat_var, flow_var, op="fused"),
                                {"feat": state_shape, "flow": flow_shape})}, repeat)}
    for version in ("18", "34", "50"):
        parts["update branch %s (trunk)" % version] = _in_turns({
            path: _bound(builder(version).update_features(data), {"data": shape})
            for path, builder in (("reference", AccelNetwork), ("fast", FastAccelNetwork))},
            repeat)
    parts["head scores (fc6 + score)"] = _in_turns({
        "reference": _bound(segmentation_scores(feat_var, 19), {"feat": feat_shape}),
        "fast": _bound(FastAccelNetwork("18").state_scores(feat_var), {"feat": state_shape})},
        repeat)
    parts["upsampling + argmax (one branch)"] = _upsampling(size, (fh, fw), repeat)
    s1, s2 = mx.sym.Variable("s1"), mx.sym.Variable("s2")
    fusion = AccelNetwork("18").correction([s1, s2], 19)
    full, low = (1, 19) + tuple(size), (1, 19, fh, fw)
    parts["fusion (correction)"] = _in_turns({
        "reference": _bound(fusion, {"s1": full, "s2": full}),
        "fast": _bound(fusion, {"s1": low, "s2": low})}, repeat)
    return parts
