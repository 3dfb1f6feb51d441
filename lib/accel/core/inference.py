"""Streaming inference over any runtime: `VideoSegmenter` (Accel/DFF) and `FrameSegmenter`.

`VideoSegmenter` runs Accel/DFF over a stream: on a keyframe the keyframe network; on any
other frame the previous frame's features (keyframe or propagated) are warped by the flow
previous -> current frame, hop by hop, and corrected by the update branch. Which frames
are keyframes is the keyframe policy's choice (default: `index % interval == 0`, the
original). `FrameSegmenter` runs a frame-by-frame DeepLab with the same interface.

Both talk to their network through the contract of accel.networks (output names, and
whether the scores are at input resolution: the official graphs; or at stride 16: the fast
graphs, whose upsampling + argmax the runtime does) and to the graphs through the runtime
interface of accel.runtime (MXNet by default; ONNX Runtime or PyTorch), so one loop serves
every runtime. Nothing here imports MXNet unless the MXNet runtime is used.
"""
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from accel.networks import DeepLabGraphs, Network
from accel.runtime import Graph, Runtime, ShapeError
from accel.runtime.upsample import separable_upsampling_filter
from accel.symbols.versions import FLOW_SCALE
from accel.utils.checkpoint import CheckpointError, check_params

logger = logging.getLogger(__name__)

Shape = Tuple[int, ...]

__all__ = ["FrameObservation", "FrameResult", "FrameSegmenter", "VideoSegmenter",
           "default_runtime"]

# Parameters the released checkpoints hold that no Accel graph reads (docs/design.md: FlowNet's
# `Convolution5_scale` map exists in the checkpoint but Accel never uses it).
KNOWN_UNUSED = ("Convolution5_scale_weight", "Convolution5_scale_bias")


def default_runtime(runtime: Optional[Runtime], ctx: Any = None, original_io: bool = False
                    ) -> Runtime:
    """`runtime`, or MXNet on `ctx` (the CPU by default) when None."""
    if runtime is not None:
        if ctx is not None or original_io:
            raise ValueError("ctx and original_io are the MXNet runtime's options; give them "
                             "to accel.runtime.make_runtime instead of a runtime")
        return runtime
    from accel.runtime.mxnet_runtime import MXNetRuntime
    return MXNetRuntime(ctx, original_io=original_io)


@dataclass
class FrameObservation:
    """What one frame produced, as a keyframe policy (accel.keyframes) sees it.

    index: position in the stream since the segmenter's reset (0 = the first frame).
    is_key: whether this frame ran the keyframe network.
    age: frames since the last keyframe (0 on a keyframe).
    flow: (2, h, w) float32 flow previous -> current frame on the feature grid, in feature
        pixels (channel 0 = x; the raw flow times FLOW_SCALE); None on keyframes.
    warped_scores: (C, h, w) stride-16 scores of the propagated branch; None on keyframes.
    update_scores: (C, h, w) stride-16 scores of the update branch; None on keyframes and
        for versions without one (dff, 101).
    source_age: frames of the source since the last keyframe, the frames a live source
        skipped included (accel.live); None when every frame is segmented (then it is `age`).
    """

    index: int
    is_key: bool
    age: int
    flow: Optional[np.ndarray] = None
    warped_scores: Optional[np.ndarray] = None
    update_scores: Optional[np.ndarray] = None
    source_age: Optional[int] = None

    @property
    def gap(self) -> int:
        """Frames of the source from the last keyframe to the next frame (at least)."""
        return (self.age if self.source_age is None else self.source_age) + 1


@dataclass
class FrameResult:
    """What a segmenter returns for one frame."""

    pred: np.ndarray                    # (H, W) uint8 class map of the (padded) input
    is_key: bool
    network_s: float                    # forward + argmax + copy to host, seconds
    extras: Dict[str, np.ndarray] = field(default_factory=dict)  # panel class maps
    observation: Optional[FrameObservation] = None  # what the keyframe policy saw


