"""Export of our MXNet graphs to ONNX: MXNet's own converters plus ours for the Accel ops.

`mx.onnx` (MXNet 1.9, needs onnx < 1.15) converts the standard layers. For the duration of
one export this module adds ours (accel.export.converters: the warp as `GridSample`, the
deformable convolution as 'sampling' or 'deformconv', BatchNorm honouring `fix_gamma`).
Parameters become raw initializers, never graph inputs. An op none of these convert fails
before any conversion with `UnsupportedOpError`, naming every such layer and op. The Accel
and DeepLab graphs as files: accel.export.networks.
"""
import contextlib
import json
import logging
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Tuple, Union

import mxnet as mx
import numpy as np
import onnx
from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph
from onnx import TensorProto, helper

from accel.export.converters import (CUSTOM_DEFORMABLE, CUSTOM_WARP, DEFORMABLE_MODES,
                                     UnsupportedOpError, our_converters)
from accel.export.proto import HostArray, attach_weights, keep, name_output_dims

__all__ = ["DEFORMABLE_MODES", "OPSET", "OUTPUTS_KEY", "UnsupportedOpError",
           "unsupported_ops", "export_graph"]

logger = logging.getLogger(__name__)

Shape = Tuple[int, ...]

# Lowest opset each mode needs: GridSample is opset 16 (17 is what TensorRT 8.6 and
# OpenVINO 2023 read), DeformConv opset 19.
OPSET = {"sampling": 17, "deformconv": 19}
# ONNX metadata key holding {onnx output name: MXNet output name}.
OUTPUTS_KEY = "accel.mxnet_outputs"


@contextlib.contextmanager
def _exporter(converters: Mapping[str, object], opset: int) -> Iterator[None]:
    """MXNet's exporter with our converters in its registry at `opset` (it looks there
    first) and without its own graph check: `export_graph` checks the graph before the
    weights are attached (the check serializes the model: seconds with a ResNet-101's
    weights, milliseconds without). Restored on exit."""
    table = MXNetGraph.registry_.setdefault(opset, {})
    saved = {op: table[op] for op in converters if op in table}
    check_graph = onnx.checker.check_graph
    table.update(converters)
    onnx.checker.check_graph = lambda *args, **kwargs: None
    try:
        yield
    finally:
        onnx.checker.check_graph = check_graph
        for op in converters:
            table.pop(op, None)
        table.update(saved)


# -- export -----------------------------------------------------------------------------------

def unsupported_ops(sym: mx.sym.Symbol, opset: int, deformable: str = "sampling"
                    ) -> List[Tuple[str, str]]:
    """(layer name, op) of every layer of `sym` that no converter handles."""
    known = set(our_converters(deformable))
    for version in range(opset, 11, -1):
        known.update(MXNetGraph.registry_.get(version, {}))
    missing = []
    for node in json.loads(sym.tojson())["nodes"]:
        op = node["op"]
        if op == "Custom":
            op_type = node.get("attrs", {}).get("op_type")
            if op_type not in (CUSTOM_WARP, CUSTOM_DEFORMABLE):
                missing.append((node["name"], "Custom(op_type=%s)" % op_type))
        elif op not in known:
            missing.append((node["name"], op))
    return missing


def _graph_inputs(sym: mx.sym.Symbol, params: Mapping) -> List[str]:
    """Inputs the exporter makes graph inputs, in its order (the graph's JSON order)."""
    return [n["name"] for n in json.loads(sym.tojson())["nodes"]
            if n["op"] == "null" and n["name"] not in params]


def _onnx_name(mx_name: str) -> str:
    """ONNX output names are MXNet's without `_output`."""
    return mx_name[:-len("_output")] if mx_name.endswith("_output") else mx_name


def _graph_params(sym: mx.sym.Symbol, arg_params: Mapping, aux_params: Mapping,
                  input_shapes: Mapping[str, Shape]) -> Tuple[Dict, List[str]]:
    """(the parameters `sym` reads, its graph inputs in the exporter's order)."""
    used = set(sym.list_arguments()) | set(sym.list_auxiliary_states())
    params = {k: v for k, v in {**arg_params, **aux_params}.items()
              if k in used and k not in input_shapes and not k.endswith("_label")}
    # A loss layer's label (SoftmaxOutput's `softmax_label`) is not used at inference: it
    # becomes a zero initializer, which ONNX Runtime drops, rather than a graph input.
    arg_shapes, _, _ = sym.infer_shape_partial(**input_shapes)
    for name, shape in zip(sym.list_arguments(), arg_shapes):
        if name.endswith("_label") and name not in params:
            params[name] = np.zeros(shape, np.float32)
    inputs = _graph_inputs(sym, params)
    absent = [n for n in inputs if n not in input_shapes]
    if absent:
        raise ValueError("graph arguments %s are neither parameters nor in input_shapes %s"
                         % (absent, sorted(input_shapes)))
    return params, inputs


