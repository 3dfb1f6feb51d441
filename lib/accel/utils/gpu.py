"""MXNet's GPU build on a machine with only an NVIDIA driver: the CUDA 11 libraries it links,
loaded from their pip wheels, and the check that the GPU can run the build's kernels.

* ``preload_cuda_libraries()`` loads the ``nvidia-*-cu11`` wheels' libraries by absolute
  path (``RTLD_GLOBAL``, dependency order) before mxnet is imported, so that libmxnet.so
  and CuPy find them by soname without ``LD_LIBRARY_PATH``.
* ``check_gpu_supported(device_id)`` compares the device's compute capability with the
  architectures the installed MXNet carries machine code for; it raises one
  ``GPUUnsupportedError`` naming the GPU, its capability, the supported range and the
  alternatives. The CuPy operators (accel.operators.cuda) compile for the device at run
  time (NVRTC) and have no such limit.
* ``python -m accel.utils.gpu`` (run by ``sh init.sh --mxnet-gpu``) preloads, imports mxnet and
  runs one convolution on GPU 0, or says exactly what is missing.

Nothing here imports mxnet at module level, so it is safe to import before mxnet.
"""
import ctypes
import functools
import importlib.metadata
import importlib.util
import logging
import os
import re
import sys
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from accel.utils.fatbin import Arch, fatbin_architectures

__all__ = ["CUDA11_LIBRARIES", "DRIVER_LIBRARY", "MXNET_BUILD_ARCHS", "GPUUnsupportedError",
           "GPUDevice", "preload_cuda_libraries", "mxnet_cuda_architectures", "device_info",
           "runs_on", "supported_range", "check_gpu_supported", "check_install"]

log = logging.getLogger(__name__)

# Architectures with machine code in each MXNet GPU wheel. mxnet-cu112==1.9.1: read off the
# `.nv_fatbin` section of its libmxnet.so (accel.utils.fatbin): 198 fatbin
# containers, each holding cubins for exactly sm_50, sm_60, sm_70, sm_80 and sm_86 and no
# PTX, so the driver cannot JIT the kernels for a newer major (Hopper sm_90, Blackwell
# sm_100/sm_120: "no kernel image is available"). Builds not listed here are read the same
# way from the installed libmxnet.so.
MXNET_BUILD_ARCHS: Dict[Tuple[str, str], Tuple[Arch, ...]] = {
    ("mxnet-cu112", "1.9.1"): ((5, 0), (6, 0), (7, 0), (8, 0), (8, 6)),
}

# The CUDA 11 libraries that mxnet-cu112 1.9.1's libmxnet.so links (`readelf -d`: NEEDED
# libcudart.so.11.0, libnvrtc.so.11.2, libnvToolsExt.so.1, libcublas.so.11, libcufft.so.10,
# libcurand.so.10, libcusolver.so.11, libcudnn.so.8, libnccl.so.2, and the driver's
# libcuda.so.1), with what those need themselves (libcublasLt; cuDNN 8's six sub-libraries,
# which libcudnn.so.8 opens by soname at run time). Rows: (pip package, folder under
# site-packages/nvidia/, sonames in load order: a library after those it needs). The pins
# are in constraints.txt; init.sh installs the packages.
CUDA11_LIBRARIES: Tuple[Tuple[str, str, Tuple[str, ...]], ...] = (
    ("nvidia-cuda-runtime-cu11", "cuda_runtime", ("libcudart.so.11.0",)),
    ("nvidia-cuda-nvrtc-cu11", "cuda_nvrtc", ("libnvrtc.so.11.2",)),
    ("nvidia-nvtx-cu11", "nvtx", ("libnvToolsExt.so.1",)),
    ("nvidia-cublas-cu11", "cublas", ("libcublasLt.so.11", "libcublas.so.11")),
    ("nvidia-cufft-cu11", "cufft", ("libcufft.so.10",)),
    ("nvidia-curand-cu11", "curand", ("libcurand.so.10",)),
    ("nvidia-cusolver-cu11", "cusolver", ("libcusolver.so.11",)),
    ("nvidia-cudnn-cu11", "cudnn", ("libcudnn_ops_infer.so.8", "libcudnn_ops_train.so.8",
                                    "libcudnn_cnn_infer.so.8", "libcudnn_cnn_train.so.8",
                                    "libcudnn_adv_infer.so.8", "libcudnn_adv_train.so.8",
                                    "libcudnn.so.8")),
    ("nvidia-nccl-cu11", "nccl", ("libnccl.so.2",)),
)
DRIVER_LIBRARY = "libcuda.so.1"  # part of the NVIDIA driver, never a pip package

