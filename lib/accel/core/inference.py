"""Frame-by-frame inference with executors bound once and reused for every frame.

`BoundGraph` binds one Symbol for one input shape over parameter NDArrays that several
graphs share (the keyframe and non-key graphs of Accel hold the same weights once).
`VideoSegmenter` runs Accel/DFF over a stream: keyframe when `idx % interval == 0`, else the
previous frame's features (keyframe or propagated) are warped by the flow previous -> current
frame, hop by hop, and corrected by the update branch.
"""
import logging
import time
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np

from accel.utils.checkpoint import check_params

logger = logging.getLogger(__name__)

Shape = Tuple[int, ...]


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
    """What the segmenter returns for one frame."""

    pred: np.ndarray                    # (H, W) uint8 class map of the (padded) input
    is_key: bool
    network_s: float                    # forward + argmax + copy to host, seconds
    extras: Dict[str, np.ndarray] = field(default_factory=dict)  # panel class maps


def _pick(sym: mx.sym.Symbol, names: Sequence[str]) -> mx.sym.Symbol:
    internals = sym.get_internals()
    return mx.sym.Group([internals[n] for n in names])


class VideoSegmenter:
    """Runs an `AccelNetwork` over a stream of preprocessed frames (1, 3, H, W).

    network: dff_deeplab.symbol.AccelNetwork (any version, 'dff' included).
    interval: keyframe interval; 1 = the reference DeepLab-101 on every frame.
    panels: also return the warped branch (DFF) and update-branch class maps of non-key
        frames, for side-by-side pictures.
    fast: use the fast CPU graphs (`AccelNetwork(fast=True)`) when the checkpoint allows it
        (every upsampling kernel the same separable filter); otherwise fall back, logged.
    original_io: do each frame's host work as the original demo did (a fresh input array,
        the full score map copied to the host, argmax in NumPy), for benchmarks.
    int8_calibration: preprocessed frames (1, 3, H, W) of one shape: run trunks in INT8,
        calibrated on them (accel.core.quantize; fast path only). Its accuracy change is
        not zero: measure it.
    int8_scope: 'key' quantizes the keyframe trunk; 'all' also the flow network and the
        update branch (calibrated by running the float graphs over the frames in order).
    """

    def __init__(self, network, arg_params, aux_params, interval: int = 5,
                 ctx: Optional[mx.Context] = None, panels: bool = False, source: str = "",
                 fast: bool = False, original_io: bool = False,
                 int8_calibration: Optional[Sequence[np.ndarray]] = None,
                 int8_scope: str = "key"):
        if int(interval) < 1:
            raise ValueError("keyframe interval must be >= 1, got %r" % (interval,))
        self.interval = int(interval)
        self.ctx = ctx or mx.cpu()
        self.panels = panels
        self.source = source
        self.original_io = original_io
        self.args, self.aux = share_params(arg_params, aux_params, self.ctx)
        self.upsample_filter = None
        if fast:
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
        network = network.variant(fast=self.fast)
        self.network = network
        self.args.update({k: v.as_in_context(self.ctx)
                          for k, v in network.derived_params(self.args).items()})
        v = network.version
        self.state_name = network.state_name + "_output"
        self.key_score = network.score_name(key=True) + "_output"
        self.cur_score = network.score_name(key=False) + "_output"
        self.score_bias = {key: network.score_bias(self.args, key) for key in (True, False)}
        cur_outputs = ["warping_feat_output", self.cur_score]
        self.panel_names = {}
        if panels and v.fusion == "score":
            self.panel_names = {"dff": "croped_score_output",
                                "update": v.head_prefix + "croped_score_output"}
        cur_outputs += list(self.panel_names.values())
        self.key_sym = _pick(network.key_test(), [self.state_name, self.key_score])
        self.cur_sym = _pick(network.cur_test(), cur_outputs)
        self._key: Optional[BoundGraph] = None
        self._cur: Optional[BoundGraph] = None
        self._upsampler: Optional[SeparableUpsampler] = None
        self._shape: Optional[Shape] = None
        self.index = 0

    def _bind(self, shape: Shape) -> None:
        """Bind both graphs for frames of `shape` (once; a new shape rebinds, logged)."""
        if self._shape is not None:
            logger.info("frame shape changed from %s to %s: rebinding", self._shape, shape)
        key_inputs, cur_inputs = self._input_shapes(shape)
        feat_shape = cur_inputs["feat_key"]
        try:
            _, out_shapes, _ = self.cur_sym.infer_shape(**cur_inputs)
        except mx.base.MXNetError as err:
            raise ValueError(_stride_hint(shape, err)) from None
        if tuple(out_shapes[0]) != feat_shape:
            raise ValueError(_stride_hint(shape, "flow grid %s != feature grid %s"
                                          % (tuple(out_shapes[0][2:]), feat_shape[2:])))
        # One check over both graphs, so every missing or mis-shaped parameter is listed.
        key_args, key_aux = param_shapes(self.key_sym, key_inputs)
        cur_args, cur_aux = param_shapes(self.cur_sym, cur_inputs)
        check_params(({**key_args, **cur_args}, {**key_aux, **cur_aux}), self.args, self.aux,
                     allow_extra=True, source=self.source)
        if self.int8_calibration is not None and self._int8 is None:
            self._int8 = self._quantize()
        graphs = {}
        for name, sym, inputs in (("key", self.key_sym, key_inputs),
                                  ("cur", self.cur_sym, cur_inputs)):
            if self._int8 and name in self._int8:
                qsym, qargs, qaux = self._int8[name]
                graphs[name] = BoundGraph(qsym, inputs, qargs, qaux, self.ctx,
                                          output_names=sym.list_outputs())
            else:
                graphs[name] = BoundGraph(sym, inputs, self.args, self.aux, self.ctx)
        self._key, self._cur = graphs["key"], graphs["cur"]
        self._shape = shape
        if self.fast:
            self._upsampler = SeparableUpsampler(self.upsample_filter, shape[2:],
                                                 feat_shape[2:])

    def _input_shapes(self, shape: Shape) -> Tuple[Dict[str, Shape], Dict[str, Shape]]:
        """Input shapes of the keyframe and non-key graphs for frames of `shape`."""
        state = tuple(self.key_sym.get_internals()[self.state_name].infer_shape(
            data=shape)[1][0])
        return {"data": shape}, {"data": shape, "data_key": shape, "feat_key": state}

    def _quantize(self) -> Dict[str, Tuple]:
        """INT8 graphs calibrated on `int8_calibration` ('key', and 'cur' for scope 'all')."""
        from accel.core.quantize import quantize_graph

        keep = self.network.float32_layers
        frames = list(self.int8_calibration)
        out = {"key": quantize_graph(self.key_sym, self.args, self.aux,
                                     [{"data": f} for f in frames], keep)}
        if self.int8_scope == "all" and self.interval > 1:
            # The non-key graph's inputs as the stream gives them: float graphs run over the
            # calibration frames in order, the state propagated hop by hop.
            key_inputs, cur_inputs = self._input_shapes(tuple(frames[0].shape))
            key = BoundGraph(self.key_sym, key_inputs, self.args, self.aux, self.ctx)
            cur = BoundGraph(self.cur_sym, cur_inputs, self.args, self.aux, self.ctx)
            feat = key.forward(data=frames[0])[self.state_name].asnumpy()
            samples = []
            for prev, frame in zip(frames, frames[1:]):
                samples.append({"data": frame, "data_key": prev, "feat_key": feat})
                feat = cur.forward(**samples[-1])["warping_feat_output"].asnumpy()
            out["cur"] = quantize_graph(self.cur_sym, self.args, self.aux, samples, keep)
        return out

    def reset(self) -> None:
        """Start a new sequence: the next frame is a keyframe."""
        self.index = 0

    def step(self, data: np.ndarray, is_key: Optional[bool] = None) -> FrameResult:
        """Segment the next frame. `is_key` defaults to `index % interval == 0`."""
        shape = tuple(data.shape)
        if shape != self._shape:
            self._bind(shape)
            if self.index % self.interval != 0 and is_key is None:
                raise ValueError("frame shape changed inside a key interval")
        if is_key is None:
            is_key = self.index % self.interval == 0
        t0 = time.perf_counter()
        extras = {}
        if self.original_io:
            data = mx.nd.array(data, ctx=self.ctx)
        graph = self._key if is_key else self._cur
        out = graph.forward(data=data)
        feat = out[self.state_name if is_key else "warping_feat_output"]
        scores = out[self.key_score if is_key else self.cur_score]
        if self.fast:
            pred_np = self._upsampler.labels(scores.asnumpy()[0], self.score_bias[is_key])
        elif self.original_io:
            pred_np = scores.asnumpy().argmax(axis=1)[0].astype(np.uint8)
        else:
            pred_np = mx.nd.argmax(scores, axis=1).asnumpy()[0].astype(np.uint8)
        network_s = time.perf_counter() - t0
        if not is_key:
            for panel, name in self.panel_names.items():
                extras[panel] = mx.nd.argmax(out[name], axis=1).asnumpy()[0].astype(np.uint8)
        # The new state: this frame and its (key or propagated) features.
        self._cur.set_input("data_key", self._key.exe.arg_dict["data"] if is_key
                            else self._cur.exe.arg_dict["data"])
        self._cur.set_input("feat_key", feat)
        self.index += 1
        return FrameResult(pred_np, is_key, network_s, extras)


