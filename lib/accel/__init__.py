"""Accel: video semantic segmentation by corrective fusion (CVPR 2019), shared library."""
import logging
import os
import sys

# MXNet reads OMP_NUM_THREADS once, when it loads. Left unset, pip's 1.9.1 build ran its
# operators about as fast as with one thread on a 2-core machine (DeepLab-101 trunk at
# 512x1024: ~2300 ms unset or 1 thread, 1300-1700 ms with 2), so default it to the cores
# this process may use. Import accel before mxnet for this to apply; an explicit setting wins.
if "mxnet" not in sys.modules:
    _cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
              else os.cpu_count() or 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(_cores))
    # mxnet-cu112 links the CUDA 11 libraries of NVIDIA's wheels but cannot find them by
    # itself: load them by absolute path first (a no-op for the CPU build; docs/gpu.md).
    from accel.utils.gpu import preload_cuda_libraries

    preload_cuda_libraries()

logging.getLogger(__name__).addHandler(logging.NullHandler())
