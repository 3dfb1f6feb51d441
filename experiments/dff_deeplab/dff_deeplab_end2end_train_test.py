"""Train Accel/DFF end to end, then test the last epoch:
python experiments/dff_deeplab/dff_deeplab_end2end_train_test.py --cfg <yaml> [--cpu]
[--resume] [KEY=VALUE ...]"""
import sys

from accel.core.trainer import train_test_main
from dff_deeplab.test import test_net
from dff_deeplab.train_end2end import train_net

if __name__ == "__main__":
    sys.exit(train_test_main(sys.argv[1:], train_net, test_net, __doc__))