def separable_upsampling_filter(arg_params: Mapping[str, mx.nd.NDArray]) -> Optional[np.ndarray]:
    """The 1-D filter k if every `*upsampling_weight` (the heads' fixed x16 kernels, not the
    learned `feat_upsampling`) is outer(k, k) for every class, else None."""
    kernels = [v.asnumpy() for k, v in arg_params.items()
               if k.endswith("upsampling_weight") and not k.endswith("feat_upsampling_weight")]
    if not kernels:
        return None
    first = kernels[0][0, 0].astype(np.float64)
    total = first.sum()
    if total <= 0:
        return None
    k1 = first.sum(axis=1) / np.sqrt(total)
    if not np.allclose(np.outer(k1, k1), first, rtol=0, atol=1e-7):
        return None
    if any(not np.array_equal(kern, np.broadcast_to(kernels[0][0, 0], kern.shape))
           for kern in kernels):
        return None
    return k1.astype(np.float32)


def upsampling_matrix(k1: np.ndarray, n_out: int, n_in: int, stride: int = 16,
                      offset: int = 8) -> np.ndarray:
    """(n_out, n_in) matrix A with A @ s equal, along one axis, to the transposed convolution
    (kernel len(k1), `stride`) of s cropped at `offset` to n_out samples."""
    a = np.zeros((n_out, n_in), np.float32)
    for i in range(n_in):
        for y in range(max(0, stride * i - offset), min(n_out, stride * i - offset + len(k1))):
            a[y, i] = k1[y + offset - stride * i]
    return a


