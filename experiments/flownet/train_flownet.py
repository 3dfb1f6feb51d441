"""Train FlowNet (DFF's FlowNetS) on unlabelled video pairs by distilling DIS optical flow,
then report its end-point error on the test split.

    python experiments/flownet/train_flownet.py --cfg experiments/flownet/cfgs/<x>.yaml [--cpu] [--resume] [KEY=VALUE ...]

The checkpoint (<output_path>/<cfg>/<image_set>/<model_prefix>-%04d.params) is what an
Accel config's `network.pretrained` (part `flow`) points to. Flags: accel.cli.train.
"""
from accel.cli import run


def main(argv):
    # Imported here, after run() has imported MXNET_VERSION's mxnet.
    from accel.cli.train import Runner, train_test
    from accel.core.flow_training import evaluate_flownet, train_flownet

    return train_test(argv, Runner(train_flownet, evaluate_flownet, __doc__.splitlines()[0]))

if __name__ == "__main__":
    run(main, mxnet="always")
