"""Checkpoint files in the original's format, written atomically and checked strictly.

A checkpoint is ``<prefix>-%04d.params`` (``mx.nd.save`` of a dict whose keys are
``arg:<name>`` and ``aux:<name>``), optionally ``<prefix>-symbol.json`` and, for resuming,
``<prefix>-%04d.states`` (the optimizer states). Every file is written to a temporary file in
the same folder, flushed to disk and renamed over the target, so an interrupted save leaves
the previous file intact and never a truncated one. The published Accel/DFF/DeepLab weights
are files of this format and load unchanged.

MXNet is imported inside the functions, after ``accel.utils.mxnet_version.import_mxnet`` has
had the chance to pick the package named by ``MXNET_VERSION``.
"""
import contextlib
import logging
import os
import re
import tempfile
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["CheckpointError", "ParamCheck", "atomic_path", "params_path", "states_path",
           "symbol_path", "save_checkpoint", "load_checkpoint", "load_param_file",
           "check_params", "latest_checkpoint", "list_checkpoints", "save_optimizer_states",
           "load_optimizer_states"]

logger = logging.getLogger(__name__)

Params = Dict[str, Any]  # parameter name -> mx.nd.NDArray


class CheckpointError(Exception):
    """A checkpoint file is missing, unreadable, or does not match the network."""


def params_path(prefix: str, epoch: int) -> str:
    """'<prefix>-%04d.params', the parameter file of `epoch`."""
    return "%s-%04d.params" % (prefix, epoch)


def states_path(prefix: str, epoch: int) -> str:
    """'<prefix>-%04d.states', the optimizer states saved with epoch `epoch`."""
    return "%s-%04d.states" % (prefix, epoch)


