"""Inference runtimes: the stored graphs (accel.graphs) executed by MXNet, ONNX
Runtime or PyTorch behind one small interface, so one streaming loop serves them all.

A `Runtime` holds a checkpoint's parameters on its device (`share`), says what a graph
needs and gives (`shapes`: parameter and output shapes for given input shapes, computing
nothing), binds graphs for fixed input shapes (`bind` -> one `Graph` per kind) and turns
score outputs into label maps (`labels`, `upsampler`) and outputs into NumPy (`host`).
A `Graph` takes inputs by name, keeps them between calls, and returns its outputs by their
official names (`res5c_relu_output`, `correction_output`, ...), as arrays of its device.

`make_runtime(name, ...)` builds one by name (the `--runtime` flag): 'mxnet' (the default,
the training and reference runtime), 'onnxruntime' (graphs exported to ONNX), 'torch'
(the graphs interpreted by PyTorch: GPUs MXNet cannot use, numpy 2, no MXNet at all).
Only the chosen runtime's package is imported.
"""
from dataclasses import dataclass, field
from typing import (Any, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple,
                    runtime_checkable)

import numpy as np

__all__ = ["Graph", "Runtime", "SharedParams", "ShapeError", "Shapes", "RUNTIMES",
           "PRECISIONS", "make_runtime", "torch_runtime_module"]

Shape = Tuple[int, ...]
Shapes = Tuple[Dict[str, Shape], Dict[str, Shape], Dict[str, Shape]]
RUNTIMES = ("mxnet", "onnxruntime", "torch")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")


class ShapeError(ValueError):
    """Input shapes that a graph cannot take (e.g. a frame size whose flow grid is not the
    feature grid)."""


@dataclass
class SharedParams:
    """A checkpoint's parameters on a runtime's device, shared by every graph bound over
    them; `cache` holds what a runtime derives from them once (e.g. folded BatchNorms)."""

    args: Dict[str, Any]
    aux: Dict[str, Any]
    cache: Dict[Any, Any] = field(default_factory=dict)


@runtime_checkable
class Graph(Protocol):
    """One graph bound for fixed input shapes."""

    outputs: List[str]
    """Official output names, in the order forward() returns them."""

    def set_input(self, name: str, value: Any) -> None:
        """Copy `value` (NumPy, or an array of this runtime) into input `name`."""

    def input(self, name: str) -> Any:
        """The current value of input `name`."""

    def forward(self, **inputs: Any) -> Dict[str, Any]:
        """Run on the given inputs (others keep their last value): {output name: array}."""


@runtime_checkable
class Runtime(Protocol):
    """What the segmenters need of an inference runtime (see the module docstring)."""

    name: str
    """'mxnet', 'onnxruntime' or 'torch'."""
    device: str
    """The device, for logs and metrics.json ('cpu(0)', 'gpu(0)', 'cuda:0')."""
    fast_ok: bool
    """Whether this runtime/device runs the fast graphs (accel.networks.FastAccelGraphs)."""

    def share(self, arg_params: Mapping[str, Any], aux_params: Mapping[str, Any]
              ) -> SharedParams:
        """Copy a checkpoint's arrays (NumPy or MXNet) onto the device, once."""

    def add_params(self, params: SharedParams, arrays: Mapping[str, np.ndarray]) -> None:
        """Add derived parameters (accel.networks.Network.derived_params) to `params`."""

    def shapes(self, network: Any, kind: str, input_shapes: Mapping[str, Shape],
               outputs: Optional[Sequence[str]] = None) -> Shapes:
        """(arg shapes, aux shapes, output shapes) of `network`'s 'key' or 'cur' graph;
        ShapeError when the inputs do not fit."""

    def bind(self, network: Any, requests: Mapping[str, Tuple[Sequence[str], Mapping]],
             params: SharedParams, int8: Optional[Mapping[str, Sequence[np.ndarray]]] = None
             ) -> Dict[str, Graph]:
        """{kind: graph} for requests {kind: (outputs, input shapes)}; `int8` {kind:
        calibration frames} asks for INT8 graphs (MXNet only)."""

    def labels(self, scores: Any) -> np.ndarray:
        """(H, W) uint8 argmax over classes of scores (1, C, H, W), copied to the host."""

    def upsampler(self, k1: np.ndarray, out_hw: Tuple[int, int], in_hw: Tuple[int, int]
                  ) -> Any:
        """An object whose `labels(scores, bias)` upsamples stride-16 scores (1, C, h, w)
        with the separable kernel outer(k1, k1) (accel.runtime.upsample), adds `bias` and
        returns the (H, W) uint8 argmax on the host."""

    def host(self, value: Any) -> np.ndarray:
        """An output as a float32 NumPy array on the host."""


def torch_runtime_module():
    """accel.runtime.torch_runtime; without PyTorch a ValueError saying how to install it."""
    try:
        from accel.runtime import torch_runtime
    except ImportError as err:
        if err.name != "torch":
            raise
        raise ValueError(str(err)) from None
    return torch_runtime


def make_runtime(name: str = "mxnet", gpu: Optional[int] = None, precision: str = "fp32",
                 providers: Optional[Sequence[str]] = None, ctx: Any = None,
                 **options: Any) -> Runtime:
    """The runtime `name` on GPU `gpu` (None: the CPU). precision: PyTorch only ('fp32',
    'tf32' and 'fp16' need CUDA; 'bf16' runs on CPU and GPU by autocast); providers: ONNX
    Runtime's execution providers; ctx: an MXNet context (MXNet and ONNX export); options:
    the MXNet runtime's (original_io)."""
    if name not in RUNTIMES:
        raise ValueError(f"--runtime {name!r}: expected one of {', '.join(RUNTIMES)}")
    if precision not in PRECISIONS:
        raise ValueError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if name != "torch" and precision != "fp32":
        raise ValueError(f"--precision {precision} is for --runtime torch; the {name} runtime "
                         f"runs fp32 (INT8 on MXNet: --int8)")
    if providers and name != "onnxruntime":
        raise ValueError("--providers is for --runtime onnxruntime")
    if name == "torch":
        return torch_runtime_module().TorchRuntime(gpu, precision, **options)
    if name == "onnxruntime":
        from accel.runtime.onnx_runtime import OnnxRuntime
        return OnnxRuntime(providers, ctx)
    from accel.runtime.mxnet_runtime import MXNetRuntime
    return MXNetRuntime(ctx, **options)
