"""A stored graph (symbol JSON) executed by PyTorch: `TorchGraph`, and shape inference.

`TorchGraph(graph, outputs, params)` is a torch.nn.Module built from the JSON that our
Symbol builders write (accel.graphs): it keeps the nodes the requested outputs need,
turns each into a PyTorch callable with MXNet's semantics (accel.runtime.torch_opset;
anything unknown fails here, at load time, naming the node), registers the parameters it
reads as buffers under their official names, and runs the nodes in the JSON's (topological)
order, freeing each intermediate after its last use. Outputs are keyed by MXNet's output
names (`res5c_relu_output`, `croped_score_output`, ...), inputs by variable name.

At load, a BatchNorm that reads the output of a convolution (plain or deformable) used by
nothing else is folded into that convolution's weight and bias (inference uses moving
statistics, so BN is an affine map per channel): one op fewer per layer, the same result
up to float rounding. Folded tensors are cached in the SharedParams the graphs share.

`infer_shapes(graph, input_shapes)` gives every parameter's shape and every output's shape
without computing anything (PyTorch's meta tensors): what a checkpoint must hold, and the
feature grid a frame size gives, with no MXNet.
"""
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np
import torch

from accel.runtime import SharedParams
from accel.runtime.torch_opset import (GraphError, aux_inputs, bn_affine, make_op,
                                       param_inputs, param_shapes)

__all__ = ["TorchGraph", "infer_shapes", "output_entry", "to_tensor"]

Shape = Tuple[int, ...]
Entry = Tuple[int, int]  # (node index, output index)
_CONVS = ("Convolution", "_contrib_DeformableConvolution")
_LABELS = {"SoftmaxOutput": (1,)}  # inputs read only when training


def to_tensor(value: Any, device: torch.device) -> torch.Tensor:
    """A checkpoint array (NumPy, MXNet NDArray or tensor) as a float32 tensor on `device`."""
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=torch.float32)
    if hasattr(value, "asnumpy"):  # an MXNet NDArray handed over by a caller
        value = value.asnumpy()
    return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)).to(device)


def _param(params: SharedParams, name: str, aux: bool = False) -> torch.Tensor:
    table = params.aux if aux else params.args
    if name not in table:
        raise KeyError(f"{'auxiliary state' if aux else 'parameter'} {name!r} is not in the "
                       f"checkpoint")
    return table[name]


def output_entry(nodes: Sequence[Dict[str, Any]], name: str) -> Entry:
    """The (node, output) an MXNet output name refers to: `<op name>_output`, or an input
    variable's own name."""
    for i, node in enumerate(nodes):
        if node["op"] != "null" and name == node["name"] + "_output":
            return i, 0
        if node["op"] == "null" and name == node["name"]:
            return i, 0
    raise GraphError(f"the graph has no output {name!r}")


def _needed(nodes, roots: Sequence[int]) -> List[int]:
    seen: Set[int] = set()
    stack = list(roots)
    while stack:
        i = stack.pop()
        if i not in seen:
            seen.add(i)
            stack.extend(src for src, _, _ in nodes[i]["inputs"])
    return sorted(seen)


def _role(nodes, keep: Sequence[int]) -> Dict[int, str]:
    """Each variable's role: 'arg' / 'aux' (parameters), 'label' (unused at test), 'input'."""
    role: Dict[int, str] = {}
    for i in keep:
        node = nodes[i]
        params, aux = param_inputs(node), aux_inputs(node)
        labels = _LABELS.get(node["op"], ())
        for pos, (src, _, _) in enumerate(node["inputs"]):
            if nodes[src]["op"] != "null":
                continue
            declared = "__shape__" in (nodes[src].get("attrs") or {})  # e.g. fc6_bias
            kind = ("aux" if pos in aux else "arg" if pos in params or declared else
                    "label" if pos in labels else "input")
            role.setdefault(src, kind)
    for i in keep:  # a variable that is itself an output (key_test passes data_key on)
        if nodes[i]["op"] == "null":
            role.setdefault(i, "input")
    return role


