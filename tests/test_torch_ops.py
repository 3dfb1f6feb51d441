"""The PyTorch runtime's flow warp and deformable convolution (accel.runtime.torch_ops).

Oracles: MXNet's own operators (GridGenerator + BilinearSampler, DeformableConvolution),
the NumPy warp, the Cython deformable kernel, F.conv2d, and known answers. The tests that
need MXNet or the Cython extensions skip without them, so the rest runs on the MXNet-free
PyTorch install; the GPU tests run where PyTorch sees a CUDA device (CuPy for the kernel).
"""
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="accel.runtime.torch_ops needs PyTorch")
import torch.nn.functional as F  # noqa: E402

from accel.operators.reference import warp_numpy  # noqa: E402
from accel.runtime import torch_ops  # noqa: E402
from accel.runtime.torch_ops import deformable_conv2d, flow_warp, warp_backend  # noqa: E402
from operator_helpers import (BAD_WARP_SHAPES, WARP_CASES, cupy_or_skip,  # noqa: E402
                              random_warp_inputs)

LIB = Path(__file__).resolve().parents[1] / "lib"
EPS32 = float(np.finfo(np.float32).eps)


def warp(feat, flow):
    """flow_warp on NumPy arrays, returning NumPy."""
    return flow_warp(torch.from_numpy(feat), torch.from_numpy(flow)).numpy()


def test_imports_without_mxnet_scipy_cython_or_cupy():
    code = ("import sys\n"
            "for name in ('scipy', 'mxnet', 'cupy', 'accel.cython'):\n"
            "    sys.modules[name] = None\n"
            "import torch\n"
            "import accel.operators.cuda\n"
            "from accel.runtime.torch_ops import deformable_conv2d, flow_warp\n"
            "print(flow_warp(torch.ones(1, 1, 2, 3), torch.zeros(1, 2, 2, 3)).sum().item(),\n"
            "      deformable_conv2d(torch.ones(1, 1, 3, 3), torch.zeros(1, 18, 1, 1),\n"
            "                        torch.ones(1, 1, 3, 3)).item())\n")
    path = os.pathsep.join([str(LIB), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": path}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["6.0", "9.0"]


# ---------------------------------------------------------------- flow warp


@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (2, 64, 5, 9)])
def test_flow_warp_smoke_and_output_shape(shape):
    out = flow_warp(torch.ones(shape), torch.zeros((shape[0], 2) + shape[2:]))
    assert out.shape == shape and out.dtype == torch.float32
    assert warp_backend("cpu") == ("compiled" if torch_ops.compiled_cpu() else "torch")


@pytest.mark.parametrize("feat_shape, flow_shape", BAD_WARP_SHAPES)
def test_flow_warp_bad_shapes_name_both(feat_shape, flow_shape):
    with pytest.raises(ValueError) as err:
        flow_warp(torch.zeros(feat_shape), torch.zeros(flow_shape))
    assert str(feat_shape) in str(err.value) and str(flow_shape) in str(err.value)


def test_flow_warp_integer_data_is_an_error():
    with pytest.raises(TypeError, match="floating-point.*torch.int64"):
        flow_warp(torch.zeros((1, 1, 2, 2), dtype=torch.int64), torch.zeros(1, 2, 2, 2))


def test_flow_warp_zero_flow_is_identity():
    feat, _ = random_warp_inputs(np.random.default_rng(0), 2, 3, 6, 7, 0)
    np.testing.assert_array_equal(warp(feat, np.zeros((2, 2, 6, 7), np.float32)), feat)


@pytest.mark.parametrize("dy, dx", [(0, 2), (1, 0), (-2, 1), (3, -3)])
def test_flow_warp_integer_shift_leaves_zeros_at_the_border(dy, dx):
    feat, _ = random_warp_inputs(np.random.default_rng(1), 1, 2, 6, 8, 0)
    flow = np.zeros((1, 2, 6, 8), np.float32)
    flow[:, 0], flow[:, 1] = dx, dy
    expected = np.zeros_like(feat)
    # out[y, x] = feat[y + dy, x + dx] where that lies inside the image, else 0
    ys, xs = slice(max(0, -dy), min(6, 6 - dy)), slice(max(0, -dx), min(8, 8 - dx))
    expected[..., ys, xs] = feat[..., ys.start + dy:ys.stop + dy, xs.start + dx:xs.stop + dx]
    out = warp(feat, flow)
    np.testing.assert_array_equal(out, expected)
    assert np.count_nonzero(out) == np.count_nonzero(expected) > 0


