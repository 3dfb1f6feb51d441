"""Train the frame-by-frame DeepLab, then test the last epoch:
python experiments/deeplab/deeplab_train_test.py --cfg <yaml> [--cpu] [--resume]
[KEY=VALUE ...]"""
import sys

from accel.core.trainer import train_test_main
from deeplab.test import test_net
from deeplab.train import train_net

if __name__ == "__main__":
    sys.exit(train_test_main(sys.argv[1:], train_net, test_net, __doc__))
