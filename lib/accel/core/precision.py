"""BF16 graphs for the CPU fast path (MXNet's AMP for oneDNN) and the CPU check it needs.

`to_bf16` rewrites a float32 graph with `mx.contrib.amp.convert_model(target_dtype='bfloat16')`:
convolutions, batch norms, ReLUs, pooling and the sums between them run in bfloat16 (oneDNN
accumulates in float32); the operators of `FLOAT32_OPS` and the layers named by
`keep_float32` stay float32, and every output leaves the graph as float32 for the host.

oneDNN (MXNet 1.9.1) has bf16 kernels only on CPUs with AVX512-BF16 or AMX: on others
(measured on an AVX2 Zen 3) every bf16 convolution, batch norm, activation and pooling fails
at its first forward with "could not create a primitive descriptor iterator". So the graphs
are only bound after `require_bf16()`, which refuses in one line. `emulate_bf16` gives the
same graph in float32 with the bf16 roundings made explicit (each tensor that is bf16 in the
converted graph is rounded to bf16 where it is made, and each float32 tensor a bf16 operator
reads is rounded where it is read): accuracy can be measured on any CPU, speed cannot.
"""
import json
import logging
import re
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Sequence, Set, Tuple

import mxnet as mx
import numpy as np

logger = logging.getLogger(__name__)

# CPU flags (as /proc/cpuinfo spells them) with which oneDNN runs bf16 kernels.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")

# Operator types kept in float32 (all are float32 in AMP's own bf16 lists too; listed here so
# that what stays float32, and why, is written in one place and checked by the tests).
FLOAT32_OPS: Dict[str, str] = {
    "_contrib_DeformableConvolution": "the official graphs' deformable convolutions: MXNet's "
                                      "CPU kernel is float32 only",
    "Custom": "our CPU operators (deformable convolution, warp) compute in float32 only",
    "Deconvolution": "AMP's default; oneDNN 1.9.1 has a bf16 kernel but it was not measured "
                     "(the flow network's refinement and the 18/34 folded fc6)",
    "Concat": "AMP 1.9.1 fails type inference where a Concat joins bf16 and float32 inputs "
              "(FlowNet's Concat2..5: bf16 features beside float32 flow; a copy, cheap)",
    "Crop": "MXNet's Crop has no bf16 kernel (type check fails)",
    "GridGenerator": "the reference warp's grid in [-1, 1]: bf16's 8 significant bits would "
                     "misplace samples by up to W/512 pixels",
    "BilinearSampler": "the reference warp reads that grid at sub-pixel precision",
    "SoftmaxOutput": "probabilities for the host",
    "argmax": "labels for the host",
    "Reshape": "AMP's default (shape-only; the fast path's fc6 bias)",
    "_mul_scalar": "AMP's default (the flow x 2.5 scaling)",
    "_div_scalar": "AMP's default (input scaling of the flow network)",
}

# Layer-name prefixes of the Accel graphs kept in float32 (the `keep_float32` argument).
# Measured with `emulate_bf16` on the oracle fixtures (128x256): on the Accel-18 non-key graph
# keeping these float32 takes the score error from 1.7e-3 to 7e-4 (mean relative) and the
# flipped pixels from 0.16% to 0.03%, at < 1% of its work. Keeping DeepLab's `score` and `fc6`
# float32 as well moved its argmax agreement only from 99.54% to 99.57%: they run in bf16.
BF16_FLOAT32_LAYERS: Dict[str, str] = {
    "Convolution": "FlowNet's flow predictors Convolution1..5 (2 channels, < 1% of its work): "
                   "flow in bf16 has 8 significant bits, 0.1 px at 25 px",
    "correction": "the fusion layer (a 1x1 over 2 x 19 scores: negligible work) decides "
                  "between branches whose scores differ little",
}


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> Tuple[str, Set[str]]:
    """(model name, set of flags) of the first CPU listed in `cpuinfo`."""
    text = Path(cpuinfo).read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    if flags is None:
        raise ValueError("%s has no 'flags' line: expected /proc/cpuinfo's format" % cpuinfo)
    return (model.group(1).strip() if model else "unknown CPU"), set(flags.group(1).split())


