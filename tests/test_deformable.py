"""The fast CPU deformable convolution equals MXNet's DeformableConvolution."""
import mxnet as mx
import numpy as np
import pytest

from accel.operators.deformable import deformable_conv_fast, deformable_conv_numpy


def mxnet_deformable_conv(x, off, w, stride, pad, dilate, groups, bias=None):
    """MXNet's DeformableConvolution on NumPy arrays (the oracle; also of test_torch_ops)."""
    extra = {"no_bias": True} if bias is None else {"bias": mx.nd.array(bias)}
    return mx.nd.contrib.DeformableConvolution(
        mx.nd.array(x), mx.nd.array(off), mx.nd.array(w), kernel=w.shape[2:],
        stride=(stride,) * 2, pad=(pad,) * 2, dilate=(dilate,) * 2, num_filter=w.shape[0],
        num_deformable_group=groups, **extra).asnumpy()


@pytest.mark.parametrize("groups,stride,pad,dilate,size", [
    (1, 1, 2, 2, (9, 13)), (4, 1, 2, 2, (8, 11)), (1, 2, 1, 1, (7, 10)), (4, 1, 1, 1, (5, 5)),
])
def test_equals_mxnet_with_offsets_that_leave_the_map(groups, stride, pad, dilate, size):
    rng = np.random.default_rng(groups * 100 + stride)
    c, o = 8, 5
    x = rng.standard_normal((2, c) + size).astype(np.float32)
    w = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
    ho = (size[0] + 2 * pad - 2 * dilate - 1) // stride + 1
    wo = (size[1] + 2 * pad - 2 * dilate - 1) // stride + 1
    off = (rng.standard_normal((2, 18 * groups, ho, wo)) * 3).astype(np.float32)
    off[0, 0, 0, 0] = -0.5          # just outside the top edge: zero
    off[0, 1, -1, -1] = 40.0        # far outside
    expected = mxnet_deformable_conv(x, off, w, stride, pad, dilate, groups)
    got = deformable_conv_numpy(x, off, w, stride, pad, dilate)
    np.testing.assert_allclose(got, expected, atol=2e-5, rtol=1e-5)


def test_zero_offsets_are_a_plain_dilated_convolution():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 6, 10, 12)).astype(np.float32)
    w = rng.standard_normal((4, 6, 3, 3)).astype(np.float32)
    plain = mx.nd.Convolution(mx.nd.array(x), mx.nd.array(w), kernel=(3, 3), pad=(2, 2),
                              dilate=(2, 2), num_filter=4, no_bias=True).asnumpy()
    got = deformable_conv_numpy(x, np.zeros((1, 18, 10, 12), np.float32), w, 1, 2, 2)
    np.testing.assert_allclose(got, plain, atol=1e-5)


def test_symbol_forward_and_bad_shapes():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    off = rng.standard_normal((1, 18, 6, 6)).astype(np.float32)
    w = rng.standard_normal((3, 4, 3, 3)).astype(np.float32)
    sym = deformable_conv_fast(mx.sym.Variable("data"), mx.sym.Variable("offset"),
                               mx.sym.Variable("weight"), "d", 3, 1, 2, 2)
    exe = sym.bind(mx.cpu(), {"data": mx.nd.array(x), "offset": mx.nd.array(off),
                              "weight": mx.nd.array(w)}, grad_req="null")
    np.testing.assert_allclose(exe.forward()[0].asnumpy(),
                               mxnet_deformable_conv(x, off, w, 1, 2, 2, 1), atol=1e-5)
    with pytest.raises(ValueError, match="offset has 10 channels"):
        deformable_conv_numpy(x, off[:, :10], w, 1, 2, 2)
    with pytest.raises(ValueError, match="input channels"):
        deformable_conv_numpy(x[:, :3], off, w, 1, 2, 2)
