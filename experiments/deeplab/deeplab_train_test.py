"""Train the frame-by-frame DeepLab, then test the last epoch:
python experiments/deeplab/deeplab_train_test.py --cfg <yaml> [--cpu] [--resume] [--overwrite]
[--skip-missing] [--no-test] [KEY=VALUE ...]  (accel.cli.train)"""
from accel.cli import run


def main(argv):
    from accel.cli.train import train_test
    return train_test(argv, "deeplab")


if __name__ == "__main__":
    run(main)
