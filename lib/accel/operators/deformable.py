"""A faster CPU deformable convolution for inference (the `fast` path).

MXNet 1.9's CPU DeformableConvolution fills its column buffer on one thread, which costs the
keyframe network about half again its plain-dilated twin. Here the bilinear sampling table
is computed once per (deformable group, tap, pixel), the column buffer is filled in parallel
by a Cython kernel (accel.cython.deform_cy), and the convolution is one BLAS product.
Forward only: training uses MXNet's operator.
"""
import mxnet as mx
import numpy as np

from accel.operators.cpu import deformable_conv_numpy  # noqa: F401  (its CPU kernel)

OP_TYPE = "accel_deformable_conv"


class _DeformableConv(mx.operator.CustomOp):
    def __init__(self, stride, pad, dilate):
        super().__init__()
        self.stride, self.pad, self.dilate = stride, pad, dilate

    def forward(self, is_train, req, in_data, out_data, aux):
        data, offset, weight = (a.asnumpy() for a in in_data)
        out = deformable_conv_numpy(data, offset, weight, self.stride, self.pad, self.dilate)
        self.assign(out_data[0], req[0], mx.nd.array(out, ctx=out_data[0].context))

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        raise NotImplementedError("the fast deformable convolution is for inference only; "
                                  "train with network.DEFORMABLE_OP: builtin")


@mx.operator.register(OP_TYPE)
class _DeformableConvProp(mx.operator.CustomOpProp):
    def __init__(self, num_filter, stride="1", pad="0", dilate="1"):
        super().__init__(need_top_grad=False)
        self.num_filter, self.stride = int(num_filter), int(stride)
        self.pad, self.dilate = int(pad), int(dilate)

    def list_arguments(self):
        return ["data", "offset", "weight"]

    def list_outputs(self):
        return ["output"]

    def infer_shape(self, in_shape):
        data, offset, weight = in_shape
        weight = [self.num_filter, data[1], 3, 3]
        ho = (data[2] + 2 * self.pad - self.dilate * 2 - 1) // self.stride + 1
        wo = (data[3] + 2 * self.pad - self.dilate * 2 - 1) // self.stride + 1
        return [data, offset, weight], [[data[0], self.num_filter, ho, wo]], []

    def infer_type(self, in_type):
        # float32 throughout, stated so that graphs rewritten around this op (e.g. the INT8
        # keyframe trunk, which keeps it in float32) still infer the weight's type.
        return [np.float32] * 3, [np.float32], []

    def create_operator(self, ctx, shapes, dtypes):
        if ctx.device_type != "cpu":
            raise ValueError("the fast deformable convolution runs on the CPU only; on %s use "
                             "MXNet's operator (network.DEFORMABLE_OP: builtin)" % ctx)
        return _DeformableConv(self.stride, self.pad, self.dilate)


def deformable_conv_fast(data: mx.sym.Symbol, offset: mx.sym.Symbol, weight: mx.sym.Symbol,
                         name: str, num_filter: int, stride: int, pad: int,
                         dilate: int) -> mx.sym.Symbol:
    """Symbol for a 3x3 deformable conv (no bias) computed by the Cython CPU kernel."""
    return mx.sym.Custom(data=data, offset=offset, weight=weight, op_type=OP_TYPE, name=name,
                         num_filter=num_filter, stride=stride, pad=pad, dilate=dilate)