class TorchGraph(torch.nn.Module):
    """The nodes of a stored graph that `outputs` need, as one PyTorch module."""

    def __init__(self, graph: Dict[str, Any], outputs: Sequence[str], params: SharedParams,
                 fold_batchnorm: bool = True, name: str = "graph"):
        super().__init__()
        self.name = name
        nodes = graph["nodes"]
        self.outputs = list(outputs)
        entries = [output_entry(nodes, o) for o in self.outputs]
        keep = _needed(nodes, [i for i, _ in entries])
        role = _role(nodes, keep)
        self.input_names = [nodes[i]["name"] for i in keep if role.get(i) == "input"]
        self._ops = {i: make_op(nodes[i]) for i in keep if nodes[i]["op"] != "null"}
        missing = [f"{'aux:' if role[i] == 'aux' else ''}{nodes[i]['name']}"
                   for i in keep if role.get(i) in ("arg", "aux")
                   and nodes[i]["name"] not in (params.aux if role[i] == "aux" else params.args)]
        if missing:
            raise KeyError(f"{name}: parameters missing from the checkpoint: "
                           f"{', '.join(missing)}")
        for i in keep:
            if role.get(i) in ("arg", "aux"):
                self.register_buffer(nodes[i]["name"],
                                     _param(params, nodes[i]["name"], role[i] == "aux"))
        self._folded = self._fold(nodes, keep, entries, params) if fold_batchnorm else {}
        self._plan(nodes, keep, entries, role)
        self._by_name = dict(self.named_buffers())  # looked up per step: built once

    # -- load-time rewrites -------------------------------------------------------------
    def _fold(self, nodes, keep, entries, params: SharedParams) -> Dict[int, Tuple[str, str]]:
        """{BN node: conv node} for every BatchNorm folded into the convolution it reads;
        the conv then reads `_folded_<conv>_weight` / `_bias` buffers."""
        users: Dict[Entry, int] = {}
        for i in keep:
            for src, out, _ in nodes[i]["inputs"]:
                users[(src, out)] = users.get((src, out), 0) + 1
        folded = {}
        for i in keep:
            node = nodes[i]
            if node["op"] != "BatchNorm":
                continue
            src, out, _ = node["inputs"][0]
            conv = nodes[src]
            deform = conv["op"] == "Custom" and \
                conv.get("attrs", {}).get("op_type") == "accel_deformable_conv"
            if (conv["op"] not in _CONVS and not deform) or users[(src, out)] != 1 \
                    or (src, 0) in entries or int(conv.get("attrs", {}).get("num_group", 1)) != 1:
                continue
            key = (conv["name"], node["name"])
            if key not in params.cache:
                w_pos = 2 if conv["op"] != "Convolution" else 1
                weight = _param(params, nodes[conv["inputs"][w_pos][0]]["name"])
                has_bias = len(conv["inputs"]) > w_pos + 1
                bias = _param(params, nodes[conv["inputs"][w_pos + 1][0]]["name"]) if has_bias \
                    else torch.zeros(weight.shape[0], device=weight.device)
                gamma, beta, mean, var = (
                    _param(params, nodes[node["inputs"][p][0]]["name"], p >= 3)
                    for p in (1, 2, 3, 4))
                op = self._ops[i]
                scale, shift = bn_affine(gamma, beta, mean, var, op.eps, op.fix_gamma)
                params.cache[key + ("weight",)] = weight * scale.view(-1, 1, 1, 1)
                params.cache[key] = bias * scale + shift
            wname, bname = f"_folded_{conv['name']}_weight", f"_folded_{conv['name']}_bias"
            self.register_buffer(wname, params.cache[key + ("weight",)], persistent=False)
            self.register_buffer(bname, params.cache[key], persistent=False)
            folded[i] = (wname, bname)
        return folded

    def _plan(self, nodes, keep, entries, role) -> None:
        """The steps of forward(): (node, op, input keys, output key), and when each
        intermediate can be freed."""
        alias: Dict[Entry, Entry] = {}
        conv_of = {nodes[b]["inputs"][0][0]: b for b in self._folded}
        steps = []
        for i in keep:
            node = nodes[i]
            if node["op"] == "null" or i in self._folded:
                if i in self._folded:
                    src = node["inputs"][0][0]
                    alias[(i, 0)] = alias.get((src, 0), (src, 0))
                continue
            args: List[Any] = []
            for pos, (src, out, _) in enumerate(node["inputs"]):
                kind = role.get(src)
                if kind in ("arg", "aux"):
                    args.append(("buffer", nodes[src]["name"]))
                elif kind == "label":
                    args.append(("none", None))
                elif kind == "input":
                    args.append(("input", nodes[src]["name"]))
                else:
                    args.append(("value", alias.get((src, out), (src, out))))
            if i in conv_of:
                wname, bname = self._folded[conv_of[i]]
                w_pos = 1 if node["op"] == "Convolution" else 2
                args = args[:w_pos] + [("buffer", wname), ("buffer", bname)]
            steps.append((i, args))
        self._outputs = [alias.get(e, e) if nodes[e[0]]["op"] != "null"
                         else ("input", nodes[e[0]]["name"]) for e in entries]
        last: Dict[Entry, int] = {}
        for n, (_, args) in enumerate(steps):
            for kind, key in args:
                if kind == "value":
                    last[key] = n
        keepers = {e for e in self._outputs if not isinstance(e[0], str)}
        self._steps = [(i, args, [k for k, n in last.items() if n == s and k not in keepers])
                       for s, (i, args) in enumerate(steps)]
        self._node_names = {i: nodes[i]["name"] for i in keep}

    # -- execution ----------------------------------------------------------------------
    def forward(self, **inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Run the graph; returns {output name: tensor}."""
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise ValueError(f"{self.name}: inputs {', '.join(missing)} not given "
                             f"(inputs: {', '.join(self.input_names)})")
        buffers = self._by_name
        values: Dict[Entry, torch.Tensor] = {}
        for i, args, free in self._steps:
            xs = []
            for kind, key in args:
                xs.append(values[key] if kind == "value" else buffers[key] if kind == "buffer"
                          else inputs[key] if kind == "input" else None)
            try:
                values[(i, 0)] = self._ops[i](*xs)
            except (RuntimeError, ValueError) as err:
                raise ValueError(f"{self.name}: node {self._node_names[i]!r} failed: "
                                 f"{str(err).splitlines()[0]}") from err
            for key in free:
                del values[key]
        return {name: (inputs[e[1]] if isinstance(e[0], str) else values[e])
                for name, e in zip(self.outputs, self._outputs)}


def infer_shapes(graph: Dict[str, Any], input_shapes: Mapping[str, Sequence[int]],
                 outputs: Optional[Sequence[str]] = None
                 ) -> Tuple[Dict[str, Shape], Dict[str, Shape], Dict[str, Shape]]:
    """(arg shapes, aux shapes, output shapes) of a graph for inputs of `input_shapes`,
    as MXNet's infer_shape gives them; `outputs` default: the graph's heads. Nothing is
    computed (meta tensors)."""
    nodes = graph["nodes"]
    if outputs is None:
        outputs = [nodes[i]["name"] + ("_output" if nodes[i]["op"] != "null" else "")
                   for i, _, _ in graph["heads"]]
    entries = [output_entry(nodes, o) for o in outputs]
    keep = _needed(nodes, [i for i, _ in entries])
    role = _role(nodes, keep)
    meta = torch.device("meta")
    values: Dict[int, torch.Tensor] = {}
    args: Dict[str, Shape] = {}
    aux: Dict[str, Shape] = {}
    for i in keep:
        node = nodes[i]
        if node["op"] == "null":
            if role.get(i) == "input":
                if node["name"] in input_shapes:
                    values[i] = torch.empty(tuple(input_shapes[node["name"]]), device=meta)
            elif "__shape__" in node.get("attrs", {}):
                shape = tuple(int(d) for d in node["attrs"]["__shape__"].strip("()").split(",")
                              if d.strip())
                values[i] = torch.empty(shape, device=meta)
                args[node["name"]] = shape
            continue
        data = values[node["inputs"][0][0]]
        shapes = iter(param_shapes(node, data.shape) if param_inputs(node) else ())
        for pos, (src, _, _) in enumerate(node["inputs"]):
            if pos in param_inputs(node) and src not in values:
                shape = next(shapes)
                values[src] = torch.empty(shape, device=meta)
                (aux if role.get(src) == "aux" else args)[nodes[src]["name"]] = shape
            elif pos in param_inputs(node):
                next(shapes)
        xs = [values.get(src) for src, _, _ in node["inputs"]]
        if any(x is None and role.get(src) == "input"
               for x, (src, _, _) in zip(xs, node["inputs"])):
            absent = [nodes[src]["name"] for x, (src, _, _) in zip(xs, node["inputs"])
                      if x is None and role.get(src) == "input"]
            raise GraphError(f"input {absent[0]!r} needs a shape")
        values[i] = make_op(node)(*xs)
    outs = {o: tuple(values[e[0]].shape) if values.get(e[0]) is not None else None
            for o, e in zip(outputs, entries)}
    return args, aux, outs
