"""Streaming inference with graphs bound once and reused for every frame.

`BoundGraph` binds one Symbol for one input shape over parameter NDArrays that several
graphs share (the keyframe and non-key graphs of Accel hold the same weights once).
`VideoSegmenter` runs Accel/DFF over a stream: on a keyframe the keyframe network; on any
other frame the previous frame's features (keyframe or propagated) are warped by the flow
previous -> current frame, hop by hop, and corrected by the update branch. Which frames
are keyframes is the keyframe policy's choice (default: `index % interval == 0`, the
original). `FrameSegmenter` runs a frame-by-frame DeepLab with the same interface.

Both talk to their networks through output names only: `network.state_output`,
`network.score_output(key)`, `network.warped_output`, and `network.upsampled` saying
whether the scores are at input resolution (official graphs) or at stride 16 (the fast CPU
graphs of dff_deeplab/fast_symbol.py, upsampled here on the host, fused with the argmax).
"""
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np

from accel.core.upsample import SeparableUpsampler, separable_upsampling_filter
from accel.symbols.deeplab import SCORES as DEEPLAB_SCORES, deeplab_symbol
from accel.utils.checkpoint import CheckpointError, check_params

logger = logging.getLogger(__name__)

Shape = Tuple[int, ...]

__all__ = ["BoundGraph", "FrameResult", "FrameSegmenter", "VideoSegmenter", "bind_graph",
           "param_shapes", "share_params"]

# Parameters the released checkpoints hold that no Accel graph reads (DESIGN.md: FlowNet's
# `Convolution5_scale` map exists in the checkpoint but Accel never uses it).
KNOWN_UNUSED = ("Convolution5_scale_weight", "Convolution5_scale_bias")


def share_params(arg_params: Mapping[str, mx.nd.NDArray], aux_params: Mapping[str, mx.nd.NDArray],
                 ctx: mx.Context) -> Tuple[Dict[str, mx.nd.NDArray], Dict[str, mx.nd.NDArray]]:
    """Copy parameters once onto `ctx`; every graph bound over them shares these arrays."""
    return ({k: v.as_in_context(ctx) for k, v in arg_params.items()},
            {k: v.as_in_context(ctx) for k, v in aux_params.items()})


class BoundGraph:
    """A Symbol bound once for fixed input shapes; inputs are copied in place per call."""

    def __init__(self, sym: mx.sym.Symbol, input_shapes: Mapping[str, Shape],
                 arg_params: Mapping[str, mx.nd.NDArray], aux_params: Mapping[str, mx.nd.NDArray],
                 ctx: mx.Context, output_names: Optional[Sequence[str]] = None):
        """Parameters must already be checked (`param_shapes` + `check_params`).
        `output_names` renames the outputs (a rewritten graph, e.g. INT8, keeps their order
        but not their names)."""
        arg_shapes, _, _ = sym.infer_shape(**input_shapes)
        args = {}
        for name, shape in zip(sym.list_arguments(), arg_shapes):
            args[name] = (mx.nd.zeros(shape, ctx) if name in input_shapes else arg_params[name])
        aux = {name: aux_params[name] for name in sym.list_auxiliary_states()}
        self.exe = sym.bind(ctx, args=args, aux_states=aux, grad_req="null")
        self.outputs = list(output_names or sym.list_outputs())

    def set_input(self, name: str, value) -> None:
        """Copy a NumPy array or NDArray into the bound input `name` (no allocation)."""
        target = self.exe.arg_dict[name]
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError("input %r has shape %s, the graph was bound for %s"
                             % (name, tuple(value.shape), tuple(target.shape)))
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


def param_shapes(sym: mx.sym.Symbol, input_shapes: Mapping[str, Shape]
                 ) -> Tuple[Dict[str, Shape], Dict[str, Shape]]:
    """(arg name -> shape, aux name -> shape) of a graph's parameters for given inputs."""
    arg_shapes, _, aux_shapes = sym.infer_shape(**input_shapes)
    return ({n: tuple(s) for n, s in zip(sym.list_arguments(), arg_shapes)
             if n not in input_shapes},
            {n: tuple(s) for n, s in zip(sym.list_auxiliary_states(), aux_shapes)})