def test_flow_warp_leaving_the_image_on_every_side():
    feat = np.ones((1, 1, 4, 5), np.float32)
    for dx, dy in [(-5, 0), (5, 0), (0, -4), (0, 4), (-5.5, 7.25)]:
        flow = np.zeros((1, 2, 4, 5), np.float32)
        flow[:, 0], flow[:, 1] = dx, dy
        assert not warp(feat, flow).any(), (dx, dy)


def test_flow_warp_non_integer_flow_at_the_border():
    # on a constant image, a sample reads the weight of its corners inside the image
    feat = np.ones((1, 1, 3, 4), np.float32)
    flow = np.zeros((1, 2, 3, 4), np.float32)
    flow[0, 0, 0, 0] = -0.5     # x = -0.5: half of column 0
    flow[0, 0, 1, 3] = 0.25     # x = 3.25: column 3 weighs 0.75, column 4 is outside
    flow[0, 1, 2, 1] = 0.75     # y = 2.75: row 2 weighs 0.25
    flow[0, :, 0, 2] = -0.5     # (y, x) = (-0.5, 1.5): half of row 0
    flow[0, :, 2, 3] = 0.5      # (2.5, 3.5): only the corner (2, 3) inside, 0.25
    expected = np.ones((3, 4), np.float32)
    expected[0, 0], expected[1, 3], expected[2, 1] = 0.5, 0.75, 0.25
    expected[0, 2], expected[2, 3] = 0.5, 0.25
    np.testing.assert_array_equal(warp(feat, flow)[0, 0], expected)


@pytest.mark.parametrize("n, c, h, w, scale", WARP_CASES + [(1, 2, 1, 6, 2.0)])
def test_flow_warp_equals_numpy_reference(n, c, h, w, scale):
    rng = np.random.default_rng(h * w + c)
    feat, flow = random_warp_inputs(rng, n, c, h, w, scale, dtype=np.float64)
    np.testing.assert_allclose(warp(feat, flow), warp_numpy(feat, flow), rtol=0, atol=1e-13)
    feat, flow = feat.astype(np.float32), flow.astype(np.float32)
    np.testing.assert_allclose(warp(feat, flow), warp_numpy(feat, flow), rtol=0,
                               atol=4 * EPS32 * np.abs(feat).max())


@pytest.mark.parametrize("n, c, h, w, scale", WARP_CASES + [(1, 3, 5, 6, 40.0)])
def test_flow_warp_equals_mxnet_builtins(n, c, h, w, scale):
    mx = pytest.importorskip("mxnet", reason="MXNet is the oracle here")
    from test_operators import builtin_warp_symbol
    feat, flow = random_warp_inputs(np.random.default_rng(h + 10 * c), n, c, h, w, scale)
    flow[0, :, 0, 0] = (-0.5, 0.25)      # near the top-left border
    flow[0, :, -1, -1] = (0.5, -0.75)    # near the bottom-right border
    want = builtin_warp_symbol().eval(ctx=mx.cpu(), data=mx.nd.array(feat),
                                      flow=mx.nd.array(flow))[0].asnumpy()
    # the built-ins round-trip through the normalised grid: float32-level differences
    np.testing.assert_allclose(warp(feat, flow), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_flow_warp_half_inputs_are_computed_in_float32(dtype):
    feat, flow = map(torch.from_numpy, random_warp_inputs(np.random.default_rng(3), 1, 4, 5,
                                                          6, 2.0))
    want = flow_warp(feat.to(dtype).float(), flow.to(dtype).float())
    for autocast in (False, True):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            got = flow_warp(feat.to(dtype), flow.to(dtype))
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_cuda_without_cupy_falls_back_to_torch_with_one_warning(monkeypatch, caplog):
    from accel.operators import cuda

    def missing_cupy():
        raise ImportError("CuPy is not installed (test)")

    monkeypatch.setattr(cuda, "import_cupy", missing_cupy)
    torch_ops._cupy_available.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger=torch_ops.__name__):
            assert [warp_backend(d) for d in ("cuda", "cuda:0")] == ["torch"] * 2
    finally:
        torch_ops._cupy_available.cache_clear()
    records = [r for r in caplog.records if r.name == torch_ops.__name__]
    assert len(records) == 1 and "PyTorch implementation" in records[0].getMessage()


