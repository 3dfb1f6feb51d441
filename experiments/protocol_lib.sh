# Shared by the CamVid protocol scripts (sourced): one stage with its log and timing, and the
# export of a checkpoint as the model the next stage loads. Needs LOGS and MODEL set.

stage() {  # name, log, command...
  name=$1; log=$2; shift 2
  echo "$(date '+%F %T') $name" | tee -a "$LOGS/protocol.log"
  start=$(date +%s)
  "$@" >> "$LOGS/$log" 2>&1 || { echo "$name failed: see $LOGS/$log" >&2; exit 1; }
  echo "$(date '+%F %T') $name done in $(( $(date +%s) - start )) s" | tee -a "$LOGS/protocol.log"
}

export_model() {  # checkpoint file -> $MODEL/<name>-0000.params (what the next stage loads)
  cp "$1" "$MODEL/$2-0000.params.tmp" && mv "$MODEL/$2-0000.params.tmp" "$MODEL/$2-0000.params"
}