class FrameSegmenter:
    """A frame-by-frame DeepLab network (every frame a keyframe): `croped_score` bound once
    per frame shape; the segmenter interface of accel.core.tester (interval, reset, step).
    symbol: a cfg.symbol of accel.symbols.versions.DEEPLAB_VERSIONS."""

    interval = 1

    def __init__(self, num_classes: int, arg_params, aux_params, ctx: Any = None,
                 source: str = "", symbol: str = "deeplab_resnet_v1_101",
                 runtime: Optional[Runtime] = None, allow_extra: bool = True):
        self.network = DeepLabGraphs(symbol, num_classes)
        self.runtime = default_runtime(runtime, ctx)
        self.params = self.runtime.share(arg_params, aux_params)
        self.source, self.allow_extra = source, allow_extra
        self._graph: Optional[Graph] = None
        self._shape: Optional[Shape] = None

    def reset(self) -> None:
        """No state between frames."""

    def step(self, data: np.ndarray) -> FrameResult:
        """(1, 3, H, W) preprocessed frame -> its (H, W) uint8 class map and timing."""
        shape = tuple(data.shape)
        if self._graph is None or self._shape != shape:
            shapes = {"data": shape}
            outputs = [self.network.score_output(True)]
            args, aux, _ = self.runtime.shapes(self.network, "key", shapes, outputs)
            check_params((args, aux), self.params.args, self.params.aux,
                         allow_extra=self.allow_extra, source=self.source)
            self._graph = self.runtime.bind(self.network, {"key": (outputs, shapes)},
                                            self.params)["key"]
            self._shape = shape
        t0 = time.perf_counter()
        out = self._graph.forward(data=data)
        pred = self.runtime.labels(out[self.network.score_output(True)])
        return FrameResult(pred, True, time.perf_counter() - t0)