def symbol_path(prefix: str) -> str:
    """'<prefix>-symbol.json', the network definition saved beside the parameters."""
    return "%s-symbol.json" % prefix


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path to write; on success it replaces `path` in one step.

    The temporary file lives in the same folder (so os.replace is an atomic rename), is
    fsynced before the rename, and is removed if the body raises. Its name starts with '.'
    and ends with '.tmp', so no checkpoint scan ever mistakes it for a finished file.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    # Persist the rename itself (the directory entry); not possible on every platform.
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _last_line(err: Exception) -> str:
    """The informative line of an MXNetError (its text starts with a C++ traceback)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return lines[-1] if lines else type(err).__name__


def _as_ndarray(name: str, value: Any) -> Any:
    import mxnet as mx

    if isinstance(value, mx.nd.NDArray):
        return value
    if isinstance(value, np.ndarray):
        return mx.nd.array(value, dtype=value.dtype)
    raise CheckpointError(f"parameter '{name}': expected an mx.nd.NDArray or numpy array, "
                          f"got {type(value).__name__}")


def save_checkpoint(prefix: str, epoch: int, arg_params: Mapping[str, Any],
                    aux_params: Mapping[str, Any], symbol: Any = None) -> str:
    """Write `<prefix>-%04d.params` (and `<prefix>-symbol.json` if given) atomically."""
    save_dict = {"arg:" + k: _as_ndarray(k, v) for k, v in arg_params.items()}
    save_dict.update({"aux:" + k: _as_ndarray(k, v) for k, v in aux_params.items()})
    import mxnet as mx

    if symbol is not None:
        with atomic_path(symbol_path(prefix)) as tmp:
            symbol.save(tmp)
    path = params_path(prefix, epoch)
    with atomic_path(path) as tmp:
        mx.nd.save(tmp, save_dict)
    logger.info("saved checkpoint %s (%d arg, %d aux)", path, len(arg_params), len(aux_params))
    return path


def load_param_file(path: str, arg_prefix: str = "") -> Tuple[Params, Params]:
    """Read a .params file into (arg_params, aux_params), prepending `arg_prefix` to every name.

    With arg_prefix='18_', a DeepLab-18 file's 'conv0_weight' becomes '18_conv0_weight' and
    its 'bn0_moving_mean' (aux) becomes '18_bn0_moving_mean', the names the update branch of
    Accel-18 uses.
    """
    import mxnet as mx

    if not os.path.isfile(path):
        raise CheckpointError(f"parameter file not found: {path}")
    try:
        loaded = mx.nd.load(path)
    except Exception as err:  # MXNetError for truncated/corrupt files
        raise CheckpointError(f"cannot read parameter file {path} (corrupt or not an "
                              f"mx.nd.save file): {_last_line(err)}") from None
    if not isinstance(loaded, dict):
        raise CheckpointError(f"parameter file {path} holds an unnamed list of "
                              f"{len(loaded)} arrays; expected 'arg:'/'aux:' named arrays")
    arg_params: Params = {}
    aux_params: Params = {}
    bad = []
    for key, value in loaded.items():
        kind, sep, name = key.partition(":")
        if sep and kind == "arg":
            arg_params[arg_prefix + name] = value
        elif sep and kind == "aux":
            aux_params[arg_prefix + name] = value
        else:
            bad.append(key)
    if bad:
        raise CheckpointError(f"parameter file {path}: {len(bad)} key(s) without an 'arg:' or "
                              f"'aux:' prefix: {', '.join(sorted(bad))}")
    return arg_params, aux_params


def list_checkpoints(prefix: str) -> List[int]:
    """Epochs with a finished `<prefix>-%04d.params` file, ascending."""
    folder = os.path.dirname(os.path.abspath(prefix))
    pattern = re.compile(re.escape(os.path.basename(prefix)) + r"-(\d{4,})\.params")
    if not os.path.isdir(folder):
        return []
    epochs = []
    for name in os.listdir(folder):
        match = pattern.fullmatch(name)
        if match and os.path.getsize(os.path.join(folder, name)) > 0:
            epochs.append(int(match.group(1)))
    return sorted(epochs)


def latest_checkpoint(prefix: str, require_states: bool = False) -> Optional[int]:
    """Highest epoch with a finished params file (and states file if asked), or None."""
    epochs = list_checkpoints(prefix)
    if require_states:
        epochs = [e for e in epochs if os.path.isfile(states_path(prefix, e))]
    return epochs[-1] if epochs else None


def load_checkpoint(prefix: str, epoch: int, arg_prefix: str = "") -> Tuple[Params, Params]:
    """Load `<prefix>-%04d.params` into (arg_params, aux_params)."""
    path = params_path(prefix, epoch)
    if not os.path.isfile(path):
        found = list_checkpoints(prefix)
        have = (f"epochs present for this prefix: {found}" if found
                else "no checkpoint with this prefix exists")
        raise CheckpointError(f"checkpoint file not found: {path} ({have})")
    return load_param_file(path, arg_prefix)


class ParamCheck(NamedTuple):
    """What check_params found; `missing`/`unexpected` are only non-empty when allowed."""
    missing: List[str]
    unexpected: List[str]


def _expected_shapes(symbol_or_shapes: Any, input_shapes: Optional[Mapping[str, Sequence[int]]]
                     ) -> Tuple[Dict[str, tuple], Dict[str, tuple]]:
    """(arg name -> shape, aux name -> shape) of the parameters, inputs excluded."""
    if isinstance(symbol_or_shapes, tuple) and len(symbol_or_shapes) == 2:
        arg_shapes, aux_shapes = symbol_or_shapes
        return ({k: tuple(v) for k, v in arg_shapes.items()},
                {k: tuple(v) for k, v in aux_shapes.items()})
    if input_shapes is None:
        raise ValueError("check_params: a symbol needs input_shapes (e.g. {'data': (1, 3, "
                         "1024, 2048)}) to infer its parameter shapes")
    symbol = symbol_or_shapes
    try:
        arg_shapes, _, aux_shapes = symbol.infer_shape(**{k: tuple(v)
                                                         for k, v in input_shapes.items()})
    except Exception as err:
        raise ValueError(f"check_params: shape inference failed for inputs {dict(input_shapes)}:"
                         f" {_last_line(err)}") from None
    if arg_shapes is None:
        raise ValueError(f"check_params: inputs {dict(input_shapes)} do not determine every "
                         f"parameter shape; give the shapes of all data and label inputs")
    args = {n: tuple(s) for n, s in zip(symbol.list_arguments(), arg_shapes)
            if n not in input_shapes}
    aux = {n: tuple(s) for n, s in zip(symbol.list_auxiliary_states(), aux_shapes)}
    return args, aux


def check_params(symbol_or_shapes: Any, arg_params: Mapping[str, Any],
                 aux_params: Mapping[str, Any],
                 input_shapes: Optional[Mapping[str, Sequence[int]]] = None,
                 allow_missing: bool = False, allow_extra: bool = False,
                 source: str = "") -> ParamCheck:
    """Compare parameters with what a network needs; raise one error listing every problem.

    `symbol_or_shapes` is an mx.sym.Symbol (its shapes are inferred from `input_shapes`, whose
    names are treated as inputs, not parameters) or a pair (arg shapes, aux shapes) of dicts.
    A mis-shaped parameter is always an error; a missing one unless `allow_missing`, an
    unexpected one unless `allow_extra`. `source` (e.g. a file name) is quoted in the error.
    """
    want_arg, want_aux = _expected_shapes(symbol_or_shapes, input_shapes)
    problems: List[str] = []
    missing: List[str] = []
    unexpected: List[str] = []
    for kind, want, have in (("arg", want_arg, arg_params), ("aux", want_aux, aux_params)):
        for name, shape in want.items():
            if name not in have:
                missing.append(f"{kind}:{name} {shape}")
            elif tuple(have[name].shape) != shape:
                problems.append(f"mis-shaped {kind}:{name}: expected {shape}, "
                                f"got {tuple(have[name].shape)}")
        for name in have:
            if name not in want:
                unexpected.append(f"{kind}:{name} {tuple(have[name].shape)}")
    if not allow_missing:
        problems += [f"missing {m}" for m in missing]
    if not allow_extra:
        problems += [f"unexpected {u}" for u in unexpected]
    if problems:
        where = f" in {source}" if source else ""
        raise CheckpointError(f"{len(problems)} parameter problem(s){where}:\n  - "
                              + "\n  - ".join(problems))
    return ParamCheck([m.split(" ")[0] for m in missing], [u.split(" ")[0] for u in unexpected])


def save_optimizer_states(prefix: str, epoch: int, states: Union[bytes, Any]) -> str:
    """Atomically write the optimizer states as `<prefix>-%04d.states`.

    `states` is the bytes of `Updater.get_states()` or an object with a
    `save_optimizer_states(fname)` method (an mx.mod.Module), which then writes the file.
    """
    path = states_path(prefix, epoch)
    with atomic_path(path) as tmp:
        if isinstance(states, (bytes, bytearray)):
            with open(tmp, "wb") as f:
                f.write(states)
        elif hasattr(states, "save_optimizer_states"):
            states.save_optimizer_states(tmp)
        else:
            raise TypeError(f"save_optimizer_states: expected bytes or a Module, "
                            f"got {type(states).__name__}")
    return path


def load_optimizer_states(prefix: str, epoch: int) -> bytes:
    """The bytes of `<prefix>-%04d.states` (for Updater.set_states / Module's loader)."""
    path = states_path(prefix, epoch)
    if not os.path.isfile(path):
        raise CheckpointError(f"optimizer states file not found: {path}")
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise CheckpointError(f"optimizer states file is empty: {path}")
    return data
