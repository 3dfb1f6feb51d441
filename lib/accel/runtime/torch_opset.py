"""The MXNet operators of the stored graphs, in PyTorch, with MXNet's semantics.

`make_op(node)` turns one node of a symbol JSON (op, name, attrs) into a callable over
tensors. Every attribute is read here: one this table does not know is a GraphError naming
the node, the operator and the attribute, at load time (a wrong result is never an option).
Attributes that only steer MXNet's own kernels (workspace, cudnn_tune, ...) are accepted and
ignored, by name. `param_shapes(node, data_shape)` gives the shapes of a node's parameter
inputs (what MXNet's shape inference does for them), so a checkpoint can be checked against
a graph without MXNet.

Conventions: NCHW tensors, MXNet's defaults where an attribute is absent (BatchNorm's
fix_gamma=True and eps=1e-3, LeakyReLU's slope=0.25, Pooling's 'valid' convention...).
"""
import ast
import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from accel.runtime import torch_ops

__all__ = ["GraphError", "OPERATORS", "make_op", "param_inputs", "aux_inputs",
           "param_shapes"]

Op = Callable[..., torch.Tensor]


class GraphError(ValueError):
    """A graph that this runtime cannot execute exactly (unknown operator or attribute)."""


# Attributes that only tune MXNet's kernels; they change nothing in the result.
_IGNORED = {"workspace", "cudnn_tune", "cudnn_off", "momentum", "__profiler_scope__",
            "grad_scale", "normalization", "use_ignore", "ignore_label", "out_grad",
            "smooth_alpha", "use_global_stats", "num_args"}


class _Attrs:
    """A node's attributes, parsed on demand; `check` refuses any it was not asked for."""

    def __init__(self, node: Dict[str, Any]):
        self.node = node
        self.raw = {k: v for k, v in (node.get("attrs") or {}).items()
                    if not (k.startswith("__") and k.endswith("__"))}

    def where(self) -> str:
        return f"node {self.node['name']!r} (operator {self.node['op']})"

    def get(self, key: str, default: Any = None, kind: Callable = str) -> Any:
        if key not in self.raw:
            return default
        text = self.raw[key]
        try:
            if kind is bool:
                return {"true": True, "1": True, "false": False, "0": False}[text.lower()]
            if kind is tuple:
                value = ast.literal_eval(text)
                return tuple(value) if isinstance(value, (tuple, list)) else (value,)
            if kind is Optional[int]:
                return None if text in ("None", "") else int(text)
            return kind(text)
        except (ValueError, KeyError, SyntaxError):
            raise GraphError(f"{self.where()}: attribute {key}={text!r} is not a valid "
                             f"{getattr(kind, '__name__', kind)}") from None

    def pair(self, key: str, default: int) -> Tuple[int, int]:
        value = self.get(key, (default, default), tuple)
        if len(value) == 1:
            value = value * 2
        if len(value) != 2:
            raise GraphError(f"{self.where()}: attribute {key}={self.raw[key]!r}: only 2-D "
                             f"(H, W) values are supported")
        return int(value[0]), int(value[1])

    def choice(self, key: str, default: str, allowed: Sequence[str]) -> str:
        value = self.get(key, default)
        if value not in allowed:
            raise GraphError(f"{self.where()}: attribute {key}={value!r} is not supported "
                             f"(supported: {', '.join(allowed)})")
        return value

    def check(self, known: Sequence[str]) -> None:
        unknown = sorted(set(self.raw) - set(known) - _IGNORED)
        if unknown:
            raise GraphError(f"{self.where()}: attribute {unknown[0]}={self.raw[unknown[0]]!r}"
                             f" is not supported by the PyTorch runtime")


def _convolution(a: _Attrs) -> Op:
    a.check(["kernel", "stride", "pad", "dilate", "num_filter", "num_group", "no_bias",
             "layout"])
    a.choice("layout", "NCHW", ("NCHW", "None"))
    a.pair("kernel", 1)
    stride, pad, dilate = a.pair("stride", 1), a.pair("pad", 0), a.pair("dilate", 1)
    groups = a.get("num_group", 1, int)
    return lambda x, w, b=None: F.conv2d(x, w, b, stride, pad, dilate, groups)


