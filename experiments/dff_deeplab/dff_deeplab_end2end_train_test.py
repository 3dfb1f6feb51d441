"""Train Accel/DFF end to end, then test the last epoch:
python experiments/dff_deeplab/dff_deeplab_end2end_train_test.py --cfg <yaml> [--cpu]
[--resume] [--overwrite] [--skip-missing] [--no-test] [KEY=VALUE ...]  (accel.cli.train)"""
from accel.cli import run


def main(argv):
    from accel.cli.train import train_test
    return train_test(argv, "accel")


if __name__ == "__main__":
    run(main)
