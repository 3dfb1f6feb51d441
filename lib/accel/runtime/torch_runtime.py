"""The PyTorch runtime: stored graphs interpreted by PyTorch (accel.runtime.torch_graph).

For GPUs that MXNet cannot run (Hopper, Blackwell: mxnet-cu112 has no kernels for them),
for numpy 2, and for machines without MXNet. Needs only PyTorch and NumPy; the flow warp
runs our CUDA kernel (operator_cxx/) through CuPy on a GPU when CuPy is installed
(accel.runtime.torch_ops).

Everything stays on the device: parameters (copied once), the bound inputs (copied into
in place), the propagated state, the warp, the fusion, the upsampling and the argmax; only
the uint8 label map (and, for keyframe policies, what they read) comes back to the host.

Precision: 'fp32' (true fp32: TF32 is switched off on CUDA), 'tf32' (CUDA: TF32 matmuls
and convolutions), 'bf16' (autocast, CPU and CUDA; on a CPU without native BF16 support,
AVX512-BF16 or AMX, it is emulated and slow), 'fp16' (autocast, CUDA only).
"""
import contextlib
import logging
import os
import warnings
from typing import Any, Dict, Optional

import numpy as np

from accel.runtime import PRECISIONS, ShapeError, SharedParams, Shapes
from accel.graphs import load_graph
from accel.utils.provenance import cpu_has_native_bf16

try:
    import torch
except ImportError as err:  # pragma: no cover - exercised by the CLI test without torch
    raise ImportError("--runtime torch needs PyTorch, which is not installed: pip install "
                      "-c constraints.txt torch (sh init.sh --torch installs it, sh init.sh "
                      "--gpu with CuPy for a GPU)", name="torch") from err

from accel.runtime.torch_graph import TorchGraph, infer_shapes, to_tensor  # noqa: E402

__all__ = ["TorchRuntime", "TorchBound", "cpu_has_native_bf16", "cuda_device_count"]

logger = logging.getLogger(__name__)


def cuda_device_count() -> int:
    """CUDA devices PyTorch can use (0 for a CPU-only build or no driver)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _set_tf32(enabled: bool) -> None:
    """TF32 on or off for CUDA matmuls and convolutions (PyTorch's default differs by op)."""
    mode = "tf32" if enabled else "ieee"
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        conv.fp32_precision = mode
        torch.backends.cuda.matmul.fp32_precision = mode
    else:  # PyTorch before the fp32_precision API
        torch.backends.cudnn.allow_tf32 = enabled
        torch.backends.cuda.matmul.allow_tf32 = enabled


class _Positional(torch.nn.Module):
    """A TorchGraph called with its inputs in order, returning its outputs as a tuple
    (what torch.jit.trace records)."""

    def __init__(self, graph: TorchGraph):
        super().__init__()
        self.graph = graph

    def forward(self, *inputs: torch.Tensor):
        out = self.graph(**dict(zip(self.graph.input_names, inputs)))
        return tuple(out[name] for name in self.graph.outputs)


def optimize_for_cpu(module: TorchGraph, inputs: Dict[str, torch.Tensor]):
    """The graph traced for these input shapes, frozen, and optimized for inference by
    PyTorch (oneDNN weights prepacked once, convolutions fused with their activation): a
    callable of the inputs in order returning the outputs as a tuple."""
    args = tuple(inputs[n] for n in module.input_names)
    with warnings.catch_warnings(), torch.no_grad():
        # Shapes are fixed per bound graph, so the Python checks traced as constants hold.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(_Positional(module).eval(), args, check_trace=False)
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced))


class TorchBound:
    """A TorchGraph with its inputs held on the device between calls (the Graph
    protocol of accel.runtime); `optimize`: run it as optimize_for_cpu's trace."""

    def __init__(self, module: TorchGraph, input_shapes, device: torch.device, autocast,
                 optimize: bool = False):
        self.module = module
        self.outputs = list(module.outputs)
        self.device, self._autocast = device, autocast
        self._inputs = {n: torch.zeros(tuple(input_shapes[n]), device=device)
                        for n in module.input_names}
        self._traced = optimize_for_cpu(module, self._inputs) if optimize else None

    def set_input(self, name: str, value: Any) -> None:
        """Copy `value` (NumPy or tensor) into input `name`, in place."""
        target = self._inputs[name]
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError("input %r has shape %s, the graph was bound for %s"
                             % (name, tuple(value.shape), tuple(target.shape)))
        if not isinstance(value, torch.Tensor):
            value = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        target.copy_(value, non_blocking=True)

    def input(self, name: str) -> torch.Tensor:
        return self._inputs[name]

    def forward(self, **inputs: Any) -> Dict[str, torch.Tensor]:
        for name, value in inputs.items():
            self.set_input(name, value)
        if self._traced is not None:
            # Already optimized: no profiling runs by the JIT (its first calls were slow).
            with torch.no_grad(), torch.jit.optimized_execution(False):
                out = self._traced(*(self._inputs[n] for n in self.module.input_names))
            return dict(zip(self.outputs, out))
        with torch.inference_mode(), self._autocast():
            return self.module(**self._inputs)


def class_map(scores: torch.Tensor) -> np.ndarray:
    """(H, W) uint8 argmax over the classes of scores (C, H, W), on the host. On the CPU as
    one pass per class (the first maximum wins, as argmax): a strided argmax over dim 0
    took about 110 ms for 19 x 512 x 1024 on 2 cores, this about a tenth."""
    if scores.device.type != "cpu":
        return scores.argmax(0).to(torch.uint8).cpu().numpy()
    scores = scores.float()
    best = scores[0].clone()
    labels = torch.zeros(scores.shape[1:], dtype=torch.uint8)
    for c in range(1, scores.shape[0]):
        better = scores[c] > best
        torch.maximum(best, scores[c], out=best)
        labels.masked_fill_(better, c)
    return labels.numpy()


