"""Accel / Deep Feature Flow demo: segment test snippets (mIoU, timing) or any video.

    python dff_deeplab/demo.py                          # Accel-18 on the bundled CamVid clip
    python dff_deeplab/demo.py --version 50 --interval 5 --num_ex 100 --dataset cityscapes
    python dff_deeplab/demo.py -v 18 -i 5 --video street.mp4 --panels

Keyframe when idx % interval == 0 (the keyframe network = DeepLab-101's scores); other
frames warp the previous frame's features by FlowNet's flow, hop by hop, and fuse them with
the update branch (`--version`). `--interval 1` is DeepLab-101 frame by frame; `-v dff`
is Deep Feature Flow alone (the warped branch's scores). Every flag and output is listed in
docs/demo.md; the command line is accel.cli.demo.accel_demo.

Which model: `--model PREFIX --epoch N`; else `--cfg X.yaml` (the checkpoint its training
run writes, epoch TEST.test_epoch); else, on CamVid, the sample config's training run
(accel.cli.demo.SAMPLE_CFG); else the official model of the version's row in
accel.symbols.versions (./model/accel-<v>-0000.params).
"""
from typing import Any, Dict, Optional, Sequence

from accel.cli import run


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run the demo; returns the metrics written to <output>/metrics.json."""
    # Imported here, after run() has imported MXNET_VERSION's mxnet (unless --runtime torch).
    from accel.cli.demo import accel_demo

    return accel_demo(argv, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    run(main)