@dataclass
class FrameResult:
    """What a segmenter returns for one frame."""

    pred: np.ndarray                    # (H, W) uint8 class map of the (padded) input
    is_key: bool
    network_s: float                    # forward + argmax + copy to host, seconds
    extras: Dict[str, np.ndarray] = field(default_factory=dict)  # panel class maps
    observation: Any = None             # what the keyframe policy saw (adaptive policies)


def _pick(sym: mx.sym.Symbol, names: Sequence[str]) -> mx.sym.Symbol:
    internals = sym.get_internals()
    return mx.sym.Group([internals[n] for n in names])


def _host(value) -> np.ndarray:
    """A graph output on the host (NDArray from MXNet, or already NumPy from another
    runtime's graph, e.g. accel.export.onnxruntime.OrtGraph)."""
    return value.asnumpy() if isinstance(value, mx.nd.NDArray) else np.asarray(value)


def _argmax(scores) -> np.ndarray:
    if isinstance(scores, mx.nd.NDArray):
        return mx.nd.argmax(scores, axis=1).asnumpy()[0].astype(np.uint8)
    return np.asarray(scores).argmax(axis=1)[0].astype(np.uint8)


def bind_graph(name: str, sym: mx.sym.Symbol, input_shapes: Mapping[str, Shape],
               arg_params, aux_params, ctx: mx.Context) -> BoundGraph:
    """The default graph factory: the Symbol bound by MXNet (`name` is 'key' or 'cur')."""
    return BoundGraph(sym, input_shapes, arg_params, aux_params, ctx)


class FrameSegmenter:
    """A frame-by-frame DeepLab network (every frame a keyframe): `croped_score` bound once
    per frame shape; the segmenter interface of accel.core.tester (interval, reset, step).
    symbol: a cfg.symbol of accel.symbols.versions.DEEPLAB_VERSIONS."""

    interval = 1

    def __init__(self, num_classes: int, arg_params, aux_params, ctx: mx.Context,
                 source: str = "", symbol: str = "deeplab_resnet_v1_101"):
        self.sym = deeplab_symbol(symbol, num_classes).get_internals()[DEEPLAB_SCORES]
        self.args, self.aux = share_params(arg_params, aux_params, ctx)
        self.ctx, self.source = ctx, source
        self._graph: Optional[BoundGraph] = None

    def reset(self) -> None:
        """No state between frames."""

    def step(self, data: np.ndarray) -> FrameResult:
        """(1, 3, H, W) preprocessed frame -> its (H, W) uint8 class map and timing."""
        if self._graph is None or self._graph.input("data").shape != data.shape:
            shapes = {"data": tuple(data.shape)}
            check_params(param_shapes(self.sym, shapes), self.args, self.aux,
                         allow_extra=True, source=self.source)
            self._graph = BoundGraph(self.sym, shapes, self.args, self.aux, self.ctx)
        t0 = time.perf_counter()
        pred = _argmax(self._graph.forward(data=data)[DEEPLAB_SCORES])
        return FrameResult(pred, True, time.perf_counter() - t0)