# ACCEL_SIMULATE_GPU="<major>.<minor>[:<name>]" makes every device report this capability
# (and name) instead of asking the driver: the gate's tests, and dry runs on other machines.
SIMULATE_ENV = "ACCEL_SIMULATE_GPU"

_GENERATIONS = {2: "Fermi", 3: "Kepler", 5: "Maxwell", 6: "Pascal", 7: "Volta/Turing",
                8: "Ampere/Ada", 9: "Hopper", 10: "Blackwell", 12: "Blackwell"}
_MXNET_GPU_DIST = re.compile(r"^mxnet[-_]cu\d+$", re.IGNORECASE)
_loaded: Dict[str, ctypes.CDLL] = {}


class GPUUnsupportedError(RuntimeError):
    """The installed MXNet has no machine code this GPU can run."""


class GPUDevice(NamedTuple):
    """A GPU as the driver (or ACCEL_SIMULATE_GPU) describes it."""

    index: int
    name: str
    capability: Arch


# ---------------------------------------------------------------- preloading


def mxnet_gpu_distribution() -> Optional[importlib.metadata.Distribution]:
    """The installed MXNet GPU wheel (mxnet-cu112, ...), or None (CPU build or none)."""
    for dist in importlib.metadata.distributions():
        if _MXNET_GPU_DIST.match(dist.metadata.get("Name") or ""):
            return dist
    return None


def _nvidia_roots() -> List[str]:
    """Folders holding site-packages' `nvidia/` package (where the -cu11 wheels unpack)."""
    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [os.path.dirname(p) for p in spec.submodule_search_locations]


def library_path(soname: str, roots: Optional[Sequence[str]] = None) -> Optional[str]:
    """Absolute path of a CUDA11_LIBRARIES soname inside the pip wheels, or None."""
    folders = {name: folder for _, folder, names in CUDA11_LIBRARIES for name in names}
    if soname not in folders:
        raise KeyError(f"{soname!r} is not one of the CUDA 11 libraries in CUDA11_LIBRARIES")
    for root in (_nvidia_roots() if roots is None else roots):
        path = os.path.join(root, "nvidia", folders[soname], "lib", soname)
        if os.path.isfile(path):
            return os.path.abspath(path)
    return None


def preload_cuda_libraries(roots: Optional[Sequence[str]] = None,
                           require_gpu_mxnet: bool = True) -> List[str]:
    """Load the nvidia-*-cu11 wheels' libraries (RTLD_GLOBAL, dependency order); their paths.

    roots: folders holding `nvidia/<package>/lib/` (default: where the `nvidia` package is
    installed). A no-op returning [] when none is installed or, with require_gpu_mxnet, when
    the installed MXNet is not a GPU build. Call before mxnet is first imported; calling
    again returns the libraries loaded so far. A library that fails to load is logged and
    skipped (check_install names it).
    """
    roots = _nvidia_roots() if roots is None else list(roots)
    found = [(soname, path) for _, _, sonames in CUDA11_LIBRARIES for soname in sonames
             for path in [library_path(soname, roots)] if path is not None]
    if not found or (require_gpu_mxnet and mxnet_gpu_distribution() is None):
        return list(_loaded)
    for soname, path in found:
        if path in _loaded:
            continue
        try:
            _loaded[path] = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError as err:
            log.warning("could not preload %s: %s", path, err)
    log.debug("preloaded %d CUDA libraries", len(_loaded))
    return list(_loaded)


# ---------------------------------------------------------------- architectures


def _libmxnet_path() -> Optional[str]:
    module = sys.modules.get("mxnet")
    if module is not None and getattr(module, "__file__", None):
        folder = os.path.dirname(module.__file__)
    else:
        spec = importlib.util.find_spec("mxnet")
        if spec is None or not spec.submodule_search_locations:
            return None
        folder = list(spec.submodule_search_locations)[0]
    path = os.path.join(folder, "libmxnet.so")
    return path if os.path.isfile(path) else None


@functools.lru_cache(maxsize=None)
def _read_architectures(path: str) -> Tuple[Arch, ...]:
    archs = fatbin_architectures(path)
    return tuple(sorted(set(archs["cubin"]) | set(archs["ptx"])))


