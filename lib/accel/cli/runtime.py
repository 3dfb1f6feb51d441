"""The runtime flags, defined once (--runtime, --precision, --providers) and added to every
command that runs the networks for inference: the demos, the test step of the training
runners, the table script and the benchmark."""
import argparse
from typing import Any, Optional

from accel.config import parse_gpus
from accel.runtime import PRECISIONS, RUNTIMES, Runtime, make_runtime, torch_runtime_module
from accel.utils.device import choose_gpu, pick_context

__all__ = ["add_runtime_arguments", "runtime_from_args"]


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """Which runtime executes the graphs (accel.runtime), at which precision."""
    group = parser.add_argument_group("runtime")
    group.add_argument("--runtime", choices=RUNTIMES, default="mxnet",
                       help="mxnet (default); onnxruntime: the graphs exported to ONNX; torch: "
                            "the graphs run by PyTorch (current GPUs with --gpu N, numpy 2, no "
                            "MXNet needed; docs/pytorch.md)")
    group.add_argument("--precision", choices=PRECISIONS, default="fp32",
                       help="with --runtime torch: fp32 (default), tf32 and fp16 (CUDA only), "
                            "bf16 (autocast; slow on CPUs without native BF16)")
    group.add_argument("--providers", nargs="+", default=None, metavar="PROVIDER",
                       help="with --runtime onnxruntime: its execution providers, in order "
                            "(default: CPUExecutionProvider)")


def runtime_from_args(args: argparse.Namespace, cfg: Any = None,
                      cpu: Optional[bool] = None) -> Runtime:
    """The runtime of --runtime/--precision/--providers on the device of --cpu/--gpu (else
    the config's first GPU, else GPU 0 when present, else the CPU)."""
    cfg_ids = parse_gpus(cfg.gpus) if cfg is not None else None
    cpu = args.cpu if cpu is None else cpu
    gpu = getattr(args, "gpu", None)
    if args.runtime == "torch":
        count = torch_runtime_module().cuda_device_count()
        return make_runtime("torch", gpu=choose_gpu(count, cpu, gpu, cfg_ids),
                            precision=args.precision, providers=args.providers)
    ctx = pick_context(cpu=cpu, gpu=gpu, cfg_gpu_ids=cfg_ids)
    return make_runtime(args.runtime, ctx=ctx, precision=args.precision,
                        providers=args.providers)