# ---------------------------------------------------------------- deformable convolution


def out_size(size, kernel, stride, pad, dilate):
    return (size + 2 * pad - dilate * (kernel - 1) - 1) // stride + 1


def deformable_inputs(rng, groups, kernel, stride, pad, dilate, size, c=8, o=5, n=2):
    """data, offsets and weight where some taps land exactly on the last row or column,
    between it and the border (clamped by MXNet), on the border and before the first row
    (zero), far outside, and on the first pixel; the other offsets are random."""
    h, w = size
    kh, kw = kernel
    ho, wo = (out_size(s, k, stride, pad, dilate) for s, k in zip(size, kernel))
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((o, c, kh, kw)).astype(np.float32)
    off = (rng.standard_normal((n, groups, kh * kw, 2, ho, wo)) * 3).astype(np.float32)
    targets = [(h - 1, w - 1), (h - 1, 0.5), (h - 0.5, 1.25), (0.5, w - 0.25), (h, 1.0),
               (1.0, w), (-0.25, 2.0), (2.0, -0.5), (h + 40, -30), (0.0, 0.0)]
    for i, (th, tw) in enumerate(targets):
        g, k, p = i % groups, i % (kh * kw), (7 * i) % (ho * wo)
        y, xo = divmod(p, wo)
        off[0, g, k, 0, y, xo] = th - (y * stride - pad + (k // kw) * dilate)
        off[0, g, k, 1, y, xo] = tw - (xo * stride - pad + (k % kw) * dilate)
    return x, off.reshape(n, -1, ho, wo), weight


def deform(x, off, weight, bias=None, **params):
    t = (None if a is None else torch.from_numpy(a) for a in (x, off, weight, bias))
    return deformable_conv2d(*t, **params).numpy()


# groups, stride, pad, dilate, kernel, bias, size
DEFORM_CASES = [(1, 1, 1, 1, (3, 3), False, (7, 9)), (4, 1, 2, 2, (3, 3), True, (8, 11)),
                (1, 2, 1, 1, (3, 3), True, (9, 10)), (4, 2, 2, 2, (3, 3), False, (10, 9)),
                (1, 1, 0, 1, (2, 3), True, (6, 7))]


@pytest.mark.parametrize("groups, stride, pad, dilate, kernel, bias, size", DEFORM_CASES)
def test_deformable_equals_mxnet(groups, stride, pad, dilate, kernel, bias, size):
    pytest.importorskip("mxnet", reason="MXNet is the oracle here")
    from test_deformable import mxnet_deformable_conv
    rng = np.random.default_rng(groups * 10 + stride + dilate)
    x, off, weight = deformable_inputs(rng, groups, kernel, stride, pad, dilate, size)
    b = rng.standard_normal(weight.shape[0]).astype(np.float32) if bias else None
    want = mxnet_deformable_conv(x, off, weight, stride, pad, dilate, groups, bias=b)
    got = deform(x, off, weight, b, stride=stride, pad=pad, dilate=(dilate, dilate),
                 num_deformable_group=groups)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("groups, stride, pad, dilate", [(1, 1, 2, 2), (4, 2, 1, 1)])
def test_deformable_equals_cython_kernel(groups, stride, pad, dilate):
    cython_op = pytest.importorskip("accel.operators.deformable",
                                    reason="the Cython kernel needs MXNet and the built .so")
    rng = np.random.default_rng(7 + groups)
    x, off, weight = deformable_inputs(rng, groups, (3, 3), stride, pad, dilate, (9, 12))
    np.testing.assert_allclose(
        deform(x, off, weight, stride=stride, pad=pad, dilate=dilate,
               num_deformable_group=groups),
        cython_op.deformable_conv_numpy(x, off, weight, stride, pad, dilate),
        rtol=1e-5, atol=1e-5)


def test_deformable_sampling_rule_known_answers():
    # 1x1 kernel of weight 1: output (y, x) is the sample at (y + dy, x + dx)
    data = np.arange(12, dtype=np.float32).reshape(1, 1, 3, 4)
    off = np.zeros((1, 2, 3, 4), np.float32)
    off[0, :, 0, 0] = (0.5, 0.5)      # inside: mean of pixels 0, 1, 4, 5
    off[0, :, 0, 1] = (2.5, 0.0)      # y = 2.5: clamped onto the last row -> pixel (2, 1)
    off[0, :, 0, 2] = (0.0, 1.5)      # x = 3.5: clamped onto the last column -> (0, 3)
    off[0, :, 0, 3] = (3.0, 0.0)      # y = 3: on the border, outside -> 0
    off[0, :, 1, 0] = (0.0, -0.25)    # x = -0.25: outside -> 0
    off[0, :, 1, 1] = (1.0, 0.5)      # y = 2 (last row), x = 1.5 -> mean of (2, 1), (2, 2)
    got = deform(data, off, np.ones((1, 1, 1, 1), np.float32))[0, 0]
    expected = data[0, 0].copy()
    expected[0] = (2.5, 9, 3, 0)
    expected[1, :2] = (0, 9.5)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("stride, pad, dilate, num_group", [
    (1, 1, 1, 1), (2, 2, 2, 1), (1, 2, 2, 2), ((1, 2), (2, 1), (2, 1), 1)])
def test_deformable_zero_offsets_are_a_plain_convolution(stride, pad, dilate, num_group):
    rng = np.random.default_rng(num_group)
    x = torch.from_numpy(rng.standard_normal((2, 6, 9, 10)).astype(np.float32))
    weight = torch.from_numpy(rng.standard_normal((4, 6 // num_group, 3, 3)).astype(np.float32))
    bias = torch.from_numpy(rng.standard_normal(4).astype(np.float32))
    (sy, sx), (py, px), (dy, dx) = (v if isinstance(v, tuple) else (v, v)
                                    for v in (stride, pad, dilate))
    ho, wo = out_size(9, 3, sy, py, dy), out_size(10, 3, sx, px, dx)
    got = deformable_conv2d(x, torch.zeros(2, 36, ho, wo), weight, bias, stride, pad, dilate,
                            num_group=num_group, num_deformable_group=2)
    want = F.conv2d(x, weight, bias, stride=stride, padding=pad, dilation=dilate,
                    groups=num_group)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_deformable_bad_inputs_raise():
    x, off, w = torch.zeros(1, 4, 6, 6), torch.zeros(1, 18, 6, 6), torch.zeros(3, 4, 3, 3)
    with pytest.raises(ValueError, match=r"\(1, 18, 6, 6\).*\(1, 10, 6, 6\)"):
        deformable_conv2d(x, off[:, :10], w, pad=1)
    with pytest.raises(ValueError, match=r"\(1, 18, 4, 4\).*\(1, 18, 6, 6\)"):
        deformable_conv2d(x, off, w)  # pad 0 gives a 4x4 output
    with pytest.raises(ValueError, match=r"num_group=1.*\(1, 3, 6, 6\).*\(3, 4, 3, 3\)"):
        deformable_conv2d(x[:, :3], off, w, pad=1)
    with pytest.raises(ValueError, match="num_deformable_group=3 must divide the 4"):
        deformable_conv2d(x, torch.zeros(1, 54, 6, 6), w, pad=1, num_deformable_group=3)
    with pytest.raises(ValueError, match=r"stride must be an int or a pair.*\(1, 2, 3\)"):
        deformable_conv2d(x, off, w, stride=(1, 2, 3))
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\), got \(4,\)"):
        deformable_conv2d(x, off, w, torch.zeros(4), pad=1)


def test_deformable_under_bf16_autocast_is_close_to_float32():
    rng = np.random.default_rng(11)
    x, off, weight = map(torch.from_numpy,
                         deformable_inputs(rng, 4, (3, 3), 1, 2, 2, (9, 12), c=16, o=8))
    bias = torch.randn(8, generator=torch.Generator().manual_seed(0))
    want = deformable_conv2d(x, off, weight, bias, pad=2, dilate=2, num_deformable_group=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = deformable_conv2d(x, off, weight, bias, pad=2, dilate=2,
                                num_deformable_group=4)
    assert got.dtype == torch.bfloat16  # the matmul ran in the autocast dtype
    # bf16 keeps 8 significant bits (relative rounding 2^-9): 1% relative L2 error, and
    # 3% of the largest output anywhere, leave room for the 144-term sums
    got = got.float()
    assert ((got - want).norm() / want.norm()).item() < 1e-2
    torch.testing.assert_close(got, want, rtol=0, atol=3e-2 * want.abs().max().item())
    # bf16 inputs without autocast: the float32 computation of the rounded inputs
    rounded = [t.bfloat16() for t in (x, off, weight)]
    torch.testing.assert_close(
        deformable_conv2d(*rounded, pad=2, dilate=2, num_deformable_group=4),
        deformable_conv2d(*(t.float() for t in rounded), pad=2, dilate=2,
                          num_deformable_group=4), rtol=0, atol=0)


def test_torchvision_differs_from_mxnet_only_past_the_last_row():
    ops = pytest.importorskip("torchvision.ops", reason="torchvision is only compared with")
    data = torch.arange(12, dtype=torch.float32).reshape(1, 1, 3, 4)
    off = torch.zeros(1, 2, 3, 4)
    off[0, :, 0, 0] = torch.tensor([0.5, 0.5])   # inside: both rules agree
    off[0, :, 0, 1] = torch.tensor([2.5, 0.0])   # y = 2.5: MXNet clamps, torchvision halves
    weight = torch.ones(1, 1, 1, 1)
    ours = deformable_conv2d(data, off, weight)[0, 0]
    theirs = ops.deform_conv2d(data, off, weight)[0, 0]
    assert ours[0, 0] == theirs[0, 0] == 2.5
    assert ours[0, 1] == 9 and theirs[0, 1] == 4.5


# ---------------------------------------------------------------- on a GPU


def cuda_or_skip():
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA device (torch.cuda.is_available() is False)")
    return torch.device("cuda")


@pytest.mark.gpu
def test_gpu_deformable_equals_cpu_and_stays_on_the_device():
    device = cuda_or_skip()
    x, off, weight = map(torch.from_numpy, deformable_inputs(np.random.default_rng(5), 4,
                                                             (3, 3), 1, 2, 2, (17, 23)))
    want = deformable_conv2d(x, off, weight, pad=2, dilate=2, num_deformable_group=4)
    got = deformable_conv2d(x.to(device), off.to(device), weight.to(device), pad=2,
                            dilate=2, num_deformable_group=4)
    assert got.is_cuda
    torch.testing.assert_close(got.cpu(), want, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
def test_gpu_torch_warp_equals_cpu():
    device = cuda_or_skip()
    feat, flow = map(torch.from_numpy, random_warp_inputs(np.random.default_rng(8), 2, 16,
                                                          13, 21, 5.0))
    got = torch_ops._warp_torch(feat.to(device), flow.to(device))
    assert got.is_cuda
    # same elementwise operations in the same order: equal up to one rounding per corner
    torch.testing.assert_close(got.cpu(), flow_warp(feat, flow), rtol=0,
                               atol=4 * EPS32 * feat.abs().max().item())


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gpu_cupy_warp_equals_cpu_and_stays_on_the_device(dtype):
    device = cuda_or_skip()
    cupy_or_skip()
    assert warp_backend(device) == "cupy"
    rng = np.random.default_rng(9)
    for n, c, h, w, scale in WARP_CASES + [(1, 64, 33, 65, 6.0)]:
        feat, flow = (torch.from_numpy(a).to(dtype)
                      for a in random_warp_inputs(rng, n, c, h, w, scale))
        got = flow_warp(feat.to(device), flow.to(device))
        assert got.is_cuda and got.device == feat.to(device).device and got.dtype == dtype
        # the kernel's arithmetic, but nvcc may fuse `v += w * f` into one FMA: one
        # rounding per corner apart, 4 ulp of the largest input
        atol = 4 * torch.finfo(dtype).eps * feat.abs().max().item()
        torch.testing.assert_close(got.cpu(), flow_warp(feat, flow), rtol=0, atol=atol)


@pytest.mark.gpu
def test_gpu_cupy_warp_runs_on_torch_current_stream():
    device = cuda_or_skip()
    cupy_or_skip()
    sleep = getattr(torch.cuda, "_sleep", None)
    feat, flow = map(torch.from_numpy, random_warp_inputs(np.random.default_rng(12), 1, 256,
                                                          64, 128, 4.0))
    want = flow_warp(3 * feat, flow)
    feat_d, flow_d = feat.to(device), flow.to(device)
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        if sleep is not None:
            sleep(50_000_000)   # delay the stream: a kernel launched elsewhere would race
        tripled = 3 * feat_d    # made on `stream`, read by the warp
        got = flow_warp(tripled, flow_d)
    torch.cuda.synchronize(device)
    torch.testing.assert_close(got.cpu(), want, rtol=0, atol=12 * EPS32 * feat.abs().max().item())


@pytest.mark.gpu
def test_gpu_cuda_warp_rejects_a_bad_out_array():
    cupy = cupy_or_skip()
    from accel.operators.cuda import warp_forward_cuda
    feat, flow = cupy.zeros((1, 2, 3, 4), cupy.float32), cupy.zeros((1, 2, 3, 4), cupy.float32)
    with pytest.raises(ValueError, match=r"shape \(1, 2, 3, 4\), got float32 \(1, 2, 3, 3\)"):
        warp_forward_cuda(feat, flow, out=cupy.zeros((1, 2, 3, 3), cupy.float32))


@pytest.mark.skipif(not torch_ops.compiled_cpu(), reason="the Cython extension is not built "
                    "(sh init.sh builds it)")
@pytest.mark.parametrize("groups,stride,dilate", [(1, 1, 2), (4, 2, 2), (2, 1, 1)])
def test_compiled_cpu_kernels_equal_the_pytorch_implementation(monkeypatch, groups, stride,
                                                               dilate):
    """On the CPU in float32 the runtime runs the compiled kernels of MXNet's fast path as
    PyTorch operators; the PyTorch implementation (every other case) gives the same."""
    rng = np.random.default_rng(groups)
    data = torch.from_numpy(rng.standard_normal((1, 8, 9, 13)).astype(np.float32))
    ho = (9 - 1) // stride + 1
    wo = (13 - 1) // stride + 1
    offset = torch.from_numpy((rng.standard_normal((1, 18 * groups, ho, wo)) * 4)
                              .astype(np.float32))
    weight = torch.from_numpy(rng.standard_normal((5, 8, 3, 3)).astype(np.float32))
    bias = torch.from_numpy(rng.standard_normal(5).astype(np.float32))
    feat = torch.from_numpy(rng.standard_normal((2, 6, 7, 9)).astype(np.float32))
    flow = torch.from_numpy((rng.standard_normal((2, 2, 7, 9)) * 5).astype(np.float32))
    calls = []
    real = torch_ops._use_compiled
    monkeypatch.setattr(torch_ops, "_use_compiled", lambda *a: calls.append(real(*a)) or real(*a))
    compiled = (torch_ops.deformable_conv2d(data, offset, weight, bias, stride, dilate, dilate,
                                            1, groups), torch_ops.flow_warp(feat, flow))
    assert calls == [True, True]
    monkeypatch.setattr(torch_ops, "_use_compiled", lambda *a: False)
    plain = (torch_ops.deformable_conv2d(data, offset, weight, bias, stride, dilate, dilate,
                                         1, groups), torch_ops.flow_warp(feat, flow))
    for a, b in zip(compiled, plain):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)
