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


_NAN_KERNELS = """
import sys
import numpy as np
from accel.cython import deform_cy
from accel.operators.custom_ops import warp_forward_cpu
from accel.operators.deformable import deformable_conv_numpy
rng = np.random.default_rng(0)
for bad in (np.nan, np.inf, -np.inf, 3e9, -3e9):
    for h, w in ((5, 6), (6, 7), (4, 8)):        # odd and even widths
        x = rng.standard_normal((1, 4, h, w)).astype(np.float32)
        off = np.zeros((1, 18, h, w), np.float32)
        off[0, :, 1, 2] = bad
        off[0, 3, 0, 0] = bad
        idx, wts = deform_cy.sampling_table(off[0], h, w, 3, 3, 1, 1, 1)
        assert idx.min() >= 0 and idx.max() < h * w, (bad, h, w, idx.min(), idx.max())
        out = deformable_conv_numpy(x, off, np.ones((2, 4, 3, 3), np.float32), 1, 1, 1)
        assert np.isfinite(out).all(), (bad, h, w)
        flow = np.zeros((1, 2, h, w), np.float32)
        flow[0, :, 1, 2] = bad
        flow[0, 0, 0, 0] = bad
        idx, wts = deform_cy.warp_table(flow[0])
        assert idx.min() >= 0 and idx.max() < h * w, (bad, h, w)
        warped = warp_forward_cpu(x, flow)
        assert np.isfinite(warped).all() and warped[0, :, 1, 2].tolist() == [0] * 4, bad
print("ok")
"""


def test_non_finite_offsets_and_flows_never_index_outside_the_map():
    """#25.9: a diverged Accel (learning rate 2 .. 1e6) segfaulted: a NaN offset cast to int
    indexed far outside the feature map in the CPU kernels. NaN, inf and huge offsets or
    flows now sample nothing (0), as outside the map. Run in a child process, so that a
    crash is a failure, not the end of the test run."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _NAN_KERNELS], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
