"""Every command line of the project starts here: `run` honours MXNET_VERSION, then runs.

A runner (`dff_deeplab/demo.py`, `experiments/.../*_train_test.py`, the benchmark...) is a
thin file whose `main(argv)` imports its real work inside the function, and whose
`__main__` calls `run(main)`. `run` reads the yaml named by `--cfg` with plain
`yaml.safe_load` (nothing here imports mxnet), takes `MXNET_VERSION` from it (a
`MXNET_VERSION=NAME` override or `--mxnet-version NAME` on the command line wins), imports
that MXNet (`accel.utils.mxnet_version.import_mxnet`) and only then calls `main`; with
`--runtime torch` no MXNet is imported at all. Bad input
ends the process with one line naming what is wrong (exit 1); `--debug` shows the traceback.

This package is the only place that knows the repository's layout (`REPO_ROOT`): the
library below it is given paths, never guesses them.
"""
import logging
import os
import sys
from typing import Any, Callable, Optional, Sequence

import yaml

from accel.utils.mxnet_version import INSTALLED, MXNetVersionError, import_mxnet

__all__ = ["REPO_ROOT", "EXTERNAL_MXNET", "BAD_INPUT", "repo_path", "mxnet_version_of",
           "bootstrap", "run"]

# lib/accel/cli/__init__.py -> the repository (the package is installed editable).
REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
EXTERNAL_MXNET = os.path.join(REPO_ROOT, "external", "mxnet")

logger = logging.getLogger("accel")


def repo_path(path: str) -> str:
    """A relative path as given when it exists from here, else under the repository."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    candidate = os.path.join(REPO_ROOT, path)
    return candidate if os.path.exists(candidate) else path


def _flag_value(argv: Sequence[str], flag: str) -> Optional[str]:
    """The value of `flag` in argv (`--flag V` or `--flag=V`), the last one winning."""
    value = None
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(flag + "="):
            value = arg[len(flag) + 1:]
    return value


def mxnet_version_of(argv: Sequence[str]) -> str:
    """MXNET_VERSION for a command line: `--mxnet-version`, else a `MXNET_VERSION=` override,
    else the `--cfg` yaml's key, else "mxnet" (the installed package)."""
    explicit = _flag_value(argv, "--mxnet-version")
    if explicit is not None:
        return explicit
    overrides = [a.split("=", 1)[1] for a in argv if a.startswith("MXNET_VERSION=")]
    if overrides:
        return overrides[-1]
    cfg = _flag_value(argv, "--cfg")
    if cfg is None or not os.path.isfile(cfg):
        return INSTALLED  # a missing --cfg is reported by the runner itself
    try:
        with open(cfg, encoding="utf-8") as f:
            tree = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as err:
        raise MXNetVersionError(f"--cfg {cfg}: cannot read MXNET_VERSION ({err})") from None
    value = tree.get("MXNET_VERSION", INSTALLED) if isinstance(tree, dict) else INSTALLED
    if not isinstance(value, str):
        raise MXNetVersionError(f"{cfg}: MXNET_VERSION must be a string (a folder name under "
                                f"{EXTERNAL_MXNET}, or 'mxnet'), got {value!r}")
    return value


def bootstrap(argv: Sequence[str], external_dir: Optional[str] = None):
    """Import the MXNet that the command line asks for; returns the module."""
    return import_mxnet(mxnet_version_of(argv), external_dir or EXTERNAL_MXNET)


def _bad_input_types() -> tuple:
    """Errors that are the user's input, not a bug: one line, no traceback."""
    types = [FileNotFoundError, ValueError, OSError, MXNetVersionError]
    try:
        from accel.utils.checkpoint import CheckpointError
        types.append(CheckpointError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


BAD_INPUT = _bad_input_types()


def run(main: Callable[[Optional[Sequence[str]]], Any],
        argv: Optional[Sequence[str]] = None, mxnet: str = "unless-torch") -> None:
    """Entry point of every runner: log to stderr, honour MXNET_VERSION, run `main(argv)`.

    mxnet: when to import MXNet first: 'unless-torch' (not for `--runtime torch`), 'always'
    (a runner that trains) or 'never' (a runner of the PyTorch runtime alone).

    Bad input (BAD_INPUT) exits 1 with its message on one line; `--debug` anywhere on the
    command line shows the traceback instead (and is removed before `main` sees it; each
    runner documents it in its --help with accel.cli.flags.add_debug_flag).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    # Not after "--": that is another command's (the launcher's workers).
    cut = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:cut]
    argv = [a for a in argv[:cut] if a != "--debug"] + argv[cut:]
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if mxnet == "always" or (mxnet == "unless-torch"
                                 and _flag_value(argv, "--runtime") != "torch"):
            bootstrap(argv)
        code = main(argv)
    except BAD_INPUT as error:
        if debug:
            raise
        message = " ".join(str(error).split("\n")[0:1]) or type(error).__name__
        rest = str(error).split("\n")[1:]
        logger.error("%s%s", message, "".join(" " + r.strip() for r in rest if r.strip()))
        sys.exit(1)
    except KeyboardInterrupt:
        logger.error("interrupted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