class SeparableUpsampler:
    """The heads' fixed x16 `upsampling` + `croped_score`, for a kernel outer(k1, k1) shared
    by every class, applied on the host to stride-16 scores (C, h, w):
    up(s)_c = R @ s_c @ C with R (H, h), C (w, W) from `upsampling_matrix`.

    `labels` fuses it with the argmax (accel.cython.upsample_cy): each output row mixes a
    few rows of s_c @ C, so the (C, H, W) score volume is never built; `scores` builds it.
    `bias` (C,), when given, is added after upsampling (the score-level fusion's bias).
    """

    def __init__(self, k1: np.ndarray, out_hw: Tuple[int, int], in_hw: Tuple[int, int]):
        from accel.cython import upsample_cy  # the fast path needs the compiled kernels
        self._kernel = upsample_cy.upsample_argmax
        self.out_hw, self.in_hw = tuple(out_hw), tuple(in_hw)
        self.rows = upsampling_matrix(k1, out_hw[0], in_hw[0])
        self.cols = np.ascontiguousarray(upsampling_matrix(k1, out_hw[1], in_hw[1]).T)
        taps = max(1, int((self.rows != 0).sum(axis=1).max()))
        self.row_index = np.zeros((out_hw[0], taps), np.int32)
        self.row_weight = np.zeros((out_hw[0], taps), np.float32)
        for y, row in enumerate(self.rows):
            nz = np.flatnonzero(row)
            self.row_index[y, :nz.size], self.row_weight[y, :nz.size] = nz, row[nz]

    def _columns(self, low: np.ndarray) -> np.ndarray:
        low = np.asarray(low, np.float32)
        if low.ndim != 3 or low.shape[1:] != self.in_hw:
            raise ValueError("expected scores (C, %d, %d), got %s" % (self.in_hw + (low.shape,)))
        c, h, _ = low.shape
        return (low.reshape(c * h, -1) @ self.cols).reshape(c, h, -1)

    @staticmethod
    def _bias(bias, num_classes: int) -> np.ndarray:
        if bias is None:
            return np.zeros(num_classes, np.float32)
        return np.ascontiguousarray(np.asarray(bias, np.float32).reshape(num_classes))

    def scores(self, low: np.ndarray, bias=None) -> np.ndarray:
        """Upsampled scores (C, H, W) float32."""
        cols = self._columns(low)
        out = np.einsum("yh,chx->cyx", self.rows, cols, optimize=True)
        return out + self._bias(bias, low.shape[0])[:, None, None]

    def labels(self, low: np.ndarray, bias=None) -> np.ndarray:
        """argmax over classes of `scores(low, bias)`, (H, W) uint8, computed row by row."""
        cols = self._columns(low)
        labels = np.empty(self.out_hw, np.uint8)
        self._kernel(cols, self.row_index, self.row_weight, self._bias(bias, low.shape[0]),
                     labels)
        return labels


def _stride_hint(shape: Shape, err) -> str:
    return ("frames of shape %s do not give the same grid to the flow network and the "
            "ResNet features (%s); pad frames to a multiple of 32 with network.IMAGE_STRIDE: 32"
            % (shape, str(err).strip().splitlines()[-1] if str(err).strip() else err))