def _deconvolution(a: _Attrs) -> Op:
    a.check(["kernel", "stride", "pad", "adj", "dilate", "num_filter", "num_group", "no_bias",
             "target_shape", "layout"])
    a.choice("layout", "NCHW", ("NCHW", "None"))
    if a.get("target_shape", (), tuple) not in ((), (0, 0)):
        raise GraphError(f"{a.where()}: attribute target_shape is not supported")
    stride, pad, adj = a.pair("stride", 1), a.pair("pad", 0), a.pair("adj", 0)
    dilate, groups = a.pair("dilate", 1), a.get("num_group", 1, int)
    return lambda x, w, b=None: F.conv_transpose2d(x, w, b, stride, pad, adj, groups, dilate)


def _deformable(a: _Attrs) -> Op:
    a.check(["kernel", "stride", "pad", "dilate", "num_filter", "num_group",
             "num_deformable_group", "no_bias", "layout"])
    a.choice("layout", "NCHW", ("NCHW", "None"))
    stride, pad, dilate = a.pair("stride", 1), a.pair("pad", 0), a.pair("dilate", 1)
    groups, dgroups = a.get("num_group", 1, int), a.get("num_deformable_group", 1, int)
    return lambda x, offset, w, b=None: torch_ops.deformable_conv2d(
        x, offset, w, b, stride, pad, dilate, groups, dgroups)


def _batchnorm(a: _Attrs) -> Op:
    a.check(["eps", "fix_gamma", "axis", "output_mean_var"])
    if a.get("axis", 1, int) != 1 or a.get("output_mean_var", False, bool):
        raise GraphError(f"{a.where()}: only axis=1 without output_mean_var is supported")
    eps, fix_gamma = a.get("eps", 1e-3, float), a.get("fix_gamma", True, bool)

    def batchnorm(x, gamma, beta, mean, var):
        scale, shift = bn_affine(gamma, beta, mean, var, eps, fix_gamma)
        return x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)
    batchnorm.eps, batchnorm.fix_gamma = eps, fix_gamma
    return batchnorm


def bn_affine(gamma, beta, mean, var, eps: float, fix_gamma: bool):
    """(scale, shift) of a BatchNorm with moving statistics: y = x * scale + shift."""
    inv = torch.rsqrt(var + eps)
    scale = inv if fix_gamma else gamma * inv
    return scale, beta - mean * scale


def _activation(a: _Attrs) -> Op:
    a.check(["act_type"])
    kind = a.choice("act_type", "relu", ("relu", "sigmoid", "tanh", "softrelu", "softsign"))
    return {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
            "softrelu": F.softplus, "softsign": F.softsign}[kind]


def _leaky(a: _Attrs) -> Op:
    a.check(["act_type", "slope", "lower_bound", "upper_bound"])
    a.choice("act_type", "leaky", ("leaky",))
    slope = a.get("slope", 0.25, float)
    return lambda x: F.leaky_relu(x, slope)


def _pooling(a: _Attrs) -> Op:
    a.check(["kernel", "stride", "pad", "pool_type", "pooling_convention", "global_pool",
             "count_include_pad", "layout"])
    a.choice("layout", "NCHW", ("NCHW", "None"))
    kind = a.choice("pool_type", "max", ("max", "avg"))
    full = a.choice("pooling_convention", "valid", ("valid", "full")) == "full"
    if a.get("global_pool", False, bool):
        return (lambda x: x.amax((2, 3), keepdim=True)) if kind == "max" else \
            (lambda x: x.mean((2, 3), keepdim=True))
    kernel, pad = a.pair("kernel", 1), a.pair("pad", 0)
    stride = a.pair("stride", 1)
    include_pad = a.get("count_include_pad", True, bool)

    def pool(x):
        extra = _full_extra(x.shape[2:], kernel, stride, pad) if full else (0, 0)
        if any(extra):
            # MXNet 'full': out = ceil((in + 2p - k) / s) + 1, the last window reaching past
            # the padding; pad the bottom/right edge so PyTorch's floor gives that size.
            fill = float("-inf") if kind == "max" else 0.0
            x = F.pad(x, (0, extra[1], 0, extra[0]), value=fill)
        if kind == "max":
            return F.max_pool2d(x, kernel, stride, pad)
        if any(extra) and not include_pad:
            raise GraphError(f"{a.where()}: avg pooling with pooling_convention='full' and "
                             f"count_include_pad=False is not supported")
        return F.avg_pool2d(x, kernel, stride, pad, count_include_pad=include_pad)
    return pool


