"""What a run ran on: code version, thread count, library versions, CPU.

Every training log and result file should carry this, so that two runs that disagree can be
told apart by their conditions (docs/results.md, "Reproducibility"). The thread count
matters: MXNet's CPU kernels split reductions by thread, so another OMP_NUM_THREADS can
change float sums.

Nothing here imports MXNet: when it is already loaded its own version and OpenMP thread
count are read from it, otherwise the installed package's version is reported and the
thread count is what the environment asks for.
"""
import ctypes
import importlib.metadata
import os
import platform
import subprocess
import sys
from typing import Dict, Optional

__all__ = ["run_provenance", "provenance_line", "git_state", "cpu_has_native_bf16", "UNKNOWN"]

UNKNOWN = "unknown"
# git finds the checkout this code runs from from any folder inside it.
_HERE = os.path.dirname(os.path.abspath(__file__))
# Environment variables that change how MXNet computes on the CPU.
_ENV = ("OMP_NUM_THREADS", "MXNET_OMP_MAX_THREADS", "MXNET_ENGINE_TYPE",
        "MXNET_SUBGRAPH_BACKEND", "MXNET_CPU_WORKER_NTHREADS", "MKL_NUM_THREADS")
# (report key, module name, distribution name)
_LIBRARIES = (("mxnet", "mxnet", "mxnet"), ("numpy", "numpy", "numpy"),
              ("opencv", "cv2", "opencv-python"), ("cython", "Cython", "Cython"))


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when this CPU computes BF16 natively (avx512_bf16 or amx_bf16 in `cpuinfo`);
    elsewhere PyTorch emulates it (slowly) and MXNet 1.9.1 cannot run it at all."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _git(args, cwd: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(root: str = _HERE) -> Dict[str, object]:
    """{'commit': 40-hex or 'unknown', 'dirty': bool or None} of the checkout at `root`.

    dirty = tracked files differ from the commit (untracked outputs do not count);
    None when `root` is not inside a git work tree or git is missing.
    """
    commit = _git(["rev-parse", "--verify", "HEAD"], root)
    if not commit:
        return {"commit": UNKNOWN, "dirty": None}
    status = _git(["status", "--porcelain", "--untracked-files=no"], root)
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def _library_version(module: str, distribution: str) -> str:
    loaded = sys.modules.get(module)
    version = getattr(loaded, "__version__", None) if loaded is not None else None
    if version:
        return str(version)
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN


def _mxnet_threads() -> Optional[int]:
    """OpenMP's thread count inside the loaded libmxnet (None when MXNet is not loaded)."""
    mxnet = sys.modules.get("mxnet")
    lib = getattr(getattr(mxnet, "base", None), "_LIB", None)
    if lib is None or not hasattr(lib, "omp_get_max_threads"):
        return None
    lib.omp_get_max_threads.restype = ctypes.c_int
    return int(lib.omp_get_max_threads())


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or UNKNOWN


def run_provenance() -> Dict[str, object]:
    """Code version, threads, library versions and CPU of this process, JSON-serialisable."""
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count())
    return {
        **git_state(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", UNKNOWN),
        "mxnet_omp_threads": _mxnet_threads(),
        "env": {k: os.environ[k] for k in _ENV if k in os.environ},
        "python": platform.python_version(),
        **{key: _library_version(mod, dist) for key, mod, dist in _LIBRARIES},
        "cpu": _cpu_model(),
        "cores": cores,
        "host": platform.node(),
    }


def provenance_line(info: Optional[Dict[str, object]] = None) -> str:
    """One log line: 'code <commit>[+dirty] threads ... python ... mxnet ... cpu ...'."""
    p = info if info is not None else run_provenance()
    commit = str(p["commit"])
    code = commit[:12] + ("+dirty" if p["dirty"] else "") if commit != UNKNOWN else UNKNOWN
    threads = p["omp_num_threads"]
    if p["mxnet_omp_threads"] is not None:
        threads = f"{threads} (mxnet omp {p['mxnet_omp_threads']})"
    return (f"code {code}, OMP_NUM_THREADS {threads}, {p['cores']} cores, "
            f"python {p['python']}, mxnet {p['mxnet']}, numpy {p['numpy']}, "
            f"opencv {p['opencv']}, cython {p['cython']}, cpu {p['cpu']}")
