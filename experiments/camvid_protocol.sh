#!/bin/sh
# Our CamVid protocol, end to end on the CPU (docs/results.md, "Protocol v1"):
#   1. DeepLab-101 frame by frame, from scratch      (keyframe branch)
#   2. DeepLab-18 frame by frame, from scratch       (Accel-18's update branch)
#   3. FlowNetS distilled from DIS flow              (flow branch)
#   4. Accel-18 end to end (the correction layer), from 1-3
#   5. evaluation on val: DeepLab-101, DFF and Accel-18 at intervals 1-5, DeepLab-18
# Every stage resumes from its last complete checkpoint, so after an interruption run the
# script again. CAMVID=<folder> points at CamVid in the SegNet layout (default: the copy in
# ../shared/data/camvid). Outputs, logs and tables go to output/camvid_protocol/.
set -eu
cd "$(dirname "$0")/.."
OUT=output/camvid_protocol
LOGS=$OUT/logs
MODEL=$OUT/model
CAMVID=${CAMVID:-../shared/data/camvid}
mkdir -p "$LOGS" "$MODEL"
DATA="dataset.dataset_path=$CAMVID"

. experiments/protocol_lib.sh  # stage, export_model

stage "1 DeepLab-101" stage1_deeplab_101.log python experiments/deeplab/deeplab_train_test.py \
  --cfg experiments/deeplab/cfgs/camvid_protocol_deeplab_101.yaml --cpu --resume "$DATA"
export_model $OUT/camvid_protocol_deeplab_101/train/deeplab-101-0005.params deeplab-101-camvid

stage "2 DeepLab-18" stage2_deeplab_18.log python experiments/deeplab/deeplab_train_test.py \
  --cfg experiments/deeplab/cfgs/camvid_protocol_deeplab_18.yaml --cpu --resume "$DATA"
export_model $OUT/camvid_protocol_deeplab_18/train/deeplab-18-0004.params deeplab-18-camvid

stage "3 FlowNet" stage3_flownet.log python experiments/flownet/train_flownet.py \
  --cfg experiments/flownet/cfgs/camvid_protocol_flownet.yaml --cpu --resume "$DATA"
export_model $OUT/camvid_protocol_flownet/train/flownet-0003.params flownet-camvid

stage "4 Accel-18" stage4_accel_18.log python experiments/dff_deeplab/dff_deeplab_end2end_train_test.py \
  --cfg experiments/dff_deeplab/cfgs/camvid_protocol_accel_18.yaml --cpu --resume "$DATA"

ACCEL=$OUT/camvid_protocol_accel_18/train/accel-18-camvid
EVAL="--dataset camvid --data-root $CAMVID --scales 180 240 --stride 32 -e 0 --cpu"
stage "5a tables" stage5_tables.log python experiments/dff_deeplab/reproduce_tables.py \
  --versions 18 dff --intervals 1 2 3 4 5 --model 18=$ACCEL --model dff=$ACCEL --epoch 1 \
  --output $OUT/tables $EVAL
stage "5b DeepLab-18 alone" stage5_deeplab_18.log python deeplab/demo.py \
  --cfg experiments/deeplab/cfgs/camvid_protocol_deeplab_18.yaml \
  --output $OUT/deeplab_18_val $EVAL
echo "$(date '+%F %T') protocol complete: $OUT/tables/tables.md" | tee -a "$LOGS/protocol.log"
