"""Train FlowNet (DFF's FlowNetS) on unlabelled video pairs by distilling DIS optical flow,
then report its end-point error on the test split.

    python experiments/flownet/train_flownet.py --cfg experiments/flownet/cfgs/<x>.yaml [--cpu] [--resume]

The checkpoint (<output_path>/<cfg>/<image_set>/<model_prefix>-%04d.params) is what an
Accel config's `network.pretrained` (part `flow`) points to.
"""
import sys

from accel.core.flow_training import evaluate_flownet, train_flownet
from accel.core.trainer import train_test_main

if __name__ == "__main__":
    sys.exit(train_test_main(None, train_flownet, evaluate_flownet, __doc__.splitlines()[0]))