def mxnet_cuda_architectures() -> Tuple[Arch, ...]:
    """Architectures the MXNet that is (or would be) imported carries code for; () for a
    CPU build or no MXNet. The MXNET_BUILD_ARCHS row when its wheel is the one installed."""
    path = _libmxnet_path()
    if path is None:
        return ()
    dist = mxnet_gpu_distribution()
    if dist is not None:
        row = MXNET_BUILD_ARCHS.get((dist.metadata["Name"].lower(), dist.version))
        owned = os.path.realpath(str(dist.locate_file("mxnet/libmxnet.so")))
        if row is not None and owned == os.path.realpath(path):
            return row
    return _read_architectures(os.path.realpath(path))


def runs_on(capability: Arch, archs: Sequence[Arch], ptx: Sequence[Arch] = ()) -> bool:
    """Whether code for `archs` runs on a device of `capability`: a cubin sm_XY runs on
    capability X.y with y >= Y (same major); PTX for sm_XY is compiled by the driver for any
    capability >= X.Y."""
    major, minor = capability
    return (any(a == major and b <= minor for a, b in archs)
            or any((major, minor) >= tuple(p) for p in ptx))


def supported_range(archs: Sequence[Arch]) -> str:
    """'compute capability 5.0 to 8.x (Maxwell to Ampere/Ada)' for cubin-only `archs`."""
    if not archs:
        return "no GPU (a CPU build)"
    majors = sorted({a for a, _ in archs})
    low = min(archs)
    names = f"{_GENERATIONS.get(majors[0], '?')} to {_GENERATIONS.get(majors[-1], '?')}"
    if majors == list(range(majors[0], majors[-1] + 1)):
        return f"compute capability {low[0]}.{low[1]} to {majors[-1]}.x ({names})"
    return "compute capability " + ", ".join(f"{a}.{b}+ within {a}.x" for a, b in archs)


# ---------------------------------------------------------------- the device


def _simulated(index: int) -> Optional[GPUDevice]:
    value = os.environ.get(SIMULATE_ENV)
    if not value:
        return None
    match = re.fullmatch(r"\s*(\d+)\.(\d)\s*(?::\s*(.+))?", value)
    if match is None:
        raise ValueError(f"{SIMULATE_ENV}={value!r}: expected '<major>.<minor>[:<name>]', "
                         f"e.g. '9.0:NVIDIA H200'")
    name = (match.group(3) or "simulated GPU").strip()
    return GPUDevice(index, name, (int(match.group(1)), int(match.group(2))))


def _driver_device(index: int) -> GPUDevice:
    """Name and capability from the CUDA driver API (libcuda.so.1) through ctypes."""
    try:
        cuda = ctypes.CDLL(DRIVER_LIBRARY)
    except OSError as err:
        raise RuntimeError(f"cannot load {DRIVER_LIBRARY} (the NVIDIA driver): {err}") from err

    def call(what: str, status: int) -> None:
        if status != 0:
            raise RuntimeError(f"CUDA driver: {what} failed with error {status}")

    call("cuInit", cuda.cuInit(0))
    count, device = ctypes.c_int(), ctypes.c_int()
    call("cuDeviceGetCount", cuda.cuDeviceGetCount(ctypes.byref(count)))
    if not 0 <= index < count.value:
        raise ValueError(f"GPU {index}: the driver reports {count.value} GPU(s)")
    call("cuDeviceGet", cuda.cuDeviceGet(ctypes.byref(device), index))
    major, minor = ctypes.c_int(), ctypes.c_int()
    # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75, _MINOR = 76 (cuda.h)
    call("cuDeviceGetAttribute", cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, device))
    call("cuDeviceGetAttribute", cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, device))
    name = ctypes.create_string_buffer(256)
    call("cuDeviceGetName", cuda.cuDeviceGetName(name, 256, device))
    return GPUDevice(index, name.value.decode(errors="replace"), (major.value, minor.value))


def _cupy_device(index: int) -> GPUDevice:
    import cupy
    props = cupy.cuda.runtime.getDeviceProperties(index)
    return GPUDevice(index, props["name"].decode(errors="replace"),
                     (int(props["major"]), int(props["minor"])))


def device_info(index: int) -> GPUDevice:
    """GPU `index`: ACCEL_SIMULATE_GPU when set, else the CUDA driver, else CuPy."""
    simulated = _simulated(index)
    if simulated is not None:
        return simulated
    try:
        return _driver_device(index)
    except RuntimeError as driver_error:
        try:
            return _cupy_device(index)
        except Exception:  # CuPy absent or failing: the driver's reason is the useful one
            raise driver_error from None


