"""What this CPU's convolutions reach per precision, and what a graph's convolutions cost
(experiments/benchmark_peak.py).

`conv_peaks` times one large 3x3 convolution (MKL-DNN subgraph fusion on, as the fast path
runs) in float32, bfloat16 (MXNet's AMP, only where the CPU has native BF16: else the row
says why) and INT8 (accel.runtime.quantize, calibrated on the input itself), the precisions
interleaved repeat by repeat so that machine noise hits all of them; each time is the
median (accel.core.timing.summarize). `conv_gflop` counts a graph's convolution and
transposed-convolution work (2 FLOP per multiply-add) from its inferred shapes: the
denominators of a "fraction of peak".
"""
import json
import time
from typing import Dict, Mapping, Sequence, Tuple

import mxnet as mx
import numpy as np

from accel.core.timing import summarize
from accel.utils.provenance import cpu_has_native_bf16

__all__ = ["PRECISIONS", "to_bf16", "conv_gflop", "conv_peaks", "peak_table"]

PRECISIONS = ("fp32", "bf16", "int8")
# Layers that multiply-add over a kernel window, by operator (the fast path's deformable
# convolution is our Custom operator).
CONV_OPS = ("Convolution", "Deconvolution", "_contrib_DeformableConvolution")
CUSTOM_CONV_TYPES = ("accel_deformable_conv",)




def conv_gflop(sym: mx.sym.Symbol, input_shapes: Mapping[str, Tuple[int, ...]]) -> float:
    """GFLOP (2 per multiply-add) of a graph's convolutions, transposed convolutions and
    deformable convolutions for the given input shapes (bias and offsets' sampling not
    counted)."""
    internals = sym.get_internals()
    _, out_shapes, _ = internals.infer_shape(**input_shapes)
    shapes = dict(zip(internals.list_outputs(), out_shapes))
    arg_shapes, _, _ = sym.infer_shape(**input_shapes)
    shapes.update(zip(sym.list_arguments(), arg_shapes))
    nodes = json.loads(sym.tojson())["nodes"]

    def shape_of(entry):
        node = nodes[entry[0]]
        if node["op"] == "null":
            return shapes[node["name"]]
        name = node["name"] + "_output"
        return shapes[name] if name in shapes else shapes["%s_output%d" % (node["name"], entry[1])]

    total = 0
    for node in nodes:
        op = node["op"]
        is_custom_conv = (op == "Custom"
                          and node.get("attrs", {}).get("op_type") in CUSTOM_CONV_TYPES)
        if op not in CONV_OPS and not is_custom_conv:
            continue
        # Inputs: data, (offset,) weight[, bias]; the weight is the first 4-D parameter after
        # the data (and offset) input.
        weight_index = 2 if (is_custom_conv or op == "_contrib_DeformableConvolution") else 1
        weight = shape_of(node["inputs"][weight_index])
        if op == "Deconvolution":   # weight (C_in, C_out / g, kh, kw) applied at each input pixel
            n, _, h, w = shape_of(node["inputs"][0])
        else:                       # weight (C_out, C_in / g, kh, kw) at each output pixel
            n, _, h, w = shapes[node["name"] + "_output"]
        total += 2 * n * h * w * int(np.prod(weight))
    return total / 1e9


def _conv_graph(channels: int) -> mx.sym.Symbol:
    data = mx.sym.Variable("data")
    conv = mx.sym.Convolution(data, num_filter=channels, kernel=(3, 3), pad=(1, 1),
                              name="peak_conv")
    return mx.sym.Activation(conv, act_type="relu", name="peak_relu")


