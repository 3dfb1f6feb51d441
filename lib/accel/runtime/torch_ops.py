"""The two operators of our MXNet graphs that PyTorch lacks: the flow warp and DCN v1.

``flow_warp`` is MXNet's ``GridGenerator(transform_type='warp')`` + ``BilinearSampler``
and ``deformable_conv2d`` is ``_contrib_DeformableConvolution`` (Dai et al. 2017, DCN v1),
both forward only: the PyTorch runtime runs inference, so there is no backward and no
gradient check (autograd would follow the gathers, but nothing tests or relies on it).

This module imports only torch and the NumPy-only ``accel.operators.reference`` (its shape
checks), so it runs where neither MXNet, SciPy nor the Cython extensions are installed.
On CUDA tensors the warp runs our kernel (``operator_cxx/flow_warp.cu``) through CuPy,
imported on first use, sharing memory with PyTorch by DLPack on PyTorch's current stream.
On the CPU in float32, where the Cython extension is built, both run its compiled gather
(accel.operators.cpu, the kernels of MXNet's fast CPU path) as PyTorch operators
(``accel::warp_cpu``, ``accel::deformable_conv_cpu``: traced like any other), about twice
as fast as the PyTorch implementation below, which every other case runs.
"""
import functools
import logging
from typing import Optional, Sequence, Tuple, Union

import torch

from accel.operators.reference import check_shape, check_warp_shapes

__all__ = ["flow_warp", "warp_backend", "deformable_conv2d"]

log = logging.getLogger(__name__)

IntPair = Union[int, Sequence[int]]


# ---------------------------------------------------------------- flow warp


@functools.lru_cache(maxsize=None)
def _cupy_available() -> bool:
    """Whether CuPy imports; the first failure is logged once per process (cached)."""
    from accel.operators.cuda import import_cupy
    try:
        import_cupy()
    except ImportError as err:
        log.warning("flow_warp on CUDA runs the PyTorch implementation, slower than the CUDA "
                    "kernel of operator_cxx/flow_warp.cu: %s", err)
        return False
    return True


def warp_backend(device: Union[str, torch.device]) -> str:
    """Which code flow_warp runs in float32 on `device`: 'cupy' (our CUDA kernel through
    CuPy), 'compiled' (the CPU kernel of accel.operators.cpu) or 'torch' (PyTorch ops)."""
    device = torch.device(device)
    if device.type == "cuda" and _cupy_available():
        return "cupy"
    if _use_compiled(device, torch.float32):
        return "compiled"
    return "torch"


@functools.lru_cache(maxsize=None)
def compiled_cpu() -> bool:
    """Whether the compiled CPU kernels (accel.operators.cpu) are built here."""
    from accel.operators import cpu
    return cpu.available()


