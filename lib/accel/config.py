"""Every configuration key with its default and meaning, and strict loading of yaml over them.

The experiment files in ``experiments/{deeplab,dff_deeplab}/cfgs/*.yaml`` are flat and
complete; ``load_config`` reads one with ``yaml.safe_load`` and merges it over a fresh copy of
the defaults below. A key that the defaults do not define, at any depth, or a value of the
wrong type is a ``ConfigError`` naming the dotted key and the file, so a typo can never be
silently ignored. Nothing here is mutated at import: every caller gets its own tree and passes
it on explicitly.

Type rules: the type of the default is the expected type; an int is accepted (and converted)
where a float is expected, a bool never counts as a number, and list elements are checked
against ``_LIST_ITEM_TYPES``. A few keys have an extra check of their value (``_VALIDATORS``).
"""
import copy
import difflib
import math
import os
import re
from collections.abc import Mapping
from typing import Any, Callable, Dict, Iterable, List

import yaml

from accel.utils.image import PIXEL_MEANS

try:
    from easydict import EasyDict as edict
except ImportError:  # the MXNet-free runtime install (numpy, torch, opencv, pyyaml only)
    from accel.utils.attrdict import AttrDict as edict

__all__ = ["ConfigError", "get_defaults", "load_config", "merge_overrides", "dump_config",
           "config_to_dict", "parse_gpus", "parse_lr_steps", "resolve_paths", "PATH_KEYS",
           "checkpoint_prefix", "run_results_path"]


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the file and keys."""


# ---------------------------------------------------------------------------------------------
# Defaults. The single definition of every key; yaml files may only set keys that exist here.
# ---------------------------------------------------------------------------------------------
_C = edict()

# Which MXNet to import: "mxnet" = the installed package; any other name = the package in
# external/mxnet/<name>/ (see accel.utils.mxnet_version and external/mxnet/README.md).
_C.MXNET_VERSION = "mxnet"
# Root of all outputs; logs and checkpoints go to <output_path>/<cfg name>/<image_set>/
# (accel.utils.paths). Like every path key (_PATH_KEYS), relative to the repository root.
_C.output_path = "./output"
# Network to build, e.g. "accel_18" (Accel version implied by the name: 18/34/50/101),
# "dff_deeplab" or "deeplab_resnet_v1_101". Required: every yaml sets it.
_C.symbol = ""
# Comma-separated GPU ids, e.g. '0,1,2,3'; '' runs on the CPU.
_C.gpus = "0"
# Image scales as DFF's [target short side, max long side] pairs (Cityscapes [1024, 2048]
# keeps the native size); a single pair [s, l] is read as [[s, l]].
_C.SCALES = [[1024, 2048]]

_C.default = edict()
# Log training speed and metrics every `frequent` batches.
_C.default.frequent = 20
# MXNet kvstore used to aggregate gradients across devices ('device', 'local', 'dist_sync').
_C.default.kvstore = "device"

_C.network = edict()
# Prefix of the DFF model checkpoint (source of the FlowNet weights), e.g.
# ./model/rfcn_dff_flownet_vid; for DeepLab the ImageNet/DeepLab initialisation.
_C.network.pretrained = ""
# Prefix of the DeepLab ResNet-v1-101 checkpoint used as the keyframe (reference) branch.
_C.network.pretrained_base = ""
# Prefix of the update-branch DeepLab-18/34/50 checkpoint, loaded under TRAIN.arg_prefix.
_C.network.pretrained_ec = ""
# Epoch number of all pretrained checkpoints (file <prefix>-%04d.params).
_C.network.pretrained_epoch = 0
# Per-channel means subtracted from the input, in BGR order (the image is fed as RGB).
_C.network.PIXEL_MEANS = list(PIXEL_MEANS)
# Pad images to a multiple of this stride; 0 = no padding.
_C.network.IMAGE_STRIDE = 0
# Parameters whose names start with any of these prefixes are frozen during training.
_C.network.FIXED_PARAMS = []
# Warping implementation: 'builtin' (GridGenerator + BilinearSampler) or 'fused' (our
# CuPy/CPU operator with the same numerics). Ours; the original only had 'builtin'.
_C.network.WARP_OP = "builtin"
# Parts started from scratch instead of loaded (never loaded, even if the file exists), out
# of 'flow' (network.pretrained), 'base' (network.pretrained_base), 'ec'
# (network.pretrained_ec); for the frame-by-frame DeepLab 'base' is network.pretrained.
# Empty = every pretrained file is required. Ours; see accel.core.pretrained.
_C.network.INIT_FROM_SCRATCH = []

_C.dataset = edict()
# Number of semantic classes (Cityscapes: 19 train ids).
_C.dataset.NUM_CLASSES = 19
# Dataset name: 'cityscapes' or 'camvid'.
_C.dataset.dataset = "cityscapes"
# Folder holding the dataset (leftImg8bit_sequence/, gtFine/ for Cityscapes).
_C.dataset.dataset_path = "./data/cityscapes"
# Training image set(s); several may be joined with '+'.
_C.dataset.image_set = "leftImg8bit_train"
# Evaluation image set.
_C.dataset.test_image_set = "leftImg8bit_val"
# Missing frames or label files: false = an error naming the file (in training; a warning
# when testing), true = skip the samples that need them, with a warning (--skip-missing).
_C.dataset.skip_missing = False

_C.TRAIN = edict()
# Base learning rate (after warm-up).
_C.TRAIN.lr = 0.0005
# Epochs (comma-separated, fractional allowed, e.g. '40.336') at which lr *= lr_factor.
_C.TRAIN.lr_step = ""
# Factor applied to the learning rate at each lr_step.
_C.TRAIN.lr_factor = 0.1
# Use a constant warm-up learning rate for the first warmup_step updates.
_C.TRAIN.warmup = False
# Learning rate during warm-up.
_C.TRAIN.warmup_lr = 0.0
# Number of updates (batches) of warm-up.
_C.TRAIN.warmup_step = 0
# SGD momentum.
_C.TRAIN.momentum = 0.9
# SGD weight decay.
_C.TRAIN.wd = 0.0005
# First epoch to run (a non-zero value with RESUME loads that epoch's checkpoint).
_C.TRAIN.begin_epoch = 0
# Epoch after which training stops.
_C.TRAIN.end_epoch = 1
# Checkpoint file prefix inside the output folder: <model_prefix>-%04d.params.
_C.TRAIN.model_prefix = "model"
# Frames per key interval K: the labelled frame is warped from a keyframe K-1 frames back.
_C.TRAIN.KEY_INTERVAL = 5
# Synthetic small hops (ours, CamVid protocol v2): > 0 moves real frames along their DIS flow
# by this fraction of the training frame gap per hop (x0.5..1.5), for FlowNet pairs and
# Accel's reference frames (accel.dataset.flow_pairs); 0 = the real frames.
_C.TRAIN.SYNTHETIC_HOP = 0.0
# Add horizontally flipped copies of the training images.
_C.TRAIN.FLIP = False
# Shuffle the training images every epoch.
_C.TRAIN.SHUFFLE = True
# Resume from <model_prefix>-<begin_epoch>.params and its optimizer states.
_C.TRAIN.RESUME = False
# Optimizer states (.states, as big as the trainable parameters) kept for the last
# `keep_states` epochs only; older ones are deleted once a newer epoch is saved. 0 = keep all.
_C.TRAIN.keep_states = 1
# Resume from .states files of the old pickled format (unpickling runs code from the file;
# --legacy-states). Later epochs are saved in the new format.
_C.TRAIN.legacy_states = False
# Images per GPU per batch.
_C.TRAIN.BATCH_IMAGES = 1
# Kept so the official yaml files load; unused, as in the original (plain softmax loss).
_C.TRAIN.ENABLE_OHEM = False
# Prefix prepended to the parameter names of network.pretrained_ec (e.g. '18_').
_C.TRAIN.arg_prefix = ""
# Training crop height (the same window for every frame of a sample).
_C.TRAIN.CROP_HEIGHT = 768
# Training crop width.
_C.TRAIN.CROP_WIDTH = 1024
# Seed for Python, NumPy and MXNet random generators (ours, for reproducible runs).
_C.TRAIN.seed = 0

_C.TEST = edict()
# Epoch of the checkpoint to evaluate.
_C.TEST.test_epoch = 0
# Keyframe interval at test time (1 = every frame is a keyframe).
_C.TEST.KEY_INTERVAL = 5


# Element type of every list-valued key (needed where the default list is empty).
_LIST_ITEM_TYPES: Dict[str, type] = {
    "SCALES": list,
    "network.PIXEL_MEANS": float,
    "network.FIXED_PARAMS": str,
    "network.INIT_FROM_SCRATCH": str,
}

# Keys that must be set by the yaml file (their default is only a placeholder).
_REQUIRED = ("symbol",)

# Keys that hold file or folder paths. Relative values in a yaml file are relative to the
# repository root (the original's root_path), whatever the current folder: the command
# line resolves them with resolve_paths(cfg, accel.cli.REPO_ROOT).
_PATH_KEYS = ("output_path", "dataset.dataset_path", "network.pretrained",
              "network.pretrained_base", "network.pretrained_ec")

# Keys of older versions that are no longer read, and what to do about them.
_REMOVED = {
    "dataset.root_path": "it was never read; relative paths are relative to the repository "
                         "root. Delete the line",
    "dataset.ignore_label": "ignored pixels are always 255 (accel.utils.segmath.IGNORE_LABEL);"
                            " delete the line",
    "TEST.BATCH_IMAGES": "testing streams one frame at a time; delete the line",
}

_SCRATCH_PARTS = ("flow", "base", "ec")


def parse_gpus(gpus: str) -> List[int]:
    """'0,1,2' -> [0, 1, 2]; '' -> [] (CPU)."""
    text = gpus.strip()
    if not text:
        return []
    parts = [p.strip() for p in text.split(",")]
    if not all(re.fullmatch(r"\d+", p) for p in parts):
        raise ValueError(f"expected comma-separated GPU ids such as '0,1' or '' for the CPU, "
                         f"got {gpus!r}")
    return [int(p) for p in parts]


def parse_lr_steps(lr_step: str) -> List[float]:
    """'40.336' -> [40.336]; '1,2.5' -> [1.0, 2.5]; '' -> [] (increasing epochs required)."""
    text = lr_step.strip()
    if not text:
        return []
    try:
        steps = [float(p) for p in text.split(",")]
    except ValueError:
        raise ValueError(f"expected comma-separated epochs such as '40.336' or '2,4', "
                         f"got {lr_step!r}") from None
    if any(s < 0 for s in steps) or steps != sorted(steps):
        raise ValueError(f"expected non-negative increasing epochs, got {lr_step!r}")
    return steps


def _normalise_scales(value: List[Any]) -> List[List[int]]:
    """Accept [s, l] or [[s, l], ...] (short side, max long side); return [[s, l], ...]."""
    if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        value = [value]
    pairs = []
    for pair in value:
        if (not isinstance(pair, list) or len(pair) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                           for v in pair)):
            raise ValueError(f"expected [short side, max long side] pairs of positive ints, "
                             f"got {value!r}")
        pairs.append(list(pair))
    if not pairs:
        raise ValueError("expected at least one [short side, max long side] pair, got []")
    return pairs


def _check_choice(choices: Iterable[str]) -> Callable[[Any], Any]:
    choices = tuple(choices)

    def check(value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        bad = [v for v in items if v not in choices]
        if bad:
            raise ValueError(f"expected one of {list(choices)}, got {bad[0]!r}")
        return value
    return check


def _check_length(n: int) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if len(value) != n:
            raise ValueError(f"expected a list of {n} values, got {len(value)}: {value!r}")
        return value
    return check


def _check_non_negative(value: Any) -> Any:
    if value < 0:
        raise ValueError(f"expected a value >= 0, got {value!r}")
    return value


def _check_positive(value: Any) -> Any:
    if value <= 0:
        raise ValueError(f"expected a value > 0, got {value!r}")
    return value


def _check_parses(parse: Callable[[str], Any]) -> Callable[[str], str]:
    def check(value: str) -> str:
        parse(value)
        return value
    return check


# Checks (and normalisations) of a value beyond its type; each returns the value to store.
_VALIDATORS: Dict[str, Callable[[Any], Any]] = {
    "gpus": _check_parses(parse_gpus),
    "SCALES": _normalise_scales,
    "default.frequent": _check_positive,
    "network.PIXEL_MEANS": _check_length(3),
    "network.WARP_OP": _check_choice(("builtin", "fused")),
    "network.INIT_FROM_SCRATCH": _check_choice(_SCRATCH_PARTS),
    "network.pretrained_epoch": _check_non_negative,
    "network.IMAGE_STRIDE": _check_non_negative,
    "dataset.NUM_CLASSES": _check_positive,
    "TRAIN.lr_step": _check_parses(parse_lr_steps),
    "TRAIN.lr": _check_non_negative,
    "TRAIN.warmup_lr": _check_non_negative,
    "TRAIN.warmup_step": _check_non_negative,
    "TRAIN.begin_epoch": _check_non_negative,
    "TRAIN.end_epoch": _check_non_negative,
    "TRAIN.KEY_INTERVAL": _check_positive,
    "TRAIN.BATCH_IMAGES": _check_positive,
    "TRAIN.CROP_HEIGHT": _check_positive,
    "TRAIN.CROP_WIDTH": _check_positive,
    "TRAIN.keep_states": _check_non_negative,
    "TEST.KEY_INTERVAL": _check_positive,
}


def get_defaults() -> edict:
    """A fresh, independent copy of the default configuration."""
    return copy.deepcopy(_C)


def _type_name(t: type) -> str:
    return {str: "str", int: "int", float: "float", bool: "bool", list: "list"}.get(
        t, t.__name__)


def _looks_like_float(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def yaml_float_text(text: str) -> str:
    """A spelling of the number `text` that PyYAML (YAML 1.1) reads as a float, which needs
    a '.' in the mantissa and a sign in the exponent: '1e6' -> '1.0e+6', '5e-4' -> '5.0e-4'
    (issue #25.19); else Python's repr of the float ('1000000.0')."""
    match = re.fullmatch(r"([-+]?)(\d*)\.?(\d*)[eE]([-+]?)(\d+)", text.strip())
    if match:
        sign, whole, frac, exp_sign, exp = match.groups()
        candidate = f"{sign}{whole or '0'}.{frac or '0'}e{exp_sign or '+'}{int(exp)}"
        if yaml.safe_load(candidate) == float(text):
            return candidate
    return repr(float(text))


def _coerce_scalar(expected: type, value: Any) -> Any:
    """Return value as `expected`, or raise ValueError describing the mismatch."""
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
    elif expected is list:
        ok = isinstance(value, list)
    else:
        ok = isinstance(value, expected)
    if not ok:
        hint = " (quote it in yaml)" if expected is str and value is not None else ""
        if expected is float and isinstance(value, str) and _looks_like_float(value):
            hint = (f" (YAML 1.1, which PyYAML reads, takes {value} for text: write "
                    f"{yaml_float_text(value)}, with a '.' and a signed exponent)")
        raise ValueError(f"expected {_type_name(expected)}{hint}, "
                         f"got {type(value).__name__} {value!r}")
    return value


def _coerce(key: str, default: Any, value: Any) -> Any:
    """Type-check (and convert) `value` for `key` whose default is `default`, then validate."""
    if isinstance(default, list):
        value = _coerce_scalar(list, value)
        item_type = _LIST_ITEM_TYPES.get(key)
        if item_type is None and default:
            item_type = type(default[0])
        if item_type is not None and key != "SCALES":  # SCALES' items are checked below
            try:
                value = [_coerce_scalar(item_type, v) for v in value]
            except ValueError as err:
                raise ValueError(f"list items: {err}") from None
    else:
        value = _coerce_scalar(type(default), value)
    check = _VALIDATORS.get(key)
    return check(value) if check is not None else value


def _merge(target: edict, new: Any, prefix: str, errors: List[str]) -> None:
    """Merge mapping `new` into `target` in place, appending one message per bad key."""
    if not isinstance(new, Mapping):
        where = f"'{prefix[:-1]}'" if prefix else "the top level"
        errors.append(f"{where}: expected a mapping of keys, got {type(new).__name__} {new!r}")
        return
    for key, value in new.items():
        dotted = f"{prefix}{key}"
        if dotted in _REMOVED:
            errors.append(f"{dotted}: no longer a key: {_REMOVED[dotted]}")
            continue
        if key not in target:
            close = difflib.get_close_matches(str(key), [str(k) for k in target], n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            known = ", ".join(sorted(target))
            errors.append(f"{dotted}: unknown key{hint}; keys here: {known}")
            continue
        current = target[key]
        if isinstance(current, dict):
            _merge(current, value, dotted + ".", errors)
            continue
        try:
            target[key] = _coerce(dotted, current, value)
        except ValueError as err:
            errors.append(f"{dotted}: {err}")


def _raise(errors: List[str], source: str) -> None:
    if errors:
        raise ConfigError(f"invalid configuration in {source}:\n  - " + "\n  - ".join(errors))


class _StrictLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice in one mapping is an error (PyYAML would
    silently keep the last value)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice in the same mapping", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                              _mapping_without_duplicates)


def load_config(path: str) -> edict:
    """Read the yaml file at `path` and strictly merge it over a copy of the defaults."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = yaml.load(f, Loader=_StrictLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid yaml: {err}") from None
    cfg = get_defaults()
    errors: List[str] = []
    if data is not None:
        _merge(cfg, data, "", errors)
    for key in _REQUIRED:
        if not errors and not _get(cfg, key):
            errors.append(f"{key}: required, but not set")
    _raise(errors, path)
    return cfg


def _get(cfg: Mapping, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def merge_overrides(cfg: edict, overrides: Iterable[str]) -> edict:
    """Return a copy of `cfg` with 'KEY.SUB=VALUE' command-line overrides strictly applied.

    VALUE is read as yaml (so `TRAIN.lr=1e-3`, `TRAIN.FLIP=true`, `SCALES=[[512,1024]]`);
    for string keys the raw text is kept (`gpus=0`, `TRAIN.lr_step=40.336`).
    """
    out = copy.deepcopy(cfg)
    errors: List[str] = []
    overrides = list(overrides)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            errors.append(f"{item!r}: expected KEY=VALUE, e.g. TRAIN.lr=0.001")
            continue
        try:
            current: Any = _get(out, key)
        except (KeyError, TypeError):
            errors.append(f"{key}: unknown key (from {item!r})")
            continue
        if isinstance(current, dict):
            errors.append(f"{key}: is a section; override its keys one by one (from {item!r})")
            continue
        try:
            value = yaml.safe_load(text) if text.strip() else text
        except yaml.YAMLError:
            value = text
        if isinstance(current, str) and not isinstance(value, str):
            value = text
        nested: Dict[str, Any] = {}
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        _merge(out, nested, "", errors)
    _raise(errors, "command-line overrides " + " ".join(overrides))
    return out


PATH_KEYS = _PATH_KEYS


def resolve_paths(cfg: edict, base: str) -> edict:
    """A copy of `cfg` whose relative path keys (_PATH_KEYS) are made absolute under `base`
    (absolute ones and '' are kept), so that every error prints the path actually used."""
    from accel.utils.paths import resolve

    out = copy.deepcopy(cfg)
    for key in _PATH_KEYS:
        *parents, last = key.split(".")
        node = out
        for part in parents:
            node = node[part]
        node[last] = resolve(str(node[last]), base)
    return out


def checkpoint_prefix(cfg: Mapping, cfg_path: str) -> str:
    """Where the run of config file `cfg_path` writes `<prefix>-%04d.params`, for training
    and evaluation alike: <output_path>/<cfg name>/<image_set>/<TRAIN.model_prefix>
    (accel.utils.paths.run_prefix, the naming rule)."""
    from accel.utils.paths import run_prefix

    return run_prefix(cfg.output_path, cfg_path, cfg.dataset.image_set, cfg.TRAIN.model_prefix)


def run_results_path(cfg: Mapping, cfg_path: str, epoch: int, interval=None,
                      kind: str = "") -> str:
    """The results of testing epoch `epoch` of that run on dataset.test_image_set, beside its
    checkpoint (accel.utils.paths.results_path: at keyframe `interval`, or of a `kind`)."""
    from accel.utils.paths import results_path

    return results_path(checkpoint_prefix(cfg, cfg_path), epoch, cfg.dataset.test_image_set,
                        interval, kind)


def config_to_dict(cfg: Mapping) -> Dict[str, Any]:
    """Plain nested dicts/lists (no EasyDict), e.g. for yaml.safe_dump or json."""
    def plain(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v
    return plain(cfg)


def dump_config(cfg: Mapping, path: str) -> None:
    """Write `cfg` as yaml to `path` atomically (readable again by load_config)."""
    # Imported here so that reading a config never pulls in the checkpoint module's deps.
    from accel.utils.checkpoint import atomic_path

    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

