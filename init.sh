#!/bin/sh
# Sets up Accel on a fresh machine: dependencies, the Cython utilities, data/ model/ output/.
#
#   sh init.sh               CPU: mxnet==1.9.1 (training, and the reference runtime)
#   sh init.sh --torch       CPU, and PyTorch for --runtime torch (the test command uses it)
#   sh init.sh --gpu         current NVIDIA GPUs (Hopper, Blackwell...): PyTorch with its CUDA
#                            and the matching CuPy for --runtime torch --gpu N; MXNet (CPU
#                            build) stays the training and reference runtime
#   sh init.sh --mxnet-gpu   MXNet on the GPU (mxnet-cu112 + CuPy for CUDA 11): GPUs of
#                            compute capability 5.0-8.6 only (Maxwell to Ampere)
#
# ACCEL_DEVICE=cpu|torch|gpu|mxnet-gpu does the same. Safe to run again. Every pip call goes
# through constraints.txt, so no later package can pull numpy 2 (MXNet 1.9.1 fails to import
# with it); PyTorch runs with numpy 1.23 as well. PYTHON picks the interpreter.
# The MXNet-free install (numpy 2, PyTorch only) is documented in docs/pytorch.md.
set -eu
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
DEVICE=${ACCEL_DEVICE:-cpu}
for arg in "$@"; do
  case "$arg" in
    --cpu) DEVICE=cpu ;;
    --torch) DEVICE=torch ;;
    --gpu) DEVICE=gpu ;;
    --mxnet-gpu) DEVICE=mxnet-gpu ;;
    *) echo "init.sh: unknown argument '$arg' (expected --cpu, --torch, --gpu or --mxnet-gpu)" >&2
       exit 2 ;;
  esac
done

PIP="$PYTHON -m pip install --disable-pip-version-check -q -c constraints.txt"
case "$DEVICE" in
  cpu) MXNET_PKG="mxnet==1.9.1"; EXTRA="" ;;
  torch|gpu) MXNET_PKG="mxnet==1.9.1"; EXTRA="torch" ;;
  # mxnet-cu112 links, but does not bundle, the CUDA 11 runtime: its libraries come from
  # NVIDIA's pip wheels (pins in constraints.txt; the sonames and their load order in
  # lib/accel/utils/gpu.py, CUDA11_LIBRARIES), preloaded by accel before mxnet loads.
  mxnet-gpu) MXNET_PKG="mxnet-cu112==1.9.1"
       EXTRA="nvidia-cuda-runtime-cu11 nvidia-cuda-nvrtc-cu11 nvidia-nvtx-cu11 nvidia-cublas-cu11
              nvidia-cufft-cu11 nvidia-curand-cu11 nvidia-cusolver-cu11 nvidia-cudnn-cu11
              nvidia-nccl-cu11 cupy-cuda11x" ;;
  *) echo "init.sh: ACCEL_DEVICE must be cpu, torch, gpu or mxnet-gpu, not '$DEVICE'" >&2; exit 2 ;;
esac

echo "init.sh: installing dependencies for $DEVICE with $($PYTHON --version 2>&1)"
$PIP -r requirements.txt "$MXNET_PKG" $EXTRA

if [ "$DEVICE" = gpu ]; then
  # CuPy (our CUDA warp kernel, shared with PyTorch by DLPack) for the CUDA of PyTorch's wheel.
  CUDA_MAJOR=$($PYTHON -c "import torch; print((torch.version.cuda or '').split('.')[0])")
  case "$CUDA_MAJOR" in
    12|13) $PIP "cupy-cuda${CUDA_MAJOR}x" ;;
    *) echo "init.sh: the installed PyTorch has no CUDA build (torch.version.cuda =" \
            "'$CUDA_MAJOR'); --runtime torch will run on the CPU only" >&2 ;;
  esac
fi

echo "init.sh: building the Cython utilities and installing the accel packages (editable)"
$PYTHON -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .

mkdir -p data model output
if [ "$DEVICE" = mxnet-gpu ]; then
  $PYTHON -c "import numpy, cv2, accel; print('init.sh: ok: numpy', numpy.__version__, '| opencv', cv2.__version__)"
  # Loads the CUDA libraries, imports mxnet, runs one convolution and one CuPy kernel on
  # GPU 0; otherwise names what is missing (a library, the driver, a supported GPU).
  echo "init.sh: checking MXNet and CuPy on the GPU"
  exec $PYTHON -m accel.utils.gpu
fi
$PYTHON -c "import mxnet, numpy, cv2, accel; print('init.sh: ok: mxnet', mxnet.__version__, '| numpy', numpy.__version__, '| opencv', cv2.__version__)"
if [ "$DEVICE" != cpu ]; then
  $PYTHON -c "import torch; from accel.runtime.torch_ops import warp_backend; d = 'cuda' if torch.cuda.is_available() else 'cpu'; print('init.sh: ok: torch', torch.__version__, '| CUDA', torch.version.cuda, '|', torch.cuda.device_count(), 'GPU(s) | warp on', d + ':', warp_backend(d))"
fi