@torch.library.custom_op("accel::warp_cpu", mutates_args=())
def _warp_compiled(feat: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    from accel.operators.cpu import warp_forward_cpu
    return torch.from_numpy(warp_forward_cpu(feat.numpy(), flow.numpy()))


@_warp_compiled.register_fake
def _warp_compiled_shape(feat, flow):
    return torch.empty_like(feat)


@torch.library.custom_op("accel::deformable_conv_cpu", mutates_args=())
def _deformable_compiled(data: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                         stride: int, pad: int, dilate: int) -> torch.Tensor:
    from accel.operators.cpu import deformable_conv_numpy
    return torch.from_numpy(deformable_conv_numpy(data.numpy(), offset.numpy(),
                                                  weight.numpy(), stride, pad, dilate))


@_deformable_compiled.register_fake
def _deformable_compiled_shape(data, offset, weight, stride, pad, dilate):
    n, _, h, w = data.shape
    kh, kw = weight.shape[2:]
    return data.new_empty((n, weight.shape[0], (h + 2 * pad - dilate * (kh - 1) - 1) // stride
                           + 1, (w + 2 * pad - dilate * (kw - 1) - 1) // stride + 1))


def _use_compiled(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether a float32 computation on `device` runs the compiled CPU kernels."""
    return device.type == "cpu" and dtype == torch.float32 and compiled_cpu()


def _compute_dtype(dtype: torch.dtype, what: str) -> torch.dtype:
    """float64 stays float64; every other floating type is computed in float32."""
    if not dtype.is_floating_point:
        raise TypeError(f"{what} must be a floating-point tensor, got {dtype}")
    return torch.float64 if dtype == torch.float64 else torch.float32


def flow_warp(feat: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Warp feat (N, C, H, W) by flow (N, 2, H, W) in pixels (channel 0 = x) -> (N, C, H, W).

    Output pixel (y, x) samples feat bilinearly at (y + flow_y, x + flow_x); neighbours
    outside the image contribute zero. float64 is computed in float64, every other
    floating type (float16/bfloat16 from autocast included) in float32, and the result has
    that dtype: the warp is a few gathers, cheap next to the convolutions around it, and
    float32 keeps it equal to MXNet's. ``warp_backend(feat.device)`` says which code runs
    float32.
    """
    check_warp_shapes(tuple(feat.shape), tuple(flow.shape))
    if feat.is_meta:  # shape inference (accel.runtime.torch_graph.infer_shapes)
        return torch.empty_like(feat)
    if feat.device != flow.device:
        raise ValueError(f"flow warp data and flow must be on one device, got data on "
                         f"{feat.device} and flow on {flow.device}")
    dtype = _compute_dtype(feat.dtype, "flow warp data")
    # DLPack refuses tensors that require grad; this is inference, so none is needed.
    feat = feat.detach().to(dtype).contiguous()
    flow = flow.detach().to(dtype).contiguous()
    if _use_compiled(feat.device, dtype):
        return torch.ops.accel.warp_cpu(feat, flow)
    if warp_backend(feat.device) == "cupy":
        return _warp_cupy(feat, flow)
    return _warp_torch(feat, flow)


def _warp_cupy(feat: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """The CUDA kernel on feat's device and PyTorch's current stream, into a torch tensor."""
    from accel.operators.cuda import import_cupy, warp_forward_cuda
    cupy = import_cupy()
    # PyTorch allocates the output (its caching allocator owns the memory and its stream
    # rules apply); CuPy only launches the kernel, on the stream PyTorch orders work on.
    out = torch.empty_like(feat)
    stream = torch.cuda.current_stream(feat.device)
    with cupy.cuda.Device(feat.device.index), cupy.cuda.ExternalStream(stream.cuda_stream):
        warp_forward_cuda(cupy.from_dlpack(feat), cupy.from_dlpack(flow),
                          out=cupy.from_dlpack(out))
    return out


def _warp_torch(feat: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """The arithmetic of flow_warp_forward in operator_cxx/flow_warp.cu, as tensor ops."""
    n, c, h, w = feat.shape
    xr = torch.arange(w, dtype=feat.dtype, device=feat.device) + flow[:, 0]
    yr = torch.arange(h, dtype=feat.dtype, device=feat.device)[:, None] + flow[:, 1]
    fx, fy = torch.floor(xr), torch.floor(yr)
    wx1, wy1 = xr - fx, yr - fy
    wx0, wy0 = 1 - wx1, 1 - wy1
    x0, y0 = fx.long(), fy.long()
    flat = feat.reshape(n, c, h * w)
    out = None
    # The kernel's order: v = 0, then v += wy * wx * f for each corner inside the image
    # (which nvcc may fuse into one FMA, as addcmul_ may). A corner outside gets weight 0
    # instead of being skipped: the same sum wherever feat is finite, in 3 passes over the
    # features per corner instead of 6 (measured 3x faster than masking each term).
    for oy, ox, wy, wx in ((0, 0, wy0, wx0), (0, 1, wy0, wx1), (1, 0, wy1, wx0),
                           (1, 1, wy1, wx1)):
        yi, xi = y0 + oy, x0 + ox
        inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
        index = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).reshape(n, 1, h * w)
        weight = torch.where(inside, wy * wx, 0).reshape(n, 1, h * w)
        values = flat.gather(2, index.expand(n, c, h * w))
        out = values.mul_(weight) if out is None else out.addcmul_(values, weight)
    return out.reshape(n, c, h, w)


# ---------------------------------------------------------------- deformable convolution


def _pair(name: str, value: IntPair) -> Tuple[int, int]:
    """(v, v) for an int, the pair itself for a pair of ints."""
    if isinstance(value, int):
        return value, value
    pair = tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"deformable convolution {name} must be an int or a pair of ints, "
                         f"got {value!r}")
    return pair


def _sampling_table(offset: torch.Tensor, height: int, width: int, kernel: Tuple[int, int],
                    stride: Tuple[int, int], pad: Tuple[int, int],
                    dilate: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Corner indices (N, G, 4, K * P) into H * W and their bilinear weights, same shape.

    offset: (N, G * K * 2, Ho, Wo), (dy, dx) per tap k = i * kw + j. The rule is MXNet's
    CPU deformable_im2col (and accel.cython.deform_cy.sampling_table): tap (i, j) of output
    (y, x) samples at (y*s - p + i*d + dy, x*s - p + j*d + dx), the integer part summed
    first; a sample with h < 0, w < 0, h >= H or w >= W gives 0, and on the last row
    (column) the sample is clamped onto it, its second row (column) weighing 0.
    """
    n, _, ho, wo = offset.shape
    kh, kw = kernel
    taps = kh * kw
    off = offset.reshape(n, -1, taps, 2, ho, wo)
    dev = offset.device
    tap_y = (torch.arange(kh, device=dev) * dilate[0]).repeat_interleave(kw)
    tap_x = (torch.arange(kw, device=dev) * dilate[1]).repeat(kh)
    row = torch.arange(ho, device=dev) * stride[0] - pad[0]
    col = torch.arange(wo, device=dev) * stride[1] - pad[1]
    base_h = (tap_y[:, None, None] + row[:, None]).to(offset.dtype)   # (K, Ho, 1)
    base_w = (tap_x[:, None, None] + col).to(offset.dtype)            # (K, 1, Wo)
    h_im = base_h + off[:, :, :, 0]                                   # (N, G, K, Ho, Wo)
    w_im = base_w + off[:, :, :, 1]
    valid = (h_im >= 0) & (w_im >= 0) & (h_im < height) & (w_im < width)
    y0, x0 = torch.floor(h_im), torch.floor(w_im)
    last_y, last_x = y0 >= height - 1, x0 >= width - 1
    lh = torch.where(last_y, 0, h_im - y0)
    lw = torch.where(last_x, 0, w_im - x0)
    hh, hw = 1 - lh, 1 - lw
    # outside samples: any index in range, weight 0
    y0 = y0.clamp(0, height - 1).long()
    x0 = x0.clamp(0, width - 1).long()
    y1 = torch.where(last_y, y0, (y0 + 1).clamp(max=height - 1))
    x1 = torch.where(last_x, x0, (x0 + 1).clamp(max=width - 1))
    index = torch.stack([y0 * width + x0, y0 * width + x1, y1 * width + x0, y1 * width + x1],
                        dim=2)
    weight = torch.stack([hh * hw, hh * lw, lh * hw, lh * lw], dim=2)
    weight = torch.where(valid[:, :, None], weight, 0)
    groups = index.shape[1]
    return index.reshape(n, groups, 4, -1), weight.reshape(n, groups, 4, -1)


def _columns(data: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Sampled columns (N, C, K * P) from data (N, C, H, W), index/weight (N, G, 4, K * P).

    Element (c, k * P + p) is channel c at tap k and pixel p: reshaped to (C * K, P), the
    layout of weight.reshape(O, C * K). Each corner is one gather for all channels of a
    deformable group (they share the table).
    """
    n, c, h, w = data.shape
    groups, kp = index.shape[1], index.shape[3]
    per_group = c // groups
    grouped = data.reshape(n, groups, per_group, h * w)
    shape = (n, groups, per_group, kp)
    # MXNet's order, w1 * v1 + w2 * v2 + w3 * v3 + w4 * v4; addcmul_ saves a pass per corner
    cols = grouped.gather(3, index[:, :, 0, None].expand(shape)).mul_(weight[:, :, 0, None])
    for q in range(1, 4):
        cols.addcmul_(grouped.gather(3, index[:, :, q, None].expand(shape)),
                      weight[:, :, q, None])
    return cols.reshape(n, c, kp)


def deformable_conv2d(data: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                      bias: Optional[torch.Tensor] = None, stride: IntPair = 1,
                      pad: IntPair = 0, dilate: IntPair = 1, num_group: int = 1,
                      num_deformable_group: int = 1) -> torch.Tensor:
    """MXNet's DeformableConvolution (DCN v1) forward: (N, C, H, W) -> (N, O, Ho, Wo).

    offset: (N, 2 * G * kh * kw, Ho, Wo), (dy, dx) per tap as MXNet's operator takes it,
    G = num_deformable_group; weight: (O, C / num_group, kh, kw); bias: (O,) or None.
    stride, pad, dilate: an int or a (y, x) pair. The sampling (offsets, bilinear weights,
    columns) is computed in float32 (float64 for float64 data) whatever the input dtypes.
    The product with the weight is one matmul: under torch.autocast it runs in the autocast
    dtype, as F.conv2d would, and the output has that dtype; otherwise it runs in the
    sampling dtype (bfloat16/float16 inputs without autocast give float32). Like F.conv2d,
    a bfloat16 matmul is fast only on CPUs with bf16 instructions (AVX512-BF16, AMX): on an
    AVX2-only CPU both run over 100x slower than in float32 (measured on res5's shapes).
    """
    stride, pad, dilate = _pair("stride", stride), _pair("pad", pad), _pair("dilate", dilate)
    if data.dim() != 4 or weight.dim() != 4:
        raise ValueError(f"deformable convolution expects data (N, C, H, W) and weight "
                         f"(O, C / num_group, kh, kw); got data {tuple(data.shape)} and "
                         f"weight {tuple(weight.shape)}")
    devices = {t.device for t in (data, offset, weight, bias) if t is not None}
    if len(devices) > 1:
        raise ValueError(f"deformable convolution inputs must be on one device, got data on "
                         f"{data.device}, offset on {offset.device}, weight on "
                         f"{weight.device}" + ("" if bias is None else f", bias on {bias.device}"))
    n, c, h, w = data.shape
    out_c, c_per_group, kh, kw = weight.shape
    if num_group < 1 or c % num_group or out_c % num_group or c_per_group * num_group != c:
        raise ValueError(f"deformable convolution with num_group={num_group}: data "
                         f"{tuple(data.shape)} and weight {tuple(weight.shape)} need C and O "
                         f"divisible by num_group and weight.shape[1] == C / num_group")
    if num_deformable_group < 1 or c % num_deformable_group:
        raise ValueError(f"deformable convolution: num_deformable_group="
                         f"{num_deformable_group} must divide the {c} channels of data "
                         f"{tuple(data.shape)}")
    ho = (h + 2 * pad[0] - dilate[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * pad[1] - dilate[1] * (kw - 1) - 1) // stride[1] + 1
    check_shape(f"deformable convolution offset (for data {tuple(data.shape)}, weight "
                f"{tuple(weight.shape)}, num_deformable_group={num_deformable_group})",
                (n, 2 * num_deformable_group * kh * kw, ho, wo), tuple(offset.shape))
    if bias is not None:
        check_shape("deformable convolution bias", (out_c,), tuple(bias.shape))
    if data.is_meta:  # shape inference (accel.runtime.torch_graph.infer_shapes)
        return data.new_empty((n, out_c, ho, wo))
    dtype = _compute_dtype(data.dtype, "deformable convolution data")
    if (num_group == 1 and stride[0] == stride[1] and pad[0] == pad[1]
            and dilate[0] == dilate[1] and _use_compiled(data.device, dtype)
            and not torch.is_autocast_enabled(data.device.type)):
        out = torch.ops.accel.deformable_conv_cpu(
            *(t.detach().to(dtype).contiguous() for t in (data, offset, weight)), stride[0],
            pad[0], dilate[0])
        return out if bias is None else out + bias.reshape(1, out_c, 1, 1)
    index, wts = _sampling_table(offset.detach().to(dtype), h, w, (kh, kw), stride, pad,
                                 dilate)
    cols = _columns(data.to(dtype), index, wts)
    cols = cols.reshape(n, num_group, c_per_group * kh * kw, ho * wo)
    wmat = weight.reshape(num_group, out_c // num_group, c_per_group * kh * kw)
    if not torch.is_autocast_enabled(data.device.type):
        wmat = wmat.to(dtype)
    out = torch.matmul(wmat, cols).reshape(n, out_c, ho, wo)
    if bias is not None:
        out = out + bias.to(out.dtype).reshape(1, out_c, 1, 1)
    return out
