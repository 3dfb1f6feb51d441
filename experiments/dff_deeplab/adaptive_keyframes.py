"""Fixed vs adaptive keyframe schedules on a labelled video stream (issue #14; CamVid
protocol v2, stage 5c).

    python experiments/dff_deeplab/adaptive_keyframes.py --model PREFIX --epoch N \
        [--cfg experiments/dff_deeplab/cfgs/camvid_protocol_v2_accel_18.yaml] \
        [--data-root DIR] [--versions dff 18] [--rates 2 3 4 5 6 7 8] --output DIR

For each version (DFF, Accel-18; both from the Accel-18 checkpoint, whose DeepLab-101 and
FlowNet are DFF's) it streams the whole test split (every segment continuously: adaptive
schedules need the stream, not snippets) and scores every labelled frame (the engine is
accel.keyframes.comparison, shared with reproduce_tables.py --keyframe-policies), with:
- `fixed` at intervals 1..8 (the original schedule, keyframe rate 1/i);
- every adaptive policy of accel.keyframes that the version supports, in budget mode at
  the target rates 1/2..1/8: the threshold is calibrated on the TRAINING split, never on the
  frames reported. CamVid train is labelled at 1 Hz and the test video at 15 Hz, so the
  calibration streams are 15 Hz streams made from the training frames: between two real
  frames 1 s apart, 14 frames each moved along the DIS flow between them by k/15 of it
  (from the nearer real frame; accel.dataset.flow_pairs), the motion of one val hop. The
  network's key states, flows and update-branch scores are recorded once per calibration
  frame, and each candidate threshold is run closed loop over them in NumPy (warp the state,
  the reference head), exactly the segmenter's propagation up to float rounding.
Reported per run: mIoU over all labelled frames, mIoU by distance from the keyframe, the
achieved keyframe rate (on the test stream and on the training streams), gaps, the longest
run of consecutive keyframes, time per frame (network + the policy's own work: copying the
signals and deciding) mean / p99 / max, and temporal consistency (accel.core.consistency).
Outputs in --output: results.json, results.md, miou_vs_rate.png, miou_vs_time.png.

`--video FILE` streams an unlabelled video (any file OpenCV reads, or a frame folder)
instead of the test split, with the same thresholds (still calibrated on the training
split): keyframe rate, gaps, runs, timing and consistency per policy, no mIoU.
"""
from typing import Any, Dict, Optional, Sequence

from accel.cli import run


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Compare the schedules (flags: accel.cli.adaptive); writes into --output."""
    # Imported here, after run() has imported MXNET_VERSION's mxnet.
    from accel.cli.adaptive import adaptive_keyframes

    return adaptive_keyframes(argv, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    run(main)
