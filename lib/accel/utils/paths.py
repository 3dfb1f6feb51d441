"""The one naming rule for what a run writes: run folders, checkpoints, result files.

A run of config file `<cfg name>.yaml` on image set(s) `a+b` lives in
    <output_path>/<cfg name>/<a_b>/                      run folder (run_dir)
        <cfg name>.yaml                                  the merged config (saved_config_path)
        <cfg name>_<YYYY-mm-dd-HH-MM-SS>.log             one log per start (log_path)
        <model_prefix>-%04d.params                       parameters of an epoch (params_path)
        <model_prefix>-%04d.states                       optimizer momentum (states_path)
        <model_prefix>-%04d.json                         update count, sampler (train_state_path)
        <model_prefix>-symbol.json                       network definition (symbol_path)
        <model_prefix>-%04d_<test set>[_interval<K>|_flow].json   test results (results_path)
        .<file>.<random>.tmp                             a write in progress (temporary_pattern)

Plain values in, strings out: nothing here reads a config or knows where the repository is
(`resolve` takes the base folder as an argument; the command line passes it).
"""
import os
import re
from typing import List, Optional

__all__ = ["resolve", "cfg_name", "run_dir", "run_prefix", "params_path",
           "states_path", "train_state_path", "symbol_path", "results_path", "log_path",
           "saved_config_path", "epoch_files", "temporary_pattern", "stale_temporaries",
           "make_dir"]

EPOCH_SUFFIXES = (".params", ".states", ".json")


def resolve(path: str, base: str) -> str:
    """`path` if absolute (or ''), else `base`/`path`, normalised (`~` expanded first)."""
    if not path:
        return path
    path = os.path.expanduser(path)
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(base, path))


def cfg_name(cfg_path: str) -> str:
    """'experiments/x/cfgs/accel_18.yaml' -> 'accel_18'."""
    return os.path.splitext(os.path.basename(cfg_path))[0]


def run_dir(output_path: str, cfg_path: str, image_set: str) -> str:
    """<output_path>/<cfg file name without .yaml>/<image sets joined by '_'>."""
    image_sets = "_".join(s for s in image_set.split("+") if s)
    return os.path.join(output_path, cfg_name(cfg_path), image_sets)


def run_prefix(output_path: str, cfg_path: str, image_set: str, model_prefix: str) -> str:
    """The checkpoint prefix of a run, what `-%04d.params` etc. are appended to:
    run_dir(...)/<model_prefix> (accel.config.checkpoint_prefix reads these from a config)."""
    return os.path.join(run_dir(output_path, cfg_path, image_set), model_prefix)


def params_path(prefix: str, epoch: int) -> str:
    """'<prefix>-%04d.params', the parameter file of `epoch`."""
    return "%s-%04d.params" % (prefix, epoch)


def states_path(prefix: str, epoch: int) -> str:
    """'<prefix>-%04d.states', the optimizer states saved with epoch `epoch`."""
    return "%s-%04d.states" % (prefix, epoch)


def train_state_path(prefix: str, epoch: int) -> str:
    """'<prefix>-%04d.json': update count and sampler position saved with epoch `epoch`."""
    return "%s-%04d.json" % (prefix, epoch)


def symbol_path(prefix: str) -> str:
    """'<prefix>-symbol.json', the network definition saved beside the parameters."""
    return "%s-symbol.json" % prefix


def results_path(prefix: str, epoch: int, test_image_set: str, interval: Optional[int] = None,
                 kind: str = "") -> str:
    """Test results beside the checkpoint: '<prefix>-%04d_<test set>.json' (DeepLab),
    '..._interval<K>.json' (Accel/DFF at keyframe interval K), '..._<kind>.json' (e.g. flow)."""
    tail = "" if interval is None else "_interval%d" % interval
    tail += "_" + kind if kind else ""
    return "%s-%04d_%s%s.json" % (prefix, epoch, test_image_set, tail)


def log_path(folder: str, cfg_path: str, stamp: str) -> str:
    """<run folder>/<cfg name>_<stamp>.log (stamp: time.strftime('%Y-%m-%d-%H-%M-%S'))."""
    return os.path.join(folder, "%s_%s.log" % (cfg_name(cfg_path), stamp))


def saved_config_path(folder: str, cfg_path: str) -> str:
    """<run folder>/<the config's file name>: the merged config a run was started with."""
    return os.path.join(folder, os.path.basename(cfg_path))


def epoch_files(prefix: str) -> List[str]:
    """Existing `<prefix>-NNNN.params/.states/.json` and `<prefix>-NNNN_*.json` files, sorted."""
    folder = os.path.dirname(os.path.abspath(prefix))
    if not os.path.isdir(folder):
        return []
    pattern = re.compile(re.escape(os.path.basename(prefix))
                         + r"-\d{4,}(\.params|\.states|\.json|_.+\.json)")
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if pattern.fullmatch(n))


def temporary_pattern(path: str) -> "re.Pattern":
    """Names of the temporary files written on the way to `path` (see checkpoint.atomic_path):
    '.<basename>.<random>.tmp' in the same folder."""
    return re.compile(r"\." + re.escape(os.path.basename(path)) + r"\.[^./]+\.tmp")


def stale_temporaries(prefix: str) -> List[str]:
    """Temporary files a killed run left for `prefix`: '.<prefix name>-NNNN.params.*.tmp',
    '.states', '.json' and '-symbol.json' ones (never another prefix's)."""
    folder = os.path.dirname(os.path.abspath(prefix))
    if not os.path.isdir(folder):
        return []
    base = re.escape(os.path.basename(prefix))
    pattern = re.compile(r"\." + base + r"-(\d{4,}(\.params|\.states|\.json)|symbol\.json)"
                         r"\.[^./]+\.tmp")
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if pattern.fullmatch(n))


def make_dir(path: str, what: str = "output folder") -> str:
    """Create folder `path` (and parents); if a part of it is a file, say which."""
    part = os.path.abspath(path)
    while part and not os.path.exists(part):
        parent = os.path.dirname(part)
        if parent == part:
            break
        part = parent
    if os.path.exists(part) and not os.path.isdir(part):
        raise NotADirectoryError(f"{what} {path}: {part} is a file, not a folder; choose "
                                 f"another output_path or move the file away")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise OSError(f"cannot create {what} {path}: {err.strerror or err}") from None
    return path
