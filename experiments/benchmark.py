"""Per-frame cost of DeepLab-101, DFF and Accel-18/34/50/101 on this machine, path by path.

    python experiments/benchmark.py                       # 512x1024, interval 5
    python experiments/benchmark.py --int8 key all        # also the INT8 trunks
    python experiments/benchmark.py --paths reference fast torch onnxruntime
    python experiments/benchmark.py --size 1024 2048 --versions 18 --rss

Paths (--paths; default reference and fast), measured in one process, frame by frame in
turns so that machine noise hits all alike (accel.bench.stream):
* reference: the official graphs in MXNet, each frame's host work as the original demo did
  it (fresh input array, full score map copied to the host, argmax in NumPy);
* fast: the fast graphs in MXNet (inputs copied in place, our CPU deformable convolution,
  score fusion at stride 16, the fc6 state propagated, the upsampling fused with the argmax);
* 'fast, INT8 key', 'fast, INT8 all' (or --int8 key all): the fast path with INT8 trunks,
  calibrated on sample_data's training frames (timing only);
* torch, 'torch reference', 'torch bf16': PyTorch in fp32 (fast / official graphs) and in
  bf16 (emulated, and slow, on a CPU without avx512_bf16 or amx_bf16: only when asked);
* onnxruntime, 'onnxruntime reference': ONNX Runtime (fast / official graphs).
Weights are synthetic (timing does not depend on them) with the fixed bilinear upsampling
kernels of the released models; frames are real CamVid frames from sample_data/ resized.
Prints a Markdown table (with whether this CPU has native BF16) and writes JSON (--json).
Per-sub-network times come from the same building blocks bound alone (dff_deeplab/parts.py).
--rss measures peak resident memory per version and path, each in a fresh child process.
"""
import sys
from typing import Optional, Sequence

from accel.cli import run


def time_parts(size, repeat):
    """The building blocks in MXNet (imported only when asked for)."""
    from dff_deeplab.parts import time_parts as parts

    return parts(size, repeat)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Time every version on every path; the table goes to standard output."""
    from accel.cli.benchmark import benchmark

    _, table = benchmark(argv, __doc__.splitlines()[0], parts=time_parts)
    sys.stdout.write(table + "\n")
    return 0


if __name__ == "__main__":
    run(main, mxnet="never")    # accel.cli.benchmark imports MXNet where a path needs it
