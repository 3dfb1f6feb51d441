"""Export a released (or trained) Accel / DFF / DeepLab-101 checkpoint to ONNX files.

    python experiments/export_onnx.py --version 18 --model model/accel-18 --epoch 0 \
        --size 1024 2048 --output output/onnx/accel-18
    python experiments/export_onnx.py --version deeplab --model model/pretrained/deeplab-101 \
        --epoch 0 --size 1024 2048 --dynamic --check

Writes, with the checkpoint's weights as initializers:
* Accel-18/34/50/101 and dff: `<name>.key_test.onnx` (input `data`; outputs `res5c_relu`,
  the state, and `croped_score`) and `<name>.cur_test.onnx` (inputs `data`, `data_key` the
  previous frame, `feat_key` the propagated state; outputs `warping_feat`, the next state,
  and the scores `correction`, or `croped_score` for 101 and dff);
* deeplab: `deeplab_resnet_v1_101.test.onnx` (input `data`; outputs `croped_score`,
  `softmax`).
Frames are (1, 3, H, W) float32, RGB minus the means (R 123.15, G 115.90, B 103.06), H and
W multiples of 32. --dynamic leaves H and W symbolic. --deformable picks the export of the
deformable convolutions: 'sampling' (GridSample + one convolution, opset 17, any runtime
with GridSample) or 'deformconv' (ONNX DeformConv, opset 19). --check runs each graph in
MXNet and ONNX Runtime (CPU) on a sample frame and logs the differences.

--benchmark N (with --random-weights instead of --model/--epoch for timing only) streams N
sample frames, keyframe every --interval, through the segmenter on ONNX Runtime (CPU) and
on the MXNet reference and fast paths, frame by frame in turns, and prints a Markdown
table: the protocol of experiments/benchmark.py (warm-up frames left out; per frame the
forward, the argmax and the copy to the host; reference = the original demo's host work).
Flags and wiring: accel.cli.export.
"""
import sys
from typing import Any, Dict, Optional, Sequence

from accel.cli import run


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Export (and check, and time) as the command line says; the benchmark's table goes
    to standard output."""
    # Imported here, after run() has imported MXNET_VERSION's mxnet.
    from accel.cli.export import export_onnx

    result = export_onnx(argv, __doc__.split("\n\n")[0])
    if result["benchmark"]:
        sys.stdout.write(result["benchmark"] + "\n")
    return result


if __name__ == "__main__":
    run(main)
