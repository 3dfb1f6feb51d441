"""The training command lines: train (then test the last epoch) a DeepLab, Accel or FlowNet.

    python experiments/deeplab/deeplab_train_test.py --cfg <yaml> [flags] [KEY=VALUE ...]
    python experiments/dff_deeplab/dff_deeplab_end2end_train_test.py --cfg <yaml> ...
    python experiments/flownet/train_flownet.py --cfg <yaml> ...
    python deeplab/train.py --cfg <yaml> ...            (train only)
    python dff_deeplab/train_end2end.py --cfg <yaml> ... (train only)

Each runner is `run(main)` with `main(argv)` calling `train_test(argv, kind)` (accel.cli.run
picks MXNET_VERSION, prints bad input on one line, --debug for the traceback). The yaml's
relative paths are relative to the repository root (REPO_ROOT); those given as KEY=VALUE
overrides to the current folder, as usual for a command line. The training code is imported
inside the functions, after MXNet has been chosen.
"""
import argparse
import logging
import os
from typing import Callable, NamedTuple, Optional, Sequence

from accel.cli import REPO_ROOT
from accel.cli.runtime import add_runtime_arguments, runtime_from_args

__all__ = ["Runner", "build_parser", "load_run_config", "train_test"]

logger = logging.getLogger("accel")


class Runner(NamedTuple):
    """What one kind of training runs, handed over by its entry point: the train step
    `train(cfg, cfg_path, cpu=, resume=, overwrite=, on_start=) -> TrainResult`, the test
    step `test(cfg, cfg_path, epoch=, cpu=, runtime=)` (None: train only) and the help
    text."""

    train: Callable
    test: Optional[Callable]
    description: str


def build_parser(runner: Runner) -> argparse.ArgumentParser:
    """Flags of a runner; one with a test step also has --no-test."""
    test = runner.test is not None
    parser = argparse.ArgumentParser(
        description=runner.description,
        epilog="Relative paths inside the yaml are relative to the repository root "
               f"({REPO_ROOT}). --debug shows the traceback of an error.")
    parser.add_argument("--cfg", required=True, help="experiment yaml file")
    parser.add_argument("--cpu", action="store_true", help="train and test on the CPU")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the last complete checkpoint (TRAIN.RESUME)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start again over an existing run of the same output folder "
                             "and model_prefix, deleting its checkpoints and results")
    parser.add_argument("--skip-missing", action="store_true",
                        help="skip samples whose frames or labels are missing, with a warning "
                             "(dataset.skip_missing), instead of stopping")
    parser.add_argument("--legacy-states", action="store_true",
                        help="resume from optimizer states in the old pickled format "
                             "(TRAIN.legacy_states; unpickling runs code from the file)")
    if test:
        parser.add_argument("--no-test", action="store_true", help="train only")
        add_runtime_arguments(parser)  # of the test step; training runs in MXNet
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. TRAIN.end_epoch=2 gpus=0,1")
    return parser


def load_run_config(cfg_path: str, overrides: Sequence[str] = (), skip_missing: bool = False,
                    legacy_states: bool = False):
    """The yaml (paths under REPO_ROOT), then the overrides (paths under the current folder),
    then the flags."""
    from accel.config import load_config, merge_overrides, resolve_paths

    cfg = resolve_paths(load_config(cfg_path), REPO_ROOT)
    cfg = resolve_paths(merge_overrides(cfg, overrides), os.getcwd())
    if skip_missing:
        cfg.dataset.skip_missing = True
    if legacy_states:
        cfg.TRAIN.legacy_states = True
    return cfg


def train_test(argv: Optional[Sequence[str]], runner: Runner) -> int:
    """Train as the command line says, then (unless --no-test, or the runner has no test
    step) test the last epoch. Returns 0."""
    # Flags may come after KEY=VALUE overrides too.
    args = build_parser(runner).parse_intermixed_args(argv)
    cfg = load_run_config(args.cfg, args.overrides, args.skip_missing, args.legacy_states)
    from accel.config import dump_config
    from accel.core.trainer import checkpoint_prefix, prepare_run_folder
    from accel.utils.logger import create_logger
    from accel.utils.paths import saved_config_path

    resume = args.resume or cfg.TRAIN.RESUME
    prefix = checkpoint_prefix(cfg, args.cfg)
    # Before anything is written: never start a fresh run over an existing one.
    prepare_run_folder(prefix, resume, args.overwrite, cfg.TRAIN.begin_epoch)
    _, out_dir = create_logger(cfg.output_path, args.cfg, cfg.dataset.image_set)
    logger.info("config %s%s", args.cfg, " with " + " ".join(args.overrides)
                if args.overrides else "")

    def save_config() -> None:  # once training really starts
        dump_config(cfg, saved_config_path(out_dir, args.cfg))

    result = runner.train(cfg, args.cfg, cpu=args.cpu, resume=resume,
                          overwrite=args.overwrite, on_start=save_config)
    if runner.test is not None and not args.no_test and result.rank == 0:
        runner.test(cfg, args.cfg, epoch=cfg.TRAIN.end_epoch, cpu=args.cpu,
                    runtime=runtime_from_args(args, cfg))
    return 0