class VideoSegmenter:
    """Runs an Accel network over a stream of preprocessed frames (1, 3, H, W).

    network: dff_deeplab.symbol.AccelNetwork (any version, 'dff' included), or
        dff_deeplab.fast_symbol.FastAccelNetwork for the fast CPU graphs, used when the
        checkpoint allows it (every upsampling kernel the same separable filter; otherwise
        the official graphs, logged).
    interval: keyframe interval of the default policy; 1 = the reference DeepLab-101 on
        every frame.
    panels: also return the warped branch (DFF) and update-branch class maps of non-key
        frames, for side-by-side pictures (official graphs only).
    fast: optional check that `network` is the fast one (True raises for an official one).
    original_io: do each frame's host work as the original demo did (a fresh input array,
        the full score map copied to the host, argmax in NumPy), for benchmarks.
    int8_calibration: preprocessed frames (1, 3, H, W) of one shape: run trunks in INT8,
        calibrated on them (accel.core.quantize; fast path only). Its accuracy change is
        not zero: measure it.
    int8_scope: 'key' quantizes the keyframe trunk; 'all' also the flow network and the
        update branch (calibrated by running the float graphs over the frames in order).
    policy: a keyframe policy (accel.core.keyframes); None = `index % interval == 0`.
    allow_extra: accept checkpoint parameters that no graph of this version reads (logged);
        by default they are an error naming each one (e.g. a checkpoint of another version).
    graph_factory: `(name, sym, input_shapes, arg_params, aux_params, ctx) -> graph` with
        `forward(**inputs) -> {output name: array}`, `set_input` and `input`; default
        `bind_graph` (MXNet). accel.cli.demo's `--runtime onnxruntime` passes one that
        exports the graph and runs it in ONNX Runtime.
    """

    def __init__(self, network, arg_params, aux_params, interval: int = 5,
                 ctx: Optional[mx.Context] = None, panels: bool = False, source: str = "",
                 fast: Optional[bool] = None, original_io: bool = False,
                 int8_calibration: Optional[Sequence[np.ndarray]] = None,
                 int8_scope: str = "key", policy=None, allow_extra: bool = False,
                 graph_factory=None):
        if int(interval) < 1:
            raise ValueError("keyframe interval must be >= 1, got %r" % (interval,))
        self.interval = int(interval)
        self.ctx = ctx or mx.cpu()
        self.panels = panels
        self.source = source
        self.original_io = original_io
        self.policy = policy
        self.allow_extra = allow_extra
        self.graph_factory = graph_factory or bind_graph
        if graph_factory is not None and (int8_calibration is not None or original_io):
            raise ValueError("INT8 and the original demo's host work run on MXNet's graphs "
                             "only, not with another graph runtime")
        self.args, self.aux = share_params(arg_params, aux_params, self.ctx)
        if fast and not network.fast:
            raise ValueError("fast=True needs the fast CPU graphs: pass "
                             "dff_deeplab.fast_symbol.FastAccelNetwork(...) as the network")
        self.official = network.official()
        self.upsample_filter = None
        if network.fast:
            if self.ctx.device_type != "cpu":
                raise ValueError("the fast path runs on the CPU; use fast=False on %s" % self.ctx)
            if panels:
                raise ValueError("panels need the reference graphs' per-branch scores; "
                                 "use fast=False with panels")
            self.upsample_filter = separable_upsampling_filter(self.args)
            if self.upsample_filter is None:
                logger.warning("fast path disabled: the checkpoint's upsampling kernels are "
                               "not one shared separable filter")
        self.fast = self.upsample_filter is not None
        if int8_calibration is not None and not self.fast:
            raise ValueError("the INT8 keyframe trunk runs on the fast CPU path, which this "
                             "model/device cannot use (see the messages above)")
        if int8_scope not in ("key", "all"):
            raise ValueError("int8_scope must be 'key' or 'all', got %r" % (int8_scope,))
        if int8_calibration is not None and int8_scope == "all" and len(int8_calibration) < 2:
            raise ValueError("INT8 of every trunk needs at least 2 calibration frames (the "
                             "non-key graph sees pairs)")
        self.int8_calibration = int8_calibration
        self.int8_scope = int8_scope
        self._int8 = None   # {graph: (symbol, args, aux)} once quantized
        self.network = network if self.fast else self.official
        self.score_bias = None  # {is_key: bias or None}, once the parameters are checked
        self._key: Optional[BoundGraph] = None
        self._cur: Optional[BoundGraph] = None
        self._upsampler: Optional[SeparableUpsampler] = None
        self._shape: Optional[Shape] = None
        self.index = 0
        self.age = 0
        self._next_key = True

    # -- graphs -------------------------------------------------------------------------
    def _outputs(self, key: bool) -> Sequence[str]:
        net = self.network
        if key:
            return [net.state_output, net.score_output(True)]
        names = [net.warped_output, net.score_output(False)]
        if self.panels:
            names += list(net.branch_outputs().values())
        if self.policy is not None:
            names += [net.flow_output, net.warped_scores_output]
            if net.update_scores_output():
                names.append(net.update_scores_output())
        return list(dict.fromkeys(names))

    def _input_shapes(self, sym_key, shape: Shape, network=None):
        """Input shapes of the keyframe and non-key graphs for frames of `shape`."""
        name = (network or self.network).state_output
        state = tuple(sym_key.get_internals()[name].infer_shape(data=shape)[1][0])
        return {"data": shape}, {"data": shape, "data_key": shape, "feat_key": state}

    def _check(self, shape: Shape) -> None:
        """Check the checkpoint against the official graphs, before anything is derived."""
        net = self.official
        key_sym = _pick(net.key_test(), [net.state_output, net.score_output(True)])
        cur_sym = net.cur_test()
        key_inputs, cur_inputs = self._input_shapes(key_sym, shape, net)
        try:
            _, out_shapes, _ = cur_sym.infer_shape(**cur_inputs)
        except mx.base.MXNetError as err:
            raise ValueError(_stride_hint(shape, err)) from None
        warped = cur_sym.list_outputs().index(net.warped_output)
        if tuple(out_shapes[warped]) != cur_inputs["feat_key"]:
            raise ValueError(_stride_hint(shape, "flow grid %s != feature grid %s"
                                          % (tuple(out_shapes[warped][2:]),
                                             cur_inputs["feat_key"][2:])))
        key_args, key_aux = param_shapes(key_sym, key_inputs)
        cur_args, cur_aux = param_shapes(cur_sym, cur_inputs)
        want = ({**key_args, **cur_args}, {**key_aux, **cur_aux})
        # Missing or mis-shaped parameters: one error listing each; unused ones: below.
        check_params(want, {k: v for k, v in self.args.items() if k in want[0]},
                     {k: v for k, v in self.aux.items() if k in want[1]}, source=self.source)
        extra = sorted(n for n in self.args if n not in want[0] and n not in KNOWN_UNUSED
                       and not n.startswith("_folded_"))
        extra += sorted("aux:" + n for n in self.aux if n not in want[1])
        if extra and not self.allow_extra:
            raise CheckpointError(
                "%s holds %d parameter(s) that %s does not use: %s; is it a checkpoint of "
                "another version? (accept them with --allow-extra-params)"
                % (self.source or "the checkpoint", len(extra), net.version.method,
                   ", ".join(extra)))
        if extra:
            logger.warning("%s: %d parameter(s) not used by %s (ignored): %s",
                           self.source or "checkpoint", len(extra), net.version.method,
                           ", ".join(extra))

    def _bind(self, shape: Shape) -> None:
        """Bind both graphs for frames of `shape` (once; a new shape rebinds, logged)."""
        if self._shape is not None:
            logger.info("frame shape changed from %s to %s: rebinding", self._shape, shape)
        self._check(shape)
        if self.score_bias is None:
            self.args.update({k: v.as_in_context(self.ctx)
                              for k, v in self.network.derived_params(self.args).items()})
            self.score_bias = {key: self.network.score_bias(self.args, key)
                               for key in (True, False)}
        key_sym = _pick(self.network.key_test(), self._outputs(True))
        cur_sym = _pick(self.network.cur_test(), self._outputs(False))
        key_inputs, cur_inputs = self._input_shapes(key_sym, shape)
        if self.int8_calibration is not None and self._int8 is None:
            self._int8 = self._quantize(key_sym, cur_sym)
        graphs = {}
        for name, sym, inputs in (("key", key_sym, key_inputs), ("cur", cur_sym, cur_inputs)):
            if self._int8 and name in self._int8:
                qsym, qargs, qaux = self._int8[name]
                graphs[name] = BoundGraph(qsym, inputs, qargs, qaux, self.ctx,
                                          output_names=sym.list_outputs())
            else:
                graphs[name] = self.graph_factory(name, sym, inputs, self.args, self.aux,
                                                  self.ctx)
        self._key, self._cur = graphs["key"], graphs["cur"]
        self._shape = shape
        if self.fast:
            self._upsampler = SeparableUpsampler(self.upsample_filter, shape[2:],
                                                 cur_inputs["feat_key"][2:])

    def _quantize(self, key_sym, cur_sym) -> Dict[str, Tuple]:
        """INT8 graphs calibrated on `int8_calibration` ('key', and 'cur' for scope 'all')."""
        from accel.core.quantize import quantize_graph

        keep = self.network.float32_layers
        frames = list(self.int8_calibration)
        out = {"key": quantize_graph(key_sym, self.args, self.aux,
                                     [{"data": f} for f in frames], keep)}
        if self.int8_scope == "all" and (self.interval > 1 or self.policy is not None):
            # The non-key graph's inputs as the stream gives them: float graphs run over the
            # calibration frames in order, the state propagated hop by hop.
            key_inputs, cur_inputs = self._input_shapes(key_sym, tuple(frames[0].shape))
            key = BoundGraph(key_sym, key_inputs, self.args, self.aux, self.ctx)
            cur = BoundGraph(cur_sym, cur_inputs, self.args, self.aux, self.ctx)
            feat = key.forward(data=frames[0])[self.network.state_output].asnumpy()
            samples = []
            for prev, frame in zip(frames, frames[1:]):
                samples.append({"data": frame, "data_key": prev, "feat_key": feat})
                feat = cur.forward(**samples[-1])[self.network.warped_output].asnumpy()
            out["cur"] = quantize_graph(cur_sym, self.args, self.aux, samples, keep)
        return out

    # -- the stream ---------------------------------------------------------------------
    def reset(self) -> None:
        """Start a new sequence: the next frame is a keyframe."""
        self.index = 0
        self.age = 0
        self._next_key = True
        if self.policy is not None:
            self.policy.reset()

    def _is_key(self) -> bool:
        if self.policy is None:
            return self.index % self.interval == 0
        return self.index == 0 or self._next_key

    def step(self, data: np.ndarray, is_key: Optional[bool] = None) -> FrameResult:
        """Segment the next frame. `is_key` defaults to the policy's choice."""
        shape = tuple(data.shape)
        if shape != self._shape:
            self._bind(shape)
            if self.index != 0 and is_key is None and not self._is_key():
                raise ValueError("frame shape changed inside a key interval")
        if is_key is None:
            is_key = self._is_key()
        t0 = time.perf_counter()
        if self.original_io:
            data = mx.nd.array(data, ctx=self.ctx)
        graph = self._key if is_key else self._cur
        out = graph.forward(data=data)
        net = self.network
        feat = out[net.state_output if is_key else net.warped_output]
        scores = out[net.score_output(is_key)]
        if not net.upsampled:
            pred_np = self._upsampler.labels(_host(scores)[0], self.score_bias[is_key])
        elif self.original_io:
            pred_np = scores.asnumpy().argmax(axis=1)[0].astype(np.uint8)
        else:
            pred_np = _argmax(scores)
        network_s = time.perf_counter() - t0
        extras = {}
        if not is_key:
            extras = {panel: _argmax(out[name])
                      for panel, name in net.branch_outputs().items() if name in out}
        # The new state: this frame and its (key or propagated) features.
        self._cur.set_input("data_key", graph.input("data"))
        self._cur.set_input("feat_key", feat)
        self.age = 0 if is_key else self.age + 1
        observation = None
        if self.policy is not None:
            observation = self._observe(out, is_key)
            self._next_key = bool(self.policy.next_is_key(observation))
        self.index += 1
        return FrameResult(pred_np, is_key, network_s, extras, observation)

    def _observe(self, out: Mapping[str, mx.nd.NDArray], is_key: bool):
        """What the policy sees of this frame: flow and branch scores at stride 16."""
        from accel.core.keyframes import FrameObservation

        def host(name):
            return _host(out[name])[0] if name in out else None

        flow = host(self.network.flow_output)
        update = self.network.update_scores_output()
        return FrameObservation(
            index=self.index, is_key=is_key, age=self.age,
            flow=None if is_key or flow is None else flow * 2.5,  # DFF's scaling (DESIGN.md)
            warped_scores=None if is_key else host(self.network.warped_scores_output),
            update_scores=None if is_key or not update else host(update))


def _stride_hint(shape: Shape, err) -> str:
    return ("frames of shape %s do not give the same grid to the flow network and the "
            "ResNet features (%s); pad frames to a multiple of 32 with network.IMAGE_STRIDE: 32"
            % (shape, str(err).strip().splitlines()[-1] if str(err).strip() else err))
