#!/bin/sh
# Accuracy change of the INT8 trunks on CamVid val (docs/performance.md, "INT8"): the CamVid
# protocol's Accel-18 (sh experiments/camvid_protocol.sh first) evaluated on the fast path
# in float32, with the keyframe trunk in INT8, and with every trunk in INT8; calibration
# on 8 CamVid *training* frames. Tables go to output/int8_camvid/{fp32,int8_key,int8_all}.
set -eu
cd "$(dirname "$0")/.."
CAMVID=${CAMVID:-../shared/data/camvid}
ACCEL=output/camvid_protocol/camvid_protocol_accel_18/train/accel-18-camvid
EVAL="--versions 18 --intervals 1 5 --model 18=$ACCEL --epoch 1 --dataset camvid
      --data-root $CAMVID --scales 180 240 --stride 32 -e 0 --cpu"
python experiments/dff_deeplab/reproduce_tables.py $EVAL --output output/int8_camvid/fp32
python experiments/dff_deeplab/reproduce_tables.py $EVAL --output output/int8_camvid/int8_key \
  --int8 "$CAMVID/train" --int8-scope key
python experiments/dff_deeplab/reproduce_tables.py $EVAL --output output/int8_camvid/int8_all \
  --int8 "$CAMVID/train" --int8-scope all
