"""The runtime flags, defined once (--runtime, --precision, --providers) and added to every
command that runs the networks for inference: the demos, the test step of the training
runners, the table script and the benchmark; and the speed flags of Accel/DFF on the CPU
(the fast graphs or the official ones, INT8) of the demo and the table script."""
import argparse
import logging
from typing import Any, Dict, Optional, Sequence

from accel.cli.data import DemoData, calibration_frames
from accel.cli.flags import positive_int
from accel.config import parse_gpus
from accel.runtime import PRECISIONS, RUNTIMES, Runtime, make_runtime, torch_runtime_module
from accel.utils.device import choose_gpu, pick_context

__all__ = ["add_runtime_arguments", "device_runtime", "runtime_from_args", "add_speed_arguments",
           "speed_options"]

logger = logging.getLogger("accel.demo")


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


def device_runtime(name: str = "mxnet", cfg: Any = None, cpu: bool = False,
                   gpu: Optional[int] = None, precision: str = "fp32",
                   providers: Optional[Sequence[str]] = None) -> Runtime:
    """The runtime `name` on GPU `gpu`, else the CPU with `cpu`, else the config's first GPU,
    else GPU 0 when present, else the CPU (accel.utils.device.choose_gpu)."""
    cfg_ids = parse_gpus(cfg.gpus) if cfg is not None else None
    if name == "torch":
        count = torch_runtime_module().cuda_device_count()
        return make_runtime("torch", gpu=choose_gpu(count, cpu, gpu, cfg_ids),
                            precision=precision, providers=providers)
    ctx = pick_context(cpu=cpu, gpu=gpu, cfg_gpu_ids=cfg_ids)
    return make_runtime(name, ctx=ctx, precision=precision, providers=providers)


def runtime_from_args(args: argparse.Namespace, cfg: Any = None,
                      cpu: Optional[bool] = None) -> Runtime:
    """The runtime of --runtime/--precision/--providers on the device of --cpu/--gpu
    (`device_runtime`)."""
    return device_runtime(args.runtime, cfg, args.cpu if cpu is None else cpu,
                          getattr(args, "gpu", None), args.precision, args.providers)


def add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    """How Accel/DFF run on the CPU: the fast path (default), the official graphs, INT8."""
    speed = parser.add_argument_group("speed (CPU)")
    speed.add_argument("--reference-path", action="store_true",
                       help="the official graphs, as the original demo runs them (default: the "
                            "fast graphs where the runtime has them; the same up to rounding)")
    speed.add_argument("--int8", default=None, metavar="FOLDER",
                       help="run the keyframe trunk in INT8, calibrated on images of FOLDER "
                            "(e.g. training frames); this changes the accuracy: measure it")
    speed.add_argument("--int8-frames", type=positive_int, default=8, metavar="N",
                       help="calibration images taken evenly from --int8 FOLDER (default 8)")
    speed.add_argument("--int8-scope", choices=("key", "all"), default="key",
                       help="key: the keyframe trunk only (default); all: also the flow "
                            "network and the update branch")


def speed_options(args: argparse.Namespace, data: DemoData, runtime: Runtime) -> Dict[str, Any]:
    """{'fast': bool, 'int8_calibration', 'int8_scope'} from the speed flags."""
    panels = getattr(args, "panels", False)
    fast = runtime.fast_ok and not args.reference_path and not panels
    if args.int8 is not None and not (fast and runtime.name == "mxnet"):
        why = ("--reference-path" if args.reference_path else "--panels" if panels
               else f"--runtime {runtime.name}" if runtime.name != "mxnet"
               else f"the device {runtime.device}")
        raise ValueError(f"--int8 runs on MXNet's fast CPU path, which {why} rules out")
    if panels and runtime.fast_ok and not args.reference_path:
        logger.info("--panels: running the official graphs (the fast path keeps no "
                    "per-branch scores)")
    calib = (calibration_frames(args.int8, data, args.int8_frames)
             if args.int8 is not None else None)
    return {"fast": fast, "int8_calibration": calib, "int8_scope": args.int8_scope}
