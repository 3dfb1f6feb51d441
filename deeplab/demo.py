"""Frame-by-frame DeepLab demo: the per-frame network (ResNet-v1-101, dilated res5) alone.

    python deeplab/demo.py --model model/pretrained/deeplab-101 --dataset cityscapes
    python deeplab/demo.py --cfg experiments/deeplab/cfgs/<x>.yaml --video street.mp4

Same flags and outputs as dff_deeplab/demo.py (accel.cli.demo.add_demo_arguments)
without --version/--interval: every frame goes through the network. Which model:
`--model PREFIX --epoch N`, else the --cfg's training run (its `symbol` picks
DeepLab-101/18/34/50), else the official DeepLab-101 (model/pretrained/deeplab-101-0000.params).
"""
from typing import Any, Dict, Optional, Sequence

from accel.cli import run


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run the demo; returns the metrics written to <output>/metrics.json."""
    from accel.cli.demo import deeplab_demo  # after run() has imported MXNET_VERSION's mxnet

    return deeplab_demo(argv, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    run(main)
