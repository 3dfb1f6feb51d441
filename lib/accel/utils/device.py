"""The one place that picks devices: demos and tests (one device) and training (one per
GPU). `choose_gpu` is the rule every runtime follows (--cpu, --gpu N, the config's first GPU,
GPU 0 when present); `pick_context` applies it to MXNet, and every GPU context it returns
has passed accel.utils.gpu.check_gpu_supported, so a GPU the installed MXNet cannot run is
one error here, before anything binds. MXNet is imported only by the MXNet functions."""
from typing import Any, List, Optional, Sequence

from accel.utils.gpu import check_gpu_supported

__all__ = ["choose_gpu", "pick_context", "training_contexts"]


def choose_gpu(available: int, cpu: bool = False, gpu: Optional[int] = None,
               cfg_gpu_ids: Optional[Sequence[int]] = None) -> Optional[int]:
    """The GPU id to run on (None: the CPU) when `available` GPUs are present.

    cfg_gpu_ids: the config's parsed `gpus` when there is a config (accel.config.parse_gpus);
    None without one. A config whose gpus is '' (or whose first id this machine lacks)
    means the CPU; only without a config does GPU 0 become the default.
    """
    if cpu:
        return None
    if gpu is not None:
        if gpu < 0 or gpu >= available:
            raise ValueError(f"--gpu {gpu}: this machine has {available} GPU(s); "
                             f"use --cpu or an existing id")
        return gpu
    if cfg_gpu_ids is not None:
        ids = list(cfg_gpu_ids)
        return ids[0] if ids and ids[0] < available else None
    return 0 if available else None


def _gpu(index: int) -> Any:
    import mxnet as mx

    check_gpu_supported(index)
    return mx.gpu(index)


def pick_context(cpu: bool = False, gpu: Optional[int] = None,
                 cfg_gpu_ids: Optional[Sequence[int]] = None) -> Any:
    """The MXNet context of `choose_gpu` (mx.cpu() or a checked mx.gpu(i))."""
    import mxnet as mx

    index = choose_gpu(mx.context.num_gpus(), cpu, gpu, cfg_gpu_ids)
    return mx.cpu() if index is None else _gpu(index)


def training_contexts(gpu_ids: Sequence[int], cpu: bool = False,
                      source: str = "gpus") -> List[Any]:
    """One context per id in gpu_ids (the parsed config value named `source`); the CPU when
    `cpu` or there are no ids."""
    import mxnet as mx

    gpu_ids = list(gpu_ids)
    if cpu or not gpu_ids:
        return [mx.cpu()]
    available = mx.context.num_gpus()
    if max(gpu_ids) >= available:
        value = ",".join(str(i) for i in gpu_ids)
        raise ValueError(f"{source} = {value!r} but this machine has {available} GPU(s); "
                         f"pick existing ids or run on the CPU (--cpu, or {source}: '')")
    return [_gpu(i) for i in gpu_ids]