class VideoSegmenter:
    """Runs an Accel network over a stream of preprocessed frames (1, 3, H, W).

    network: an accel.networks.Network: AccelGraphs (official graphs, any version, 'dff'
        included) or FastAccelGraphs (the fast rewrites), used when the checkpoint and the
        runtime allow it (every upsampling kernel the same separable filter; otherwise the
        official graphs, logged). The Symbol builders of dff_deeplab/ satisfy it too.
    interval: keyframe interval of the default policy; 1 = the reference DeepLab-101 on
        every frame.
    runtime: an accel.runtime.Runtime (make_runtime('torch', ...), ...); default MXNet on
        `ctx` with `original_io` (do each frame's host work as the original demo did, for
        benchmarks).
    panels: also return the warped branch (DFF) and update-branch class maps of non-key
        frames, for side-by-side pictures (official graphs only).
    fast: optional check that `network` is the fast one (True raises for an official one).
    int8_calibration: preprocessed frames (1, 3, H, W) of one shape: run trunks in INT8,
        calibrated on them (accel.runtime.quantize; MXNet fast path only). Its accuracy change
        is not zero: measure it.
    int8_scope: 'key' quantizes the keyframe trunk; 'all' also the flow network and the
        update branch (calibrated by running the float graphs over the frames in order).
    policy: a keyframe policy (accel.keyframes): `reset()`, `next_is_key(FrameObservation)`;
        None = `index % interval == 0`.
    allow_extra: accept checkpoint parameters that no graph of this version reads (logged);
        by default they are an error naming each one (e.g. a checkpoint of another version).
    """

    def __init__(self, network: Network, arg_params, aux_params, interval: int = 5,
                 ctx: Any = None, panels: bool = False, source: str = "",
                 fast: Optional[bool] = None, original_io: bool = False,
                 int8_calibration: Optional[Sequence[np.ndarray]] = None,
                 int8_scope: str = "key", policy=None, allow_extra: bool = False,
                 runtime: Optional[Runtime] = None):
        if int(interval) < 1:
            raise ValueError("keyframe interval must be >= 1, got %r" % (interval,))
        self.interval = int(interval)
        self.runtime = default_runtime(runtime, ctx, original_io)
        self.panels = panels
        self.source = source
        self.policy = policy
        self.allow_extra = allow_extra
        if fast and not network.fast:
            raise ValueError("fast=True needs the fast graphs: pass "
                             "accel.networks.FastAccelGraphs(...) as the network")
        self.official = network.official()
        self.upsample_filter = None
        if network.fast:
            if not self.runtime.fast_ok:
                raise ValueError("the fast path runs on the CPU; use fast=False on %s"
                                 % self.runtime.device)
            if panels:
                raise ValueError("panels need the reference graphs' per-branch scores; "
                                 "use fast=False with panels")
            self.upsample_filter = separable_upsampling_filter(arg_params)
            if self.upsample_filter is None:
                logger.warning("fast path disabled: the checkpoint's upsampling kernels are "
                               "not one shared separable filter")
        self.fast = self.upsample_filter is not None
        if int8_calibration is not None and not (self.fast and self.runtime.name == "mxnet"):
            raise ValueError("the INT8 keyframe trunk runs on MXNet's fast CPU path, which "
                             "this model/device/runtime cannot use (see the messages above)")
        if int8_scope not in ("key", "all"):
            raise ValueError("int8_scope must be 'key' or 'all', got %r" % (int8_scope,))
        if int8_calibration is not None and int8_scope == "all" and len(int8_calibration) < 2:
            raise ValueError("INT8 of every trunk needs at least 2 calibration frames (the "
                             "non-key graph sees pairs)")
        self.int8_calibration = int8_calibration
        self.int8_scope = int8_scope
        self.network = network if self.fast else self.official
        self.params = self.runtime.share(arg_params, aux_params)
        self.score_bias = None  # {is_key: bias or None}, once the parameters are checked
        self._key: Optional[Graph] = None
        self._cur: Optional[Graph] = None
        self._upsampler = None
        self._shape: Optional[Shape] = None
        self.index = 0
        self.age = 0
        self._next_key = True

    # -- graphs -------------------------------------------------------------------------
    @property
    def key_graph(self) -> Optional[Graph]:
        """The bound keyframe graph (None before the first frame)."""
        return self._key

    @property
    def cur_graph(self) -> Optional[Graph]:
        """The bound non-key graph (None before the first frame)."""
        return self._cur

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

    def _input_shapes(self, shape: Shape, network: Network):
        """Input shapes of the keyframe and non-key graphs for frames of `shape`."""
        _, _, outs = self.runtime.shapes(network, "key", {"data": shape},
                                         [network.state_output])
        state = outs[network.state_output]
        return {"data": shape}, {"data": shape, "data_key": shape, "feat_key": state}

    def _check(self, shape: Shape) -> None:
        """Check the checkpoint against the official graphs, before anything is derived."""
        net = self.official
        key_outputs = [net.state_output, net.score_output(True)]
        try:
            key_inputs, cur_inputs = self._input_shapes(shape, net)
            key_args, key_aux, _ = self.runtime.shapes(net, "key", key_inputs, key_outputs)
            cur_args, cur_aux, out_shapes = self.runtime.shapes(net, "cur", cur_inputs)
        except ShapeError as err:
            raise ValueError(_stride_hint(shape, err)) from None
        if tuple(out_shapes[net.warped_output]) != cur_inputs["feat_key"]:
            raise ValueError(_stride_hint(shape, "flow grid %s != feature grid %s"
                                          % (tuple(out_shapes[net.warped_output][2:]),
                                             cur_inputs["feat_key"][2:])))
        want = ({**key_args, **cur_args}, {**key_aux, **cur_aux})
        args, aux = self.params.args, self.params.aux
        # Missing or mis-shaped parameters: one error listing each; unused ones: below.
        check_params(want, {k: v for k, v in args.items() if k in want[0]},
                     {k: v for k, v in aux.items() if k in want[1]}, source=self.source)
        extra = sorted(n for n in args if n not in want[0] and n not in KNOWN_UNUSED
                       and not n.startswith("_folded_"))
        extra += sorted("aux:" + n for n in aux if n not in want[1])
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
            host = self.params.args
            self.runtime.add_params(self.params, self.network.derived_params(
                {k: host[k] for k in self.network.required_params()}))
            self.score_bias = {key: self.network.score_bias(host, key) for key in (True, False)}
        key_inputs, cur_inputs = self._input_shapes(shape, self.network)
        int8 = None
        if self.int8_calibration is not None:
            frames = list(self.int8_calibration)
            int8 = {"key": frames}
            if self.int8_scope == "all" and (self.interval > 1 or self.policy is not None):
                int8["cur"] = frames
        graphs = self.runtime.bind(self.network, {"key": (self._outputs(True), key_inputs),
                                                  "cur": (self._outputs(False), cur_inputs)},
                                   self.params, int8=int8)
        self._key, self._cur = graphs["key"], graphs["cur"]
        self._shape = shape
        if self.fast:
            self._upsampler = self.runtime.upsampler(self.upsample_filter, shape[2:],
                                                     cur_inputs["feat_key"][2:])

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
        graph = self._key if is_key else self._cur
        out = graph.forward(data=data)
        net = self.network
        feat = out[net.state_output if is_key else net.warped_output]
        scores = out[net.score_output(is_key)]
        if not net.upsampled:
            pred_np = self._upsampler.labels(scores, self.score_bias[is_key])
        else:
            pred_np = self.runtime.labels(scores)
        network_s = time.perf_counter() - t0
        extras = {}
        if not is_key:
            extras = {panel: self.runtime.labels(out[name])
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

    def _observe(self, out: Mapping[str, Any], is_key: bool):
        """What the policy sees of this frame: flow and branch scores at stride 16."""
        def host(name):
            return self.runtime.host(out[name])[0] if name in out else None

        flow = host(self.network.flow_output)
        update = self.network.update_scores_output()
        return FrameObservation(
            index=self.index, is_key=is_key, age=self.age,
            flow=None if is_key or flow is None else flow * FLOW_SCALE,
            warped_scores=None if is_key else host(self.network.warped_scores_output),
            update_scores=None if is_key or not update else host(update))


def _stride_hint(shape: Shape, err) -> str:
    return ("frames of shape %s do not give the same grid to the flow network and the "
            "ResNet features (%s); pad frames to a multiple of 32 with network.IMAGE_STRIDE: 32"
            % (shape, str(err).strip().splitlines()[-1] if str(err).strip() else err))