def to_bf16(sym: mx.sym.Symbol, args: Mapping[str, mx.nd.NDArray]
            ) -> Tuple[mx.sym.Symbol, Dict[str, mx.nd.NDArray]]:
    """The graph in bfloat16 by MXNet's AMP (oneDNN accumulates in float32), its weights
    cast once and its outputs cast back to float32. Bind it only where the CPU has native
    BF16: MXNet 1.9.1's oneDNN has no bf16 kernels elsewhere ("could not create a primitive
    descriptor iterator" at the first convolution)."""
    from mxnet.contrib import amp

    bsym, bargs, _ = amp.convert_model(sym, dict(args), {}, target_dtype="bfloat16",
                                       cast_optional_params=True)
    outs = [mx.sym.amp_cast(bsym[i], dtype="float32") for i in range(len(bsym.list_outputs()))]
    return mx.sym.Group(outs), bargs


def _bound(precision: str, sym, args, data: np.ndarray):
    """(executor, why-not) for one precision; executor None where this CPU cannot run it."""
    if precision == "bf16":
        if not cpu_has_native_bf16():
            return None, ("this CPU has no avx512_bf16 or amx_bf16, without which MXNet "
                          "1.9.1 cannot run bf16")
        sym, args = to_bf16(sym, args)
    elif precision == "int8":
        from accel.runtime.quantize import int8_available, quantize_graph

        if not int8_available():
            return None, "this MXNet build has no MKL-DNN INT8 kernels"
        sym, args, _ = quantize_graph(sym, args, {}, [{"data": data}], keep_float=())
    elif precision != "fp32":
        raise ValueError("precision must be one of %s, got %r" % (PRECISIONS, precision))
    inputs = dict(args, data=mx.nd.array(data))
    return sym.bind(mx.cpu(), {k: inputs[k] for k in sym.list_arguments()},
                    grad_req="null"), None


def conv_peaks(precisions: Sequence[str] = PRECISIONS, channels: int = 256,
               size: Tuple[int, int] = (64, 128), repeats: int = 10, warmup: int = 2
               ) -> Dict[str, dict]:
    """GFLOPS of a `channels` -> `channels` 3x3 convolution (+ ReLU) on (1, channels, *size)
    per precision, interleaved: {precision: {"median", "best", "ms", "gflop"} or
    {"unsupported": reason}}."""
    rng = np.random.default_rng(0)
    data = rng.standard_normal((1, channels) + tuple(size)).astype(np.float32)
    sym = _conv_graph(channels)
    args = {"peak_conv_weight": mx.nd.array(
                rng.standard_normal((channels, channels, 3, 3)).astype(np.float32)
                / np.sqrt(9 * channels)),
            "peak_conv_bias": mx.nd.zeros((channels,))}
    gflop = conv_gflop(sym, {"data": data.shape})
    exes, results = {}, {}
    for p in precisions:
        exe, why = _bound(p, sym, args, data)
        if exe is None:
            results[p] = {"unsupported": why}
        else:
            exes[p] = exe
    times = {p: [] for p in exes}
    for r in range(warmup + repeats):
        for p, exe in exes.items():
            t0 = time.perf_counter()
            exe.forward(is_train=False)
            exe.outputs[0].wait_to_read()
            if r >= warmup:
                times[p].append(time.perf_counter() - t0)
    for p, t in times.items():
        s = summarize(t)
        results[p] = {"median": gflop / s["p50"], "best": gflop / min(t),
                      "ms": 1000 * s["p50"], "gflop": gflop}
    return {p: results[p] for p in precisions}


def peak_table(results: Mapping[str, dict], channels: int, size: Tuple[int, int]) -> str:
    """Markdown table of `conv_peaks` results."""
    lines = ["3x3 convolution %d -> %d on %dx%d (%.2f GFLOP), interleaved"
             % (channels, channels, size[0], size[1],
                next((r["gflop"] for r in results.values() if "gflop" in r), float("nan"))),
             "", "| precision | ms (median) | GFLOPS (median) | GFLOPS (best) |",
             "|---|---:|---:|---:|"]
    for p, r in results.items():
        if "unsupported" in r:
            lines.append("| %s | - | - | not run: %s |" % (p, r["unsupported"]))
        else:
            lines.append("| %s | %.1f | %.0f | %.0f |" % (p, r["ms"], r["median"], r["best"]))
    return "\n".join(lines)
