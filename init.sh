#!/bin/sh
# Sets up Accel on a fresh machine: dependencies, the Cython utilities, data/ model/ output/.
#
#   sh init.sh            CPU: mxnet==1.9.1
#   sh init.sh --gpu      GPU: mxnet-cu112 and CuPy (or ACCEL_DEVICE=gpu sh init.sh)
#
# Safe to run again. Every pip call goes through constraints.txt, so no later package can
# pull numpy 2 (MXNet 1.9.1 fails to import with it). PYTHON picks the interpreter.
set -eu
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
DEVICE=${ACCEL_DEVICE:-cpu}
for arg in "$@"; do
  case "$arg" in
    --gpu) DEVICE=gpu ;;
    --cpu) DEVICE=cpu ;;
    *) echo "init.sh: unknown argument '$arg' (expected --cpu or --gpu)" >&2; exit 2 ;;
  esac
done

case "$DEVICE" in
  cpu) MXNET_PKG="mxnet==1.9.1"; EXTRA="" ;;
  # mxnet-cu112 links, but does not bundle, the CUDA 11 runtime: its libraries come from
  # NVIDIA's pip wheels (pins in constraints.txt; the sonames and their load order in
  # lib/accel/utils/gpu.py, CUDA11_LIBRARIES), preloaded by accel before mxnet loads.
  gpu) MXNET_PKG="mxnet-cu112==1.9.1"
       EXTRA="nvidia-cuda-runtime-cu11 nvidia-cuda-nvrtc-cu11 nvidia-nvtx-cu11 nvidia-cublas-cu11
              nvidia-cufft-cu11 nvidia-curand-cu11 nvidia-cusolver-cu11 nvidia-cudnn-cu11
              nvidia-nccl-cu11 cupy-cuda11x" ;;
  *) echo "init.sh: ACCEL_DEVICE must be cpu or gpu, not '$DEVICE'" >&2; exit 2 ;;
esac

echo "init.sh: installing dependencies for $DEVICE with $($PYTHON --version 2>&1)"
$PYTHON -m pip install --disable-pip-version-check -q -c constraints.txt \
  -r requirements.txt "$MXNET_PKG" $EXTRA

echo "init.sh: building the Cython utilities and installing the accel packages (editable)"
$PYTHON -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .

mkdir -p data model output
if [ "$DEVICE" = gpu ]; then
  $PYTHON -c "import numpy, cv2, accel; print('init.sh: ok: numpy', numpy.__version__, '| opencv', cv2.__version__)"
  # Loads the CUDA libraries, imports mxnet, runs one convolution and one CuPy kernel on
  # GPU 0; otherwise names what is missing (a library, the driver, a supported GPU).
  echo "init.sh: checking MXNet and CuPy on the GPU"
  exec $PYTHON -m accel.utils.gpu
fi
$PYTHON -c "import mxnet, numpy, cv2, accel; print('init.sh: ok: mxnet', mxnet.__version__, '| numpy', numpy.__version__, '| opencv', cv2.__version__)"
