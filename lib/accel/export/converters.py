"""The converters that MXNet's ONNX exporter lacks, for the ops that make Accel
(accel.export.onnx installs them for the duration of one export).

* the warp (the official `GridGenerator('warp')` + `BilinearSampler` and our
  `accel_flow_warp`) as ONNX `GridSample` (bilinear, zeros outside, align_corners: MXNet
  normalises (x + flow_x) / ((W - 1) / 2) - 1);
* the deformable convolution (`_contrib_DeformableConvolution`, our
  `accel_deformable_conv`) either as 'sampling' (each of the kh*kw taps a bilinear sample
  at its shifted position, one GridSample per deformable group, then one 1x1 convolution
  over C*kh*kw channels: the operator's definition, exact up to rounding) or as
  'deformconv' (ONNX `DeformConv`, opset 19);
* BatchNorm honouring `fix_gamma` (MXNet's converter ignores it; the zoo ResNets'
  `bn_data` has it), SoftmaxOutput over channels, and parameters as raw initializers.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["DEFORMABLE_MODES", "CUSTOM_WARP", "CUSTOM_DEFORMABLE", "UnsupportedOpError",
           "our_converters"]

Shape = Tuple[int, ...]

DEFORMABLE_MODES = ("sampling", "deformconv")
# Custom ops of accel.operators that have a converter here.
CUSTOM_WARP = "accel_flow_warp"
CUSTOM_DEFORMABLE = "accel_deformable_conv"


class UnsupportedOpError(ValueError):
    """The graph holds an op that no converter (MXNet's or ours) turns into ONNX."""


# -- small helpers for the converters ---------------------------------------------------------

def _inputs(node, kwargs) -> Tuple[str, List[str], Dict[str, str]]:
    lookup = kwargs["outputs_lookup"]
    return (node["name"], [lookup[i[0]][i[1]].name for i in node["inputs"]],
            node.get("attrs", {}))


def _ints(text: str, default=()) -> Tuple[int, ...]:
    text = (text or "").strip()
    if not text or text == "()":
        return tuple(default)
    return tuple(int(v) for v in text.strip("()[] ").split(",") if v.strip())


def _flag(text, default: bool) -> bool:
    if text is None:
        return default
    return str(text).strip() in ("True", "true", "1")


class _Builder:
    """Collects the nodes and constants of one converted layer; names are `<layer>__<x>`."""

    def __init__(self, name: str, kwargs):
        self.name = name
        self.initializer = kwargs["initializer"]
        self.nodes: List[onnx.NodeProto] = []
        self._count = 0

    def const(self, value, dtype=np.int64) -> str:
        self._count += 1
        name = "%s__const%d" % (self.name, self._count)
        self.initializer.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], output: Optional[str] = None,
           **attrs) -> str:
        self._count += 1
        out = output or "%s__%s%d" % (self.name, op_type.lower(), self._count)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out],
                                           name=out if output is None else self.name, **attrs))
        return out

    def dims(self, tensor: str, begin: int, end: int) -> str:
        """Dimensions begin..end-1 of `tensor`'s shape, int64 1-D."""
        shape = self.op("Shape", [tensor])
        return self.op("Slice", [shape, self.const([begin]), self.const([end])])

    def arange(self, size: str, shape: Sequence[int], scale: float = 1.0,
               shift: float = 0.0) -> str:
        """float32 (0..size-1) * scale + shift, reshaped to `shape` (one -1)."""
        count = self.op("Squeeze", [size])
        idx = self.op("Range", [self.const(0), count, self.const(1)])
        value = self.op("Cast", [idx], to=TensorProto.FLOAT)
        if scale != 1.0:
            value = self.op("Mul", [value, self.const(scale, np.float32)])
        if shift != 0.0:
            value = self.op("Add", [value, self.const(shift, np.float32)])
        return self.op("Reshape", [value, self.const(shape)])

    def normalise(self, coord: str, size: str) -> str:
        """Pixel coordinate -> GridSample's [-1, 1] with align_corners: c / ((n-1)/2) - 1."""
        half = self.op("Div", [self.op("Sub", [self.op("Cast", [size], to=TensorProto.FLOAT),
                                               self.const(1.0, np.float32)]),
                               self.const(2.0, np.float32)])
        return self.op("Sub", [self.op("Div", [coord, half]), self.const(1.0, np.float32)])


