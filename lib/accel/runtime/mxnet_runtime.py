"""The MXNet runtime: stored graphs loaded as Symbols and bound once per input shape.

The training and reference runtime. `BoundGraph` binds one Symbol for fixed input shapes
over parameter NDArrays that several graphs share (the keyframe and non-key graphs of Accel
hold the same weights once); inputs are copied in place per call. INT8 graphs (MKL-DNN,
accel.runtime.quantize) and the original demo's host work (`original_io`, for benchmarks) are
this runtime's alone.
"""
import logging
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np

from accel.runtime import ShapeError, SharedParams, Shapes
from accel.symbols.stored import stored_symbol

__all__ = ["BoundGraph", "MXNetRuntime", "graph_symbol", "last_line"]

logger = logging.getLogger(__name__)
Shape = Tuple[int, ...]


def last_line(err: Exception) -> str:
    """The informative line of an MXNetError (its text starts with a C++ traceback)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return lines[-1] if lines else type(err).__name__


def graph_symbol(network: Any, kind: str, outputs: Optional[Sequence[str]] = None
                 ) -> mx.sym.Symbol:
    """The stored graph `kind` of `network` as a Symbol, restricted to `outputs`."""
    return stored_symbol(network.graph_name(kind), network.num_classes, outputs)


class BoundGraph:
    """A Symbol bound once for fixed input shapes; inputs are copied in place per call."""

    def __init__(self, sym: mx.sym.Symbol, input_shapes: Mapping[str, Shape],
                 arg_params: Mapping[str, mx.nd.NDArray], aux_params: Mapping[str, mx.nd.NDArray],
                 ctx: mx.Context, output_names: Optional[Sequence[str]] = None,
                 fresh_inputs: bool = False):
        """Parameters must already be checked. `output_names` renames the outputs (a
        rewritten graph, e.g. INT8, keeps their order but not their names);
        `fresh_inputs`: allocate a new input array per call, as the original demo did."""
        arg_shapes, _, _ = sym.infer_shape(**input_shapes)
        args = {}
        for name, shape in zip(sym.list_arguments(), arg_shapes):
            args[name] = (mx.nd.zeros(shape, ctx) if name in input_shapes else arg_params[name])
        aux = {name: aux_params[name] for name in sym.list_auxiliary_states()}
        self.exe = sym.bind(ctx, args=args, aux_states=aux, grad_req="null")
        self.outputs = list(output_names or sym.list_outputs())
        self.fresh_inputs = fresh_inputs

    def set_input(self, name: str, value) -> None:
        """Copy a NumPy array or NDArray into the bound input `name` (no allocation)."""
        target = self.exe.arg_dict[name]
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError("input %r has shape %s, the graph was bound for %s"
                             % (name, tuple(value.shape), tuple(target.shape)))
        if self.fresh_inputs and not isinstance(value, mx.nd.NDArray):
            value = mx.nd.array(value, ctx=target.context)
        if isinstance(value, mx.nd.NDArray):
            value.copyto(target)
        else:
            target[:] = value

    def input(self, name: str) -> mx.nd.NDArray:
        """The bound input array `name` (its current value)."""
        return self.exe.arg_dict[name]

    def forward(self, **inputs) -> Dict[str, mx.nd.NDArray]:
        """Run the graph on the given inputs (others keep their last value)."""
        for name, value in inputs.items():
            self.set_input(name, value)
        self.exe.forward(is_train=False)
        return dict(zip(self.outputs, self.exe.outputs))


class MXNetRuntime:
    """Stored graphs in MXNet on one context.

    original_io: do each frame's host work as the original demo did (a fresh input array,
    the full score map copied to the host, argmax in NumPy), for benchmarks."""

    name = "mxnet"

    def __init__(self, ctx: Optional[mx.Context] = None, original_io: bool = False):
        self.ctx = ctx or mx.cpu()
        self.device = str(self.ctx)
        self.fast_ok = self.ctx.device_type == "cpu"  # our CPU kernels (accel.operators)
        self.original_io = original_io

    def share(self, arg_params, aux_params) -> SharedParams:
        return SharedParams({k: self._array(v) for k, v in arg_params.items()},
                            {k: self._array(v) for k, v in aux_params.items()})

    def add_params(self, params: SharedParams, arrays) -> None:
        params.args.update({k: self._array(v) for k, v in arrays.items()})

    def _array(self, value) -> mx.nd.NDArray:
        if isinstance(value, mx.nd.NDArray):
            return value.as_in_context(self.ctx)
        return mx.nd.array(np.asarray(value), ctx=self.ctx, dtype=np.asarray(value).dtype)

    def shapes(self, network, kind: str, input_shapes, outputs=None) -> Shapes:
        sym = graph_symbol(network, kind, outputs)
        try:
            arg_shapes, out_shapes, aux_shapes = sym.infer_shape(**input_shapes)
        except mx.base.MXNetError as err:
            raise ShapeError(last_line(err)) from None
        return ({n: tuple(s) for n, s in zip(sym.list_arguments(), arg_shapes)
                 if n not in input_shapes},
                {n: tuple(s) for n, s in zip(sym.list_auxiliary_states(), aux_shapes)},
                {n: tuple(s) for n, s in zip(sym.list_outputs(), out_shapes)})

    def bind(self, network, requests, params: SharedParams, int8=None) -> Dict[str, BoundGraph]:
        syms = {kind: graph_symbol(network, kind, outputs)
                for kind, (outputs, _) in requests.items()}
        quantized = {}
        if int8:   # quantized once per graph; a new frame shape binds the same INT8 graph
            key = ("int8",) + tuple((k, network.graph_name(k), tuple(requests[k][0]))
                                    for k in sorted(int8))
            if key not in params.cache:
                params.cache[key] = self._quantize(network, syms, requests, params, int8)
            quantized = params.cache[key]
        graphs = {}
        for kind, (outputs, shapes) in requests.items():
            if kind in quantized:
                qsym, qargs, qaux = quantized[kind]
                graphs[kind] = BoundGraph(qsym, shapes, qargs, qaux, self.ctx,
                                          output_names=list(outputs))
            else:
                graphs[kind] = BoundGraph(syms[kind], shapes, params.args, params.aux,
                                          self.ctx, fresh_inputs=self.original_io)
        return graphs

    def _quantize(self, network, syms, requests, params: SharedParams, int8
                  ) -> Dict[str, Tuple]:
        """INT8 graphs: 'key' calibrated on the frames; 'cur' on the non-key graph's inputs
        as the stream gives them (float graphs run over the frames in order, the state
        propagated hop by hop)."""
        from accel.runtime.quantize import quantize_graph

        keep = network.float32_layers
        out = {}
        if "key" in int8:
            out["key"] = quantize_graph(syms["key"], params.args, params.aux,
                                        [{"data": f} for f in int8["key"]], keep)
        if "cur" in int8:
            frames = list(int8["cur"])
            key = BoundGraph(syms["key"], requests["key"][1], params.args, params.aux,
                             self.ctx)
            cur = BoundGraph(syms["cur"], requests["cur"][1], params.args, params.aux,
                             self.ctx)
            feat = key.forward(data=frames[0])[network.state_output].asnumpy()
            samples = []
            for prev, frame in zip(frames, frames[1:]):
                samples.append({"data": frame, "data_key": prev, "feat_key": feat})
                feat = cur.forward(**samples[-1])[network.warped_output].asnumpy()
            out["cur"] = quantize_graph(syms["cur"], params.args, params.aux, samples, keep)
        return out

    def labels(self, scores) -> np.ndarray:
        if self.original_io:
            return scores.asnumpy().argmax(axis=1)[0].astype(np.uint8)
        return mx.nd.argmax(scores, axis=1).asnumpy()[0].astype(np.uint8)

    def upsampler(self, k1, out_hw, in_hw):
        from accel.runtime.upsample import SeparableUpsampler
        return _HostUpsampler(SeparableUpsampler(k1, out_hw, in_hw))

    def host(self, value) -> np.ndarray:
        return value.asnumpy() if isinstance(value, mx.nd.NDArray) else np.asarray(value)


class _HostUpsampler:
    """SeparableUpsampler (compiled, fused with the argmax) over an NDArray's first image."""

    def __init__(self, up):
        self.up = up

    def labels(self, scores, bias=None) -> np.ndarray:
        host = scores.asnumpy() if isinstance(scores, mx.nd.NDArray) else np.asarray(scores)
        return self.up.labels(host[0], bias)