def cpu_has_bf16(flags: Optional[Iterable[str]] = None, cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU (its `flags`, default read from `cpuinfo`) has AVX512-BF16 or AMX."""
    have = set(flags) if flags is not None else cpu_flags(cpuinfo)[1]
    return any(f in have for f in BF16_FLAGS)


def require_bf16(flags: Optional[Iterable[str]] = None, cpuinfo: str = "/proc/cpuinfo",
                 model: Optional[str] = None) -> None:
    """Raise RuntimeError (one line) unless the CPU can run oneDNN's bf16 kernels."""
    if flags is None:
        model_read, flags = cpu_flags(cpuinfo)
        model = model or model_read
    if cpu_has_bf16(flags):
        return
    raise RuntimeError(
        "precision 'bf16' needs a CPU with %s; %s has neither (oneDNN has no bf16 kernels "
        "there): use precision 'fp32' or 'int8'" % (" or ".join(BF16_FLAGS),
                                                    model or "this CPU"))


def _node_names(sym: mx.sym.Symbol) -> list:
    return [n["name"] for n in json.loads(sym.tojson())["nodes"] if n["op"] != "null"]


def _excluded(sym: mx.sym.Symbol, keep_float32: Sequence[str]) -> list:
    prefixes = tuple(keep_float32)
    return [n for n in _node_names(sym) if prefixes and n.startswith(prefixes)]


def _fp32_ops() -> list:
    """AMP's own float32 operator list plus ours (`FLOAT32_OPS`)."""
    from mxnet.contrib import amp

    return sorted(set(amp.list_fp32_ops(amp.amp.bfloat16)) | set(FLOAT32_OPS))


def _convert_symbol(sym: mx.sym.Symbol, data_names: Sequence[str],
                    keep_float32: Sequence[str], cast_params: bool) -> mx.sym.Symbol:
    from mxnet.contrib import amp

    return amp.convert_symbol(sym, target_dtype="bfloat16", fp32_ops=_fp32_ops(),
                              excluded_sym_names=_excluded(sym, keep_float32),
                              data_names=list(data_names), cast_optional_params=cast_params)


def _float32_outputs(sym: mx.sym.Symbol, data_names: Sequence[str]) -> mx.sym.Symbol:
    """The same outputs, each bf16 one cast to float32 (named `<output>_fp32`)."""
    types = dict(zip(sym.list_outputs(), output_dtypes(sym, data_names)))
    outs = []
    for i, name in enumerate(sym.list_outputs()):
        out = sym[i]
        if types[name] != "float32":
            out = mx.sym.amp_cast(out, dtype="float32", name=name[:-len("_output")] + "_fp32"
                                  if name.endswith("_output") else name + "_fp32")
        outs.append(out)
    return mx.sym.Group(outs)


def _dtype_name(t) -> str:
    from mxnet.contrib.amp.amp import bfloat16

    return "bfloat16" if t == bfloat16 else np.dtype(t).name


def output_dtypes(sym: mx.sym.Symbol, data_names: Sequence[str]) -> list:
    """dtype names ('float32', 'bfloat16') of a graph's outputs, its data inputs float32."""
    _, out_types, _ = sym.infer_type(**{n: "float32" for n in data_names})
    return [_dtype_name(t) for t in out_types]


def internal_dtypes(sym: mx.sym.Symbol, data_names: Sequence[str]) -> Dict[str, str]:
    """{internal output name: dtype name} of every tensor of a graph."""
    internals = sym.get_internals()
    return dict(zip(internals.list_outputs(), output_dtypes(internals, data_names)))


def _data_names(sym: mx.sym.Symbol, arg_params: Mapping, aux_params: Mapping) -> list:
    """The graph's inputs: arguments without a value in the params."""
    return [n for n in sym.list_arguments() if n not in arg_params and n not in aux_params]


def to_bf16(sym: mx.sym.Symbol, arg_params: Mapping[str, mx.nd.NDArray],
            aux_params: Mapping[str, mx.nd.NDArray],
            keep_float32: Sequence[str] = tuple(BF16_FLOAT32_LAYERS), cast_params: bool = True
            ) -> Tuple[mx.sym.Symbol, Dict[str, mx.nd.NDArray], Dict[str, mx.nd.NDArray]]:
    """BF16 version of a float32 graph (bind it only where `cpu_has_bf16()`).

    keep_float32: layer-name prefixes left in float32, on top of `FLOAT32_OPS`.
    cast_params: store the bf16 layers' weights in bf16 once (else cast at every forward).
    Inputs are the graph's arguments without a value in the params (fed float32).
    Returns (symbol, arg_params, aux_params) holding only what the symbol uses (new dicts,
    the given ones are not changed); outputs keep their order and are float32 (AMP casts
    them: names become `<name>_output_amp_cast_float32_output`; a bf16 output it left would
    get a cast named `<name>_fp32`).
    """
    from mxnet.contrib import amp

    data_names = _data_names(sym, arg_params, aux_params)
    arg_names, aux_names = set(sym.list_arguments()), set(sym.list_auxiliary_states())
    args = {k: v for k, v in arg_params.items() if k in arg_names}
    aux = {k: v for k, v in aux_params.items() if k in aux_names}
    excluded = _excluded(sym, keep_float32)
    # convert_model writes the cast params into the dicts it is given: hand it copies.
    bsym, bargs, baux = amp.convert_model(sym, dict(args), dict(aux), target_dtype="bfloat16",
                                          fp32_ops=_fp32_ops(), excluded_sym_names=excluded,
                                          cast_optional_params=cast_params)
    bsym = _float32_outputs(bsym, data_names)
    logger.info("BF16: %d layers kept float32 by name (%s)", len(excluded),
                ", ".join(excluded) or "none")
    return bsym, bargs, baux


BF16_ROUND_OP = "accel_bf16_round"


class _RoundToBF16(mx.operator.CustomOp):
    """x rounded to the nearest bfloat16 (ties to even), kept float32: oneDNN's rounding."""

    def forward(self, is_train, req, in_data, out_data, aux):
        bits = np.ascontiguousarray(in_data[0].asnumpy(), np.float32).view(np.uint32)
        bits = (bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) & np.uint32(0xFFFF0000)
        self.assign(out_data[0], req[0], mx.nd.array(bits.view(np.float32)))

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        self.assign(in_grad[0], req[0], out_grad[0])


@mx.operator.register(BF16_ROUND_OP)
class _RoundToBF16Prop(mx.operator.CustomOpProp):
    def __init__(self):
        super().__init__(need_top_grad=True)

    def infer_shape(self, in_shape):
        return in_shape, [in_shape[0]], []

    def create_operator(self, ctx, shapes, dtypes):
        return _RoundToBF16()


def _round_node(nodes: list, entry: list, tag: str) -> list:
    """Append a bf16 rounding of `entry` to `nodes` (a NumPy Custom op: 5-10x faster on the
    CPU than oneDNN's reference f32 -> bf16 -> f32 reorders); the new entry."""
    nodes.append({"op": "Custom", "name": tag + "_bf16_round",
                  "attrs": {"op_type": BF16_ROUND_OP}, "inputs": [entry]})
    return [len(nodes) - 1, 0, 0]


def emulate_bf16(sym: mx.sym.Symbol, arg_params: Mapping, aux_params: Mapping,
                 keep_float32: Sequence[str] = tuple(BF16_FLOAT32_LAYERS)) -> mx.sym.Symbol:
    """A float32 graph computing what `to_bf16`'s graph computes, up to accumulation order:
    every tensor that is bf16 there is rounded to bf16 (round to nearest even) here. Runs on
    any CPU; for accuracy measurements (it is slower than float32)."""
    data_names = _data_names(sym, arg_params, aux_params)
    conv = _convert_symbol(sym, data_names, keep_float32, cast_params=False)
    dtypes = internal_dtypes(conv, data_names)
    graph = json.loads(conv.tojson())
    old = graph["nodes"]

    def entry_name(node_id: int, index: int) -> str:
        node = old[node_id]
        if node["op"] == "null":
            return node["name"]
        single = node["name"] + "_output"
        return single if single in dtypes else "%s_output%d" % (node["name"], index)

    n_outputs: Dict[str, int] = {}
    for name in dtypes:
        base = re.sub(r"_output\d*$", "", name)
        if base != name:
            n_outputs[base] = n_outputs.get(base, 0) + 1
    nodes, remap = [], {}   # remap: (old id, out index) -> new entry
    for i, node in enumerate(old):
        node = dict(node)
        node["inputs"] = [list(remap[(a, b)]) for a, b, _ in node["inputs"]]
        if node["op"] in ("amp_cast", "amp_multicast"):
            # A cast to bf16 becomes a rounding; float32 casts and multicasts are identities.
            for k, (a, b, _) in enumerate(old[i]["inputs"]):
                src = node["inputs"][k]
                remap[(i, k)] = (_round_node(nodes, src, "%s_%d" % (node["name"], k))
                                 if dtypes[entry_name(i, k)] == "bfloat16" else src)
            continue
        nodes.append(node)
        new_id = len(nodes) - 1
        for k in range(n_outputs.get(node["name"], 1)):
            e = [new_id, k, 0]
            remap[(i, k)] = (_round_node(nodes, e, "%s_out%d" % (node["name"], k))
                             if node["op"] != "null" and dtypes[entry_name(i, k)] == "bfloat16"
                             else e)
    graph["nodes"] = nodes
    graph["arg_nodes"] = [i for i, n in enumerate(nodes) if n["op"] == "null"]
    graph["heads"] = [list(remap[(a, b)]) for a, b, _ in graph["heads"]]
    graph.pop("node_row_ptr", None)
    return mx.sym.load_json(json.dumps(graph))


def bf16_layers(sym: mx.sym.Symbol, data_names: Sequence[str]) -> Dict[str, str]:
    """{layer name: op} of the layers that compute in bf16 in a converted graph."""
    dtypes = internal_dtypes(sym, data_names)
    out = {}
    for node in json.loads(sym.tojson())["nodes"]:
        if node["op"] in ("null", "amp_cast", "amp_multicast"):
            continue
        if dtypes.get(node["name"] + "_output", dtypes.get(node["name"] + "_output0")) \
                == "bfloat16":
            out[node["name"]] = node["op"]
    return out