class _Upsampler:
    """The heads' fixed x16 bilinear upsampling (separable: R @ s_c @ C) + bias + argmax on
    the device (accel.runtime.upsample.upsampling_matrix gives R and C)."""

    def __init__(self, k1, out_hw, in_hw, device):
        from accel.runtime.upsample import upsampling_matrix
        self.rows = torch.from_numpy(upsampling_matrix(k1, out_hw[0], in_hw[0])).to(device)
        self.cols = torch.from_numpy(
            np.ascontiguousarray(upsampling_matrix(k1, out_hw[1], in_hw[1]).T)).to(device)
        self._bias: Dict[int, torch.Tensor] = {}

    def labels(self, scores: torch.Tensor, bias: Optional[np.ndarray] = None) -> np.ndarray:
        with torch.inference_mode():
            low = scores[0].float()
            up = torch.matmul(torch.matmul(self.rows, low), self.cols)   # (C, H, W)
            if bias is not None:
                key = id(bias)
                if key not in self._bias:
                    self._bias[key] = torch.from_numpy(np.asarray(bias, np.float32)).to(
                        up.device).view(-1, 1, 1)
                up = up + self._bias[key]
            return class_map(up)


class TorchRuntime:
    """Stored graphs in PyTorch on CUDA device `gpu` (None: the CPU) at `precision`.

    fold_batchnorm: fold each BatchNorm into the convolution before it at load (default).
    optimize: on the CPU in fp32 (the default there), trace each bound graph and let
    PyTorch optimize it for inference (accel.runtime.torch_runtime.optimize_for_cpu):
    the same results, a few seconds more at binding, much less time per frame."""

    name = "torch"
    fast_ok = True

    def __init__(self, gpu: Optional[int] = None, precision: str = "fp32",
                 fold_batchnorm: bool = True, optimize: Optional[bool] = None):
        if precision not in PRECISIONS:
            raise ValueError(f"--precision {precision!r}: expected one of "
                             f"{', '.join(PRECISIONS)}")
        if gpu is not None:
            count = cuda_device_count()
            if gpu < 0 or gpu >= count:
                raise ValueError(f"--gpu {gpu}: PyTorch sees {count} CUDA device(s) "
                                 f"(torch {torch.__version__}, CUDA "
                                 f"{torch.version.cuda or 'none: a CPU-only build'}); use "
                                 f"--cpu or an existing id")
            self.torch_device = torch.device("cuda", gpu)
            _set_tf32(precision == "tf32")
            torch.backends.cudnn.benchmark = True  # shapes are fixed per bound graph
        else:
            if precision in ("tf32", "fp16"):
                raise ValueError(f"--precision {precision} needs a CUDA GPU (--gpu N); on "
                                 f"the CPU use fp32 or bf16")
            self.torch_device = torch.device("cpu")
            threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
            if threads:
                torch.set_num_threads(threads)
            if precision == "bf16" and not cpu_has_native_bf16():
                logger.warning("--precision bf16: this CPU has no native BF16 (avx512_bf16 "
                               "or amx_bf16); PyTorch emulates it, which is slow")
        self.precision = precision
        self.device = str(self.torch_device)
        self.fold_batchnorm = fold_batchnorm
        cpu_fp32 = self.torch_device.type == "cpu" and precision == "fp32"
        self.optimize = cpu_fp32 if optimize is None else bool(optimize)
        if self.optimize and not cpu_fp32:
            raise ValueError("the traced, optimized graphs are for fp32 on the CPU")
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        kind = self.torch_device.type
        self._autocast = ((lambda: torch.autocast(kind, dtype=dtype)) if dtype else
                          contextlib.nullcontext)

    def share(self, arg_params, aux_params) -> SharedParams:
        return SharedParams({k: to_tensor(v, self.torch_device) for k, v in arg_params.items()},
                            {k: to_tensor(v, self.torch_device) for k, v in aux_params.items()})

    def add_params(self, params: SharedParams, arrays) -> None:
        params.args.update({k: to_tensor(v, self.torch_device) for k, v in arrays.items()})

    def shapes(self, network, kind: str, input_shapes, outputs=None) -> Shapes:
        graph = load_graph(network.graph_name(kind), network.num_classes)
        try:
            return infer_shapes(graph, input_shapes, outputs)
        except (ValueError, RuntimeError) as err:
            raise ShapeError(str(err).strip().splitlines()[-1]) from None

    def bind(self, network, requests, params: SharedParams, int8=None) -> Dict[str, TorchBound]:
        if int8:
            raise ValueError("--int8 runs in MXNet (MKL-DNN); with --runtime torch use "
                             "--precision bf16 or fp16 instead")
        graphs = {}
        for kind, (outputs, shapes) in requests.items():
            name = network.graph_name(kind)
            module = TorchGraph(load_graph(name, network.num_classes), outputs, params,
                                fold_batchnorm=self.fold_batchnorm, name=name)
            graphs[kind] = TorchBound(module, shapes, self.torch_device, self._autocast,
                                      self.optimize)
        return graphs

    def labels(self, scores: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return class_map(scores[0])

    def upsampler(self, k1, out_hw, in_hw) -> _Upsampler:
        return _Upsampler(k1, out_hw, in_hw, self.torch_device)

    def host(self, value) -> np.ndarray:
        if isinstance(value, torch.Tensor):
            return value.detach().float().cpu().numpy()
        return np.asarray(value, np.float32)

    def synchronize(self) -> None:
        """Wait for the device (timers around a step on CUDA need it)."""
        if self.torch_device.type == "cuda":
            torch.cuda.synchronize(self.torch_device)
