"""The one place that picks MXNet devices: demos and tests (one context) and training (one
per GPU). Every GPU context returned has passed accel.utils.gpu.check_gpu_supported, so a GPU
the installed MXNet cannot run is one error here, before anything binds."""
from typing import List, Optional, Sequence

import mxnet as mx

from accel.utils.gpu import check_gpu_supported

__all__ = ["pick_context", "training_contexts"]


def _gpu(index: int) -> mx.Context:
    check_gpu_supported(index)
    return mx.gpu(index)


def pick_context(cpu: bool = False, gpu: Optional[int] = None,
                 cfg_gpu_ids: Optional[Sequence[int]] = None) -> mx.Context:
    """--cpu / --gpu N / the cfg's first GPU / GPU 0 when present, else the CPU.

    cfg_gpu_ids: the config's parsed `gpus` when there is a config (accel.config.parse_gpus);
    None without one. A config whose gpus is '' (or whose first id this machine lacks)
    means the CPU; only without a config does GPU 0 become the default.
    """
    available = mx.context.num_gpus()
    if cpu:
        return mx.cpu()
    if gpu is not None:
        if gpu < 0 or gpu >= available:
            raise ValueError(f"--gpu {gpu}: this machine has {available} GPU(s); "
                             f"use --cpu or an existing id")
        return _gpu(gpu)
    if cfg_gpu_ids is not None:
        ids = list(cfg_gpu_ids)
        return _gpu(ids[0]) if ids and ids[0] < available else mx.cpu()
    return _gpu(0) if available else mx.cpu()


def training_contexts(gpu_ids: Sequence[int], cpu: bool = False,
                      source: str = "gpus") -> List[mx.Context]:
    """One context per id in gpu_ids (the parsed config value named `source`); the CPU when
    `cpu` or there are no ids."""
    gpu_ids = list(gpu_ids)
    if cpu or not gpu_ids:
        return [mx.cpu()]
    available = mx.context.num_gpus()
    if max(gpu_ids) >= available:
        value = ",".join(str(i) for i in gpu_ids)
        raise ValueError(f"{source} = {value!r} but this machine has {available} GPU(s); "
                         f"pick existing ids or run on the CPU (--cpu, or {source}: '')")
    return [_gpu(i) for i in gpu_ids]
