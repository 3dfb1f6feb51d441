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
  gpu) MXNET_PKG="mxnet-cu112==1.9.1"; EXTRA="cupy-cuda11x" ;;
  *) echo "init.sh: ACCEL_DEVICE must be cpu or gpu, not '$DEVICE'" >&2; exit 2 ;;
esac

echo "init.sh: installing dependencies for $DEVICE with $($PYTHON --version 2>&1)"
$PYTHON -m pip install --disable-pip-version-check -q -c constraints.txt \
  -r requirements.txt "$MXNET_PKG" $EXTRA

echo "init.sh: building the Cython utilities and installing the accel packages (editable)"
$PYTHON -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .

mkdir -p data model output
$PYTHON -c "import mxnet, numpy, cv2, accel; print('init.sh: ok: mxnet', mxnet.__version__, '| numpy', numpy.__version__, '| opencv', cv2.__version__)"
