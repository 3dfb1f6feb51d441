"""Train the frame-by-frame DeepLab, then test the last epoch:
python experiments/deeplab/deeplab_train_test.py --cfg <yaml> [--cpu] [--resume] [--overwrite]
[--skip-missing] [--no-test] [KEY=VALUE ...]  (accel.cli.train)"""
from accel.cli import run


def main(argv):
    # Imported here, after run() has imported MXNET_VERSION's mxnet.
    from accel.cli.train import Runner, train_test
    from deeplab.test import test_net
    from deeplab.train import train_net

    return train_test(argv, Runner(train_net, test_net, __doc__.splitlines()[0]))

if __name__ == "__main__":
    run(main, mxnet="always")
