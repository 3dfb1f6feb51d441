#!/usr/bin/env bash
# CI, second install: the PyTorch runtime alone (docs/pytorch.md, "Without MXNet"): a fresh
# virtualenv with numpy 2, PyTorch, OpenCV and PyYAML only. A checkpoint trained by MXNet in
# the main install (2 epochs of the sample config) is segmented on the bundled clip by the
# demo with --runtime torch there, and by the MXNet demo here; the label maps must agree on
# >= 99.9% of pixels and the mIoU within 0.05 points.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
CFG=experiments/dff_deeplab/cfgs/accel_18_camvid_sample.yaml

echo "torch-only: training 2 epochs of the sample model with MXNet"
$PYTHON experiments/dff_deeplab/dff_deeplab_end2end_train_test.py --cfg $CFG --cpu --no-test \
  output_path="$WORK/out" TRAIN.end_epoch=2 > "$WORK/train.log" 2>&1 || { tail -20 "$WORK/train.log"; exit 1; }
PARAMS=$(find "$WORK/out" -name '*-0002.params' | head -1)
PREFIX=${PARAMS%-0002.params}

echo "torch-only: a virtualenv with numpy 2, torch, opencv-python-headless, pyyaml"
$PYTHON -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --disable-pip-version-check -q -c constraints-runtime.txt \
  numpy torch opencv-python-headless pyyaml
"$WORK/venv/bin/python" -c "import numpy, torch; print('torch-only: numpy', numpy.__version__, '| torch', torch.__version__)"
if "$WORK/venv/bin/python" -c "import mxnet" 2>/dev/null; then
  echo "torch-only: mxnet is importable in the venv; the check would prove nothing" >&2; exit 1
fi

ARGS="--cfg $CFG --model $PREFIX --epoch 2 --cpu -e 0 --no-video"
PYTHONPATH=lib:. "$WORK/venv/bin/python" dff_deeplab/demo.py $ARGS --runtime torch \
  --output "$WORK/torch" > "$WORK/torch.log" 2>&1 || { tail -20 "$WORK/torch.log"; exit 1; }
$PYTHON dff_deeplab/demo.py $ARGS --output "$WORK/mxnet" > "$WORK/mxnet.log" 2>&1 \
  || { tail -20 "$WORK/mxnet.log"; exit 1; }
"$WORK/venv/bin/python" - "$WORK" <<'PY'
import json, sys
from pathlib import Path
import cv2
work = Path(sys.argv[1])
metrics = {r: json.loads((work / r / "metrics.json").read_text()) for r in ("torch", "mxnet")}
agree = [(cv2.imread(str(a)) == cv2.imread(str(work / "torch" / "maps" / a.name))).all(2).mean()
         for a in sorted((work / "mxnet" / "maps").iterdir())]
diff = 100 * abs(metrics["torch"]["mIoU"] - metrics["mxnet"]["mIoU"])
print("torch-only: %d maps, pixels equal min %.5f; mIoU torch %.2f%%, mxnet %.2f%% (diff %.3f)"
      % (len(agree), min(agree), 100 * metrics["torch"]["mIoU"], 100 * metrics["mxnet"]["mIoU"],
         diff))
assert metrics["torch"]["runtime"] == "torch" and len(agree) == 12
assert min(agree) >= 0.999 and diff <= 0.05
PY
