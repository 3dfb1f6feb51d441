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
from accel.cli.flags import add_debug_flag, nonnegative_int, positive_int

__all__ = ["Runner", "build_parser", "load_run_config", "train_test", "test_only"]

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
               f"({REPO_ROOT}).")
    parser.add_argument("--cfg", required=True, help="experiment yaml file")
    parser.add_argument("--cpu", action="store_true", help="train and test on the CPU")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the last complete checkpoint (TRAIN.RESUME), with "
                             "the config the run was started with")
    parser.add_argument("--accept-config-changes", action="store_true",
                        help="with --resume: continue although the config differs from the "
                             "run's saved one (the differences are listed and recorded in "
                             "config_changes.log in the run folder)")
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
    add_debug_flag(parser)
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
    from accel.cli.resume import check_resume_config
    from accel.config import checkpoint_prefix, dump_config
    from accel.core.train_state import prepare_run_folder
    from accel.utils.checkpoint import list_checkpoints
    from accel.utils.logger import create_logger
    from accel.utils.outputs import FolderLock
    from accel.utils.paths import saved_config_path

    resume = args.resume or cfg.TRAIN.RESUME
    prefix = checkpoint_prefix(cfg, args.cfg)
    if args.accept_config_changes and not resume:
        raise ValueError("--accept-config-changes: only with --resume (a fresh run saves its "
                         "own config)")
    # Before anything is written: never start a fresh run over an existing one, never
    # resume one with a config it was not started with (unless accepted).
    prepare_run_folder(prefix, resume, args.overwrite, cfg.TRAIN.begin_epoch)
    if resume:
        epochs = list_checkpoints(prefix)
        check_resume_config(cfg, saved_config_path(os.path.dirname(prefix), args.cfg),
                            args.accept_config_changes,
                            f"epoch {epochs[-1]}" if epochs else "no checkpoint")
    _, out_dir = create_logger(cfg.output_path, args.cfg, cfg.dataset.image_set)
    logger.info("config %s%s", args.cfg, " with " + " ".join(args.overrides)
                if args.overrides else "")

    def save_config() -> None:  # once training really starts
        dump_config(cfg, saved_config_path(out_dir, args.cfg))

    # One run at a time in a run folder (dist_sync workers share theirs: rank 0 writes).
    lock = None if str(cfg.default.kvstore).startswith("dist") else FolderLock(
        out_dir, "run folder")
    if lock is not None:
        lock.acquire()
    try:
        result = runner.train(cfg, args.cfg, cpu=args.cpu, resume=resume,
                              overwrite=args.overwrite, on_start=save_config)
    finally:
        if lock is not None:
            lock.release()
    if runner.test is not None and not args.no_test and result.rank == 0:
        runner.test(cfg, args.cfg, epoch=cfg.TRAIN.end_epoch, cpu=args.cpu,
                    runtime=runtime_from_args(args, cfg))
    return 0


def build_test_parser(description: str, interval: bool) -> argparse.ArgumentParser:
    """Flags of a test entry point (deeplab/test.py, dff_deeplab/test.py)."""
    parser = argparse.ArgumentParser(
        description=description,
        epilog="The checkpoint is the --cfg's training run's: <output_path>/<cfg name>/"
               "<image_set>/<model_prefix>-<epoch>.params; results are written beside it. "
               f"Relative paths inside the yaml are relative to {REPO_ROOT}.")
    parser.add_argument("--cfg", required=True, help="experiment yaml file of the run")
    parser.add_argument("--epoch", type=nonnegative_int, default=None,
                        help="checkpoint epoch (default: the --cfg's TEST.test_epoch)")
    if interval:
        parser.add_argument("--interval", type=positive_int, default=None,
                            help="keyframe interval (default: the --cfg's TEST.KEY_INTERVAL)")
        parser.add_argument("--avg", action="store_true",
                            help="average over every keyframe offset instead of the worst case")
    parser.add_argument("--cpu", action="store_true", help="test on the CPU")
    parser.add_argument("--skip-missing", action="store_true",
                        help="skip samples whose frames or labels are missing, with a warning")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. dataset.test_image_set=test")
    add_runtime_arguments(parser)
    add_debug_flag(parser)
    return parser


def test_only(argv: Optional[Sequence[str]], test: Callable, description: str,
              interval: bool = False) -> int:
    """Test a trained checkpoint as the command line says (`test(cfg, cfg_path, epoch=,
    cpu=, runtime=[, interval=, avg=])`); returns 0."""
    args = build_test_parser(description, interval).parse_intermixed_args(argv)
    cfg = load_run_config(args.cfg, args.overrides, args.skip_missing)
    kwargs = dict(epoch=args.epoch, cpu=args.cpu, runtime=runtime_from_args(args, cfg))
    if interval:
        kwargs.update(interval=args.interval, avg=args.avg)
    test(cfg, args.cfg, **kwargs)
    return 0