def unsupported_message(device: GPUDevice, archs: Sequence[Arch], build: str) -> str:
    """The one error for a GPU that `build` (code for `archs`) cannot run."""
    listed = ", ".join(f"sm_{a}{b}" for a, b in archs)
    major, minor = device.capability
    return (f"GPU {device.index} ({device.name}, compute capability {major}.{minor}) cannot "
            f"run {build}: its libmxnet.so carries machine code for {listed} and no PTX, so it "
            f"runs on {supported_range(archs)} only. Run on the CPU (--cpu, or gpus: '') or "
            f"on an Ampere/Ada GPU (e.g. A100, A10, L4, L40, RTX 30xx/40xx). The CuPy "
            f"operators (the flow warp) compile for the device at run time and do run "
            f"on it: experiments/gpu_check.py checks them without MXNet.")


def check_gpu_supported(device_id: int, archs: Optional[Sequence[Arch]] = None) -> GPUDevice:
    """GPU `device_id`, or GPUUnsupportedError when the installed MXNet cannot run on it.

    archs: the MXNet build's architectures (default: mxnet_cuda_architectures()); with none
    (a CPU build) there is nothing to compare and the device is returned as it is.
    """
    device = device_info(int(device_id))
    archs = mxnet_cuda_architectures() if archs is None else tuple(archs)
    if archs and not runs_on(device.capability, archs):
        dist = mxnet_gpu_distribution()
        build = f"{dist.metadata['Name']} {dist.version}" if dist is not None else "this MXNet"
        raise GPUUnsupportedError(unsupported_message(device, archs, build))
    return device


# ---------------------------------------------------------------- the install check


def missing_libraries(roots: Optional[Sequence[str]] = None) -> List[str]:
    """One line per CUDA 11 library MXNet links that cannot be loaded, naming its package."""
    missing = []
    for package, _, sonames in CUDA11_LIBRARIES:
        for soname in sonames:
            path = library_path(soname, roots)
            try:
                ctypes.CDLL(path or soname)
            except OSError as err:
                where = path or f"no file nvidia/.../{soname} in site-packages"
                missing.append(f"{soname} (pip package {package}): {where}: {err}")
    try:
        ctypes.CDLL(DRIVER_LIBRARY)
    except OSError as err:
        missing.append(f"{DRIVER_LIBRARY} (the NVIDIA driver; install it for the machine's "
                       f"GPU, nvidia-smi must work): {err}")
    return missing


def check_install() -> int:
    """Import MXNet's GPU build and run one convolution on GPU 0, else say what is missing."""
    dist = mxnet_gpu_distribution()
    if dist is None:
        log.error("no MXNet GPU build is installed (pip package mxnet-cu112); "
                  "`sh init.sh --mxnet-gpu` installs it")
        return 1
    loaded = preload_cuda_libraries()
    log.info("%s %s; preloaded %d CUDA 11 libraries from the nvidia-*-cu11 wheels",
             dist.metadata["Name"], dist.version, len(loaded))
    missing = missing_libraries()
    if missing:
        log.error("missing:\n  %s", "\n  ".join(missing))
        return 1
    try:
        import mxnet as mx
    except OSError as err:
        log.error("importing mxnet failed: %s", err)
        return 1
    if mx.context.num_gpus() < 1:
        log.error("MXNet finds no GPU (does nvidia-smi list one?)")
        return 1
    try:
        device = check_gpu_supported(0)
    except GPUUnsupportedError as err:
        log.error("%s", err)
        return 1
    ctx = mx.gpu(0)
    out = mx.nd.Convolution(mx.nd.ones((1, 3, 8, 8), ctx), mx.nd.ones((4, 3, 3, 3), ctx),
                            kernel=(3, 3), num_filter=4, no_bias=True)
    value = float(out.asnumpy().max())
    if value != 27.0:
        log.error("a 3x3 convolution of ones over 3 channels on %s gave %s, not 27", ctx, value)
        return 1
    log.info("ok: mxnet %s ran a convolution on GPU 0 (%s, compute capability %d.%d)",
             mx.__version__, device.name, *device.capability)
    try:
        import cupy
        total = int((cupy.arange(4) * 2).sum())  # an NVRTC-compiled kernel
        log.info("ok: CuPy %s ran a kernel on GPU 0 (sum %d)", cupy.__version__, total)
    except Exception as err:  # the accel operators need CuPy on GPU contexts
        log.error("CuPy failed: %s: %s", type(err).__name__, err)
        return 1
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="accel.utils.gpu: %(message)s")
    sys.exit(check_install())