def _full_extra(size, kernel, stride, pad) -> Tuple[int, int]:
    """Rows/columns to add at the end so that floor-mode pooling gives MXNet's 'full' size."""
    extra = []
    for n, k, s, p in zip(size, kernel, stride, pad):
        want = math.ceil((n + 2 * p - k) / s) + 1
        extra.append(max(0, (want - 1) * s + k - (n + 2 * p)))
    return tuple(extra)


def _crop(a: _Attrs) -> Op:
    a.check(["offset", "h_w", "center_crop"])
    oy, ox = a.pair("offset", 0)
    hw = a.pair("h_w", 0)
    center = a.get("center_crop", False, bool)

    def crop(x, like=None):
        h, w = (like.shape[2], like.shape[3]) if like is not None else hw
        y0, x0 = ((x.shape[2] - h) // 2, (x.shape[3] - w) // 2) if center else (oy, ox)
        if y0 + h > x.shape[2] or x0 + w > x.shape[3]:
            raise GraphError(f"{a.where()}: cannot crop {h}x{w} at ({y0}, {x0}) from "
                             f"{tuple(x.shape)}")
        return x[:, :, y0:y0 + h, x0:x0 + w]
    return crop


def _concat(a: _Attrs) -> Op:
    a.check(["dim"])
    dim = a.get("dim", 1, int)
    return lambda *xs: torch.cat(xs, dim)


def _reshape(a: _Attrs) -> Op:
    a.check(["shape", "reverse"])
    if a.get("reverse", False, bool):
        raise GraphError(f"{a.where()}: attribute reverse=True is not supported")
    spec = a.get("shape", (), tuple)
    if any(int(d) < -1 for d in spec):
        raise GraphError(f"{a.where()}: shape codes below -1 ({a.raw['shape']}) are not "
                         f"supported")

    def reshape(x):
        shape = [x.shape[i] if d == 0 else int(d) for i, d in enumerate(spec)]
        return x.reshape(shape)
    return reshape


def _slice_axis(a: _Attrs) -> Op:
    a.check(["axis", "begin", "end"])
    axis, begin = a.get("axis", 0, int), a.get("begin", 0, int)
    end = a.get("end", None, Optional[int])

    def slice_axis(x):
        n = x.shape[axis]
        first = begin + n if begin < 0 else begin
        last = n if end is None else end + n if end < 0 else end
        return x.narrow(axis, first, last - first)
    return slice_axis


def _softmax_output(a: _Attrs) -> Op:
    a.check(["multi_output", "preserve_shape"])
    multi, keep = a.get("multi_output", False, bool), a.get("preserve_shape", False, bool)

    def softmax(x, label=None):  # at test time the label is not read
        if multi:
            return torch.softmax(x, 1)
        if keep:
            return torch.softmax(x, -1)
        return torch.softmax(x.reshape(x.shape[0], -1), 1).reshape(x.shape)
    return softmax


def _scalar(fn: Callable) -> Callable[[_Attrs], Op]:
    def make(a: _Attrs) -> Op:
        a.check(["scalar", "is_int"])
        s = a.get("scalar", 0.0, float)
        return lambda x: fn(x, s)
    return make


def _binary(fn: Callable) -> Callable[[_Attrs], Op]:
    def make(a: _Attrs) -> Op:
        a.check([])
        return fn
    return make


def _grid_generator(a: _Attrs) -> Op:
    a.check(["transform_type", "target_shape"])
    a.choice("transform_type", "affine", ("warp",))

    def grid(flow):  # normalised [-1, 1] sampling positions, channel 0 = x
        n, _, h, w = flow.shape
        ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1)
        xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w)
        gx = (flow[:, 0] + xs) / ((w - 1) / 2.0) - 1
        gy = (flow[:, 1] + ys) / ((h - 1) / 2.0) - 1
        return torch.stack([gx, gy], 1)
    return grid


def _bilinear_sampler(a: _Attrs) -> Op:
    a.check([])
    return lambda x, grid: F.grid_sample(x, grid.permute(0, 2, 3, 1), "bilinear", "zeros",
                                         align_corners=True)