# -- converters -------------------------------------------------------------------------------

def _null_converter(weights_out: Optional[Dict[str, np.ndarray]]):
    def convert(node, **kwargs):
        """A parameter becomes an initializer (set aside in `weights_out` when given: the
        graph is checked without them, then they are attached); an input a graph input."""
        name = node["name"]
        if kwargs["is_input"]:
            dtype = onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[kwargs["in_type"]]
            return [helper.make_tensor_value_info(name, kwargs["in_type"],
                                                  kwargs["in_shape"])], (dtype,)
        array = np.ascontiguousarray(kwargs["weights"][name])
        if weights_out is None:
            kwargs["initializer"].append(numpy_helper.from_array(array, name))
        else:
            weights_out[name] = array
        # The exporter expects a ValueInfo for it; `_finish` keeps only real inputs.
        return [helper.make_tensor_value_info(
            name, onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[array.dtype], array.shape)], \
            (array.dtype,)
    return convert


def _convert_batchnorm(node, **kwargs):
    """BatchNormalization with the moving statistics; gamma = 1 when fix_gamma (MXNet's
    default when the attribute is absent)."""
    name, inputs, attrs = _inputs(node, kwargs)
    if int(attrs.get("axis", 1)) != 1:
        raise UnsupportedOpError("BatchNorm %r: axis %s, only axis 1 exports"
                                 % (name, attrs.get("axis")))
    b = _Builder(name, kwargs)
    if _flag(attrs.get("fix_gamma"), True):
        gamma = kwargs["weights"].get(node_input_name(node, kwargs, 1))
        channels = gamma.shape if gamma is not None else None
        if channels is None:
            raise UnsupportedOpError("BatchNorm %r: fix_gamma needs gamma as a parameter" % name)
        inputs = [inputs[0], b.const(np.ones(channels, np.float32), np.float32)] + inputs[2:]
    b.op("BatchNormalization", inputs, name, epsilon=float(attrs.get("eps", 1e-3)),
         momentum=float(attrs.get("momentum", 0.9)))
    return b.nodes


def _convert_softmax_output(node, **kwargs):
    """SoftmaxOutput at inference: softmax over channels (axis 1) with multi_output, as
    MXNet computes it; MXNet's converter flattens C*H*W into one softmax."""
    name, inputs, attrs = _inputs(node, kwargs)
    b = _Builder(name, kwargs)
    if _flag(attrs.get("multi_output"), False) or _flag(attrs.get("preserve_shape"), False):
        axis = 1 if _flag(attrs.get("multi_output"), False) else -1
        b.op("Softmax", [inputs[0]], name, axis=axis)
        return b.nodes
    shape = b.op("Shape", [inputs[0]])
    flat = b.op("Softmax", [b.op("Flatten", [inputs[0]], axis=1)], axis=1)
    b.op("Reshape", [flat, shape], name)
    return b.nodes


def node_input_name(node, kwargs, index: int) -> str:
    """MXNet name of the node feeding input `index` (the key of its weights entry)."""
    return kwargs["mx_graph"][node["inputs"][index][0]]["name"]


def _warp_grid(b: _Builder, flow: str, feat: str) -> str:
    """(N, H, W, 2) GridSample grid sampling `feat` at (x + flow_x, y + flow_y)."""
    height, width = b.dims(feat, 2, 3), b.dims(feat, 3, 4)
    fx = b.op("Slice", [flow, b.const([0]), b.const([1]), b.const([1])])
    fy = b.op("Slice", [flow, b.const([1]), b.const([2]), b.const([1])])
    gx = b.normalise(b.op("Add", [fx, b.arange(b.dims(flow, 3, 4), [1, 1, 1, -1])]), width)
    gy = b.normalise(b.op("Add", [fy, b.arange(b.dims(flow, 2, 3), [1, 1, -1, 1])]), height)
    return b.op("Transpose", [b.op("Concat", [gx, gy], axis=1)], perm=[0, 2, 3, 1])


def _grid_sample(b: _Builder, data: str, grid: str, output: Optional[str] = None) -> str:
    return b.op("GridSample", [data, grid], output, mode="bilinear", padding_mode="zeros",
                align_corners=1)