def _add_outputs(graph: onnx.GraphProto, sym: mx.sym.Symbol, input_shapes: Mapping,
                 dynamic: bool) -> None:
    """Every symbol output a node produces, in the symbol's order: the exporter can leave
    out an output that other nodes also read (the fast keyframe graph's fc6_state)."""
    produced = {o for node in graph.node for o in node.output}
    listed = {vi.name for vi in graph.output}
    out_shapes = sym.infer_shape(**input_shapes)[1]
    for mx_name, shape in zip(sym.list_outputs(), out_shapes):
        name = _onnx_name(mx_name)
        if name not in listed and name in produced:
            dims = [d if not dynamic or i < 2 else None for i, d in enumerate(shape)]
            graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
    order = {_onnx_name(n): i for i, n in enumerate(sym.list_outputs())}
    keep(graph.output, sorted(graph.output, key=lambda vi: order.get(vi.name, len(order))))


def export_graph(sym: mx.sym.Symbol, arg_params: Mapping, aux_params: Mapping,
                 input_shapes: Mapping[str, Shape], path: Union[str, Path],
                 deformable: str = "sampling", dynamic: bool = False,
                 opset: Optional[int] = None, doc: str = "",
                 metadata: Optional[Mapping[str, str]] = None) -> onnx.ModelProto:
    """Write `sym` (every output of it) to the ONNX file `path` and return the model.

    Parameters the graph uses become initializers; the inputs named in `input_shapes` are
    the graph inputs (float32). dynamic: the spatial dims (2, 3) of every 4-D input and
    output are left symbolic (`<input>_height`, `<input>_width`), batch stays as given.
    ONNX output names are MXNet's without `_output`; the MXNet names are kept in the
    metadata (`OUTPUTS_KEY`) so that `accel.export.onnxruntime.OrtGraph` returns the keys
    an accel.runtime Graph's `forward` does.
    """
    opset = opset or OPSET[deformable]
    if opset < OPSET[deformable]:
        raise ValueError("deformable mode %r needs opset >= %d, got %d"
                         % (deformable, OPSET[deformable], opset))
    missing = unsupported_ops(sym, opset, deformable)
    if missing:
        raise UnsupportedOpError("cannot export to ONNX: no converter for %s" % ", ".join(
            "layer %r (op %s)" % m for m in missing))
    params, inputs = _graph_params(sym, arg_params, aux_params, input_shapes)
    shapes = [tuple(int(d) for d in input_shapes[n]) for n in inputs]
    dyn = None
    if dynamic:
        dyn = [tuple(s[:2]) + ("%s_height" % n, "%s_width" % n) if len(s) == 4 else s
               for n, s in zip(inputs, shapes)]
    weights: Dict[str, np.ndarray] = {}
    with _exporter(our_converters(deformable, weights), opset):
        graph = MXNetGraph().create_onnx_graph_proto(
            sym, {k: HostArray(v) for k, v in params.items()}, shapes,
            [TensorProto.FLOAT] * len(shapes), opset_version=opset, dynamic=dynamic,
            dynamic_input_shapes=dyn)
    if dynamic:
        name_output_dims(graph)
    _add_outputs(graph, sym, dict(zip(inputs, shapes)), dynamic)
    model = helper.make_model(graph, producer_name="accel", doc_string=doc,
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = helper.find_min_ir_version_for(list(model.opset_import))
    names = {_onnx_name(n): n for n in sym.list_outputs()}
    helper.set_model_props(model, {OUTPUTS_KEY: json.dumps(names),
                                   "accel.deformable": deformable, **(metadata or {})})
    # Checked (types, shapes, ops at this opset) with the weights as typed graph inputs,
    # then the weights become initializers, not graph inputs.
    onnx.checker.check_model(model, full_check=True)
    attach_weights(model.graph, inputs, weights)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    logger.info("wrote %s (inputs %s, outputs %s)", path,
                ", ".join("%s %s" % (n, s) for n, s in zip(inputs, dyn or shapes)),
                ", ".join(o.name for o in model.graph.output))
    return model