def _custom(a: _Attrs) -> Op:
    kind = a.raw.get("op_type")
    if kind == "accel_flow_warp":
        a.check(["op_type"])
        return torch_ops.flow_warp
    if kind == "accel_deformable_conv":
        a.check(["op_type", "num_filter", "stride", "pad", "dilate"])
        stride, pad, dilate = (a.get(k, d, int) for k, d in (("stride", 1), ("pad", 0),
                                                            ("dilate", 1)))

        def deformable(x, offset, w, b=None):  # b: a BatchNorm folded in at load
            groups = offset.shape[1] // (2 * w.shape[2] * w.shape[3])
            return torch_ops.deformable_conv2d(x, offset, w, b, stride, pad, dilate, 1,
                                               groups)
        return deformable
    raise GraphError(f"{a.where()}: custom operator op_type={kind!r} is not supported by "
                     f"the PyTorch runtime (supported: accel_flow_warp, accel_deformable_conv)")


OPERATORS: Dict[str, Callable[[_Attrs], Op]] = {
    "Convolution": _convolution,
    "Deconvolution": _deconvolution,
    "_contrib_DeformableConvolution": _deformable,
    "BatchNorm": _batchnorm,
    "Activation": _activation,
    "LeakyReLU": _leaky,
    "Pooling": _pooling,
    "Crop": _crop,
    "Concat": _concat,
    "Reshape": _reshape,
    "slice_axis": _slice_axis,
    "SoftmaxOutput": _softmax_output,
    "elemwise_add": _binary(torch.add),
    "broadcast_add": _binary(torch.add),
    "elemwise_sub": _binary(torch.sub),
    "elemwise_mul": _binary(torch.mul),
    "_plus_scalar": _scalar(lambda x, s: x + s),
    "_minus_scalar": _scalar(lambda x, s: x - s),
    "_mul_scalar": _scalar(lambda x, s: x * s),
    "_div_scalar": _scalar(lambda x, s: x / s),
    "GridGenerator": _grid_generator,
    "BilinearSampler": _bilinear_sampler,
    "Custom": _custom,
}


def make_op(node: Dict[str, Any]) -> Op:
    """The callable of one symbol JSON node; GraphError for anything not supported."""
    maker = OPERATORS.get(node["op"])
    if maker is None:
        raise GraphError(f"node {node['name']!r}: operator {node['op']} is not supported by the"
                         f" PyTorch runtime (supported: {', '.join(sorted(OPERATORS))})")
    return maker(_Attrs(node))


# Input positions that are parameters (by operator), and those that are auxiliary states.
_PARAM_INPUTS = {"Convolution": (1, 2), "Deconvolution": (1, 2), "BatchNorm": (1, 2, 3, 4),
                 "_contrib_DeformableConvolution": (2, 3), "Custom": (2,)}
_AUX_INPUTS = {"BatchNorm": (3, 4)}


def param_inputs(node: Dict[str, Any]) -> Tuple[int, ...]:
    """Input positions of `node` that hold its parameters (weights, BN statistics)."""
    if node["op"] == "Custom" and node.get("attrs", {}).get("op_type") != "accel_deformable_conv":
        return ()
    return _PARAM_INPUTS.get(node["op"], ())


def aux_inputs(node: Dict[str, Any]) -> Tuple[int, ...]:
    """Input positions of `node` that are auxiliary states (BatchNorm moving mean/var)."""
    return _AUX_INPUTS.get(node["op"], ())


def param_shapes(node: Dict[str, Any], data_shape: Sequence[int]) -> List[Tuple[int, ...]]:
    """Shapes of `node`'s parameter inputs (in param_inputs order) for data of `data_shape`,
    as MXNet infers them."""
    a = _Attrs(node)
    op, channels = node["op"], int(data_shape[1])
    if op == "BatchNorm":
        return [(channels,)] * 4
    filters = a.get("num_filter", 0, int)
    kh, kw = a.pair("kernel", 3)
    groups = a.get("num_group", 1, int)
    if op == "Deconvolution":
        return [(channels, filters // groups, kh, kw), (filters,)]
    return [(filters, channels // groups, kh, kw), (filters,)]