def _convert_grid_generator(node, **kwargs):
    """GridGenerator(warp): the normalised sampling grid (N, 2, H, W), x then y."""
    name, (flow,), attrs = _inputs(node, kwargs)
    if attrs.get("transform_type") != "warp":
        raise UnsupportedOpError("GridGenerator %r: transform_type %r, only 'warp' exports"
                                 % (name, attrs.get("transform_type")))
    b = _Builder(name, kwargs)
    grid = _warp_grid(b, flow, flow)
    b.op("Transpose", [grid], name, perm=[0, 3, 1, 2])
    return b.nodes


def _convert_bilinear_sampler(node, **kwargs):
    """BilinearSampler(data, grid (N, 2, H, W)) = GridSample with the grid channels last."""
    name, (data, grid), _ = _inputs(node, kwargs)
    b = _Builder(name, kwargs)
    _grid_sample(b, data, b.op("Transpose", [grid], perm=[0, 2, 3, 1]), name)
    return b.nodes


def _deformable(node, kwargs, mode: str, data: str, offset: str, weight: str,
                bias: Optional[str], stride: Shape, pad: Shape, dilate: Shape,
                groups: int, num_group: int):
    name = node["name"]
    w = kwargs["weights"].get(node_input_name(node, kwargs, 2))
    if w is None:
        raise UnsupportedOpError("deformable convolution %r: its weight must be a parameter"
                                 % name)
    out_c, in_per_group, kh, kw = w.shape
    channels = in_per_group * num_group
    if channels % groups:
        raise UnsupportedOpError("deformable convolution %r: %d deformable groups do not "
                                 "divide %d channels" % (name, groups, channels))
    b = _Builder(name, kwargs)
    taps = kh * kw
    out_h, out_w = b.dims(offset, 2, 3), b.dims(offset, 3, 4)
    # offset (N, G * taps * 2, Ho, Wo), (dy, dx) per tap -> (N*G, taps, 2, Ho, Wo)
    off = b.op("Reshape", [offset, b.op("Concat", [b.const([-1, taps, 2]), out_h, out_w],
                                         axis=0)])
    ky = np.array([i * dilate[0] for i in range(kh) for _ in range(kw)], np.float32)
    kx = np.array([j * dilate[1] for _ in range(kh) for j in range(kw)], np.float32)
    base_y = b.op("Add", [b.arange(out_h, [1, -1, 1], stride[0], -pad[0]),
                          b.const(ky.reshape(taps, 1, 1), np.float32)])
    base_x = b.op("Add", [b.arange(out_w, [1, 1, -1], stride[1], -pad[1]),
                          b.const(kx.reshape(taps, 1, 1), np.float32)])
    height, width = b.dims(data, 2, 3), b.dims(data, 3, 4)
    # Sample positions in pixels (N*G, taps, Ho, Wo), moved to where ONNX's bilinear rule
    # (corners outside are zero) gives MXNet's DCN v1 rule: zero unless 0 <= y < H and
    # 0 <= x < W, and clamped onto the last row/column in [H-1, H) / [W-1, W).
    py = _dcn_v1_position(b, b.op("Add", [b.op("Gather", [off, b.const(0)], axis=2), base_y]),
                          height)
    px = _dcn_v1_position(b, b.op("Add", [b.op("Gather", [off, b.const(1)], axis=2), base_x]),
                          width)
    if mode == "deformconv":
        moved = b.op("Concat", [b.op("Unsqueeze", [b.op("Sub", [py, base_y]), b.const([2])]),
                                b.op("Unsqueeze", [b.op("Sub", [px, base_x]), b.const([2])])],
                     axis=2)
        moved = b.op("Reshape", [moved, b.op("Concat", [b.const([-1, groups * taps * 2]),
                                                        out_h, out_w], axis=0)])
        b.op("DeformConv", [data, weight, moved] + ([bias] if bias else []), name,
             kernel_shape=[kh, kw], strides=list(stride), pads=list(pad) * 2,
             dilations=list(dilate), group=num_group, offset_group=groups)
        return b.nodes
    grid = b.op("Concat", [b.op("Unsqueeze", [b.normalise(px, width), b.const([-1])]),
                           b.op("Unsqueeze", [b.normalise(py, height), b.const([-1])])],
                axis=-1)
    grid = b.op("Reshape", [grid, b.op("Concat", [b.const([0, -1]), out_w, b.const([2])],
                                       axis=0)])          # (N*G, taps*Ho, Wo, 2)
    per_group = b.op("Reshape", [data, b.op("Concat", [b.const([-1, channels // groups]),
                                                       b.dims(data, 2, 4)], axis=0)])
    taps_map = _grid_sample(b, per_group, grid)            # (N*G, C/G, taps*Ho, Wo)
    columns = b.op("Reshape", [taps_map, b.op("Concat", [b.const([-1, channels * taps]),
                                                         out_h, out_w], axis=0)])
    kernel = b.op("Reshape", [weight, b.const([out_c, in_per_group * taps, 1, 1])])
    b.op("Conv", [columns, kernel] + ([bias] if bias else []), name, kernel_shape=[1, 1],
         group=num_group)
    return b.nodes


def _dcn_v1_position(b: _Builder, pos: str, size: str) -> str:
    """Pixel coordinate p -> min(p, n - 1) where 0 <= p < n, else -2 (all corners outside)."""
    n = b.op("Cast", [size], to=TensorProto.FLOAT)
    inside = b.op("And", [b.op("GreaterOrEqual", [pos, b.const(0.0, np.float32)]),
                          b.op("Less", [pos, n])])
    last = b.op("Sub", [n, b.const(1.0, np.float32)])
    return b.op("Where", [inside, b.op("Min", [pos, last]), b.const(-2.0, np.float32)])


def _deformable_converter(mode: str):
    def convert(node, **kwargs):
        """MXNet's DeformableConvolution (data, offset, weight[, bias])."""
        name, inputs, attrs = _inputs(node, kwargs)
        kernel = _ints(attrs.get("kernel"))
        ndim = len(kernel)
        return _deformable(node, kwargs, mode, inputs[0], inputs[1], inputs[2],
                           None if _flag(attrs.get("no_bias"), False) else inputs[3],
                           _ints(attrs.get("stride"), (1,) * ndim),
                           _ints(attrs.get("pad"), (0,) * ndim),
                           _ints(attrs.get("dilate"), (1,) * ndim),
                           int(attrs.get("num_deformable_group", 1)),
                           int(attrs.get("num_group", 1)))
    return convert


def _custom_converter(mode: str):
    def convert(node, **kwargs):
        """Our CustomOps: the fused warp and the fast path's deformable convolution."""
        name, inputs, attrs = _inputs(node, kwargs)
        op_type = attrs.get("op_type")
        b = _Builder(name, kwargs)
        if op_type == CUSTOM_WARP:
            feat, flow = inputs
            _grid_sample(b, feat, _warp_grid(b, flow, feat), name)
            return b.nodes
        if op_type == CUSTOM_DEFORMABLE:
            source = kwargs["mx_graph"][node["inputs"][1][0]]
            if source["op"] != "Convolution":
                raise UnsupportedOpError("%s %r: its offsets must come from a Convolution to "
                                         "know the deformable groups" % (op_type, name))
            groups = int(source["attrs"]["num_filter"]) // 18
            stride, pad, dilate = (int(attrs.get(k, d)) for k, d in
                                   (("stride", 1), ("pad", 0), ("dilate", 1)))
            return _deformable(node, kwargs, mode, inputs[0], inputs[1], inputs[2], None,
                               (stride,) * 2, (pad,) * 2, (dilate,) * 2, groups, 1)
        raise UnsupportedOpError("cannot export layer %r: custom op %r has no ONNX converter"
                                 % (name, op_type))
    return convert


def our_converters(deformable: str, weights_out: Optional[Dict[str, np.ndarray]] = None
                   ) -> Dict[str, object]:
    """op name -> converter, installed over MXNet's for one export; parameters are put in
    `weights_out` instead of the graph when it is given."""
    if deformable not in DEFORMABLE_MODES:
        raise ValueError("deformable mode %r: expected one of %s"
                         % (deformable, ", ".join(DEFORMABLE_MODES)))
    return {"null": _null_converter(weights_out), "BatchNorm": _convert_batchnorm,
            "SoftmaxOutput": _convert_softmax_output,
            "GridGenerator": _convert_grid_generator,
            "BilinearSampler": _convert_bilinear_sampler,
            "_contrib_DeformableConvolution": _deformable_converter(deformable),
            "Custom": _custom_converter(deformable)}
