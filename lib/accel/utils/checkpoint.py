"""Checkpoint files in the original's format, written atomically and checked strictly.

A checkpoint is ``<prefix>-%04d.params`` (``mx.nd.save`` of a dict whose keys are
``arg:<name>`` and ``aux:<name>``), optionally ``<prefix>-symbol.json`` and, for resuming,
``<prefix>-%04d.states`` (the optimizer's momentum buffers, ``mx.nd.save`` of a dict keyed
by parameter name and device; not a pickle: counters live in the trainer's ``.json``). File
names come from accel.utils.paths. Every file is written to a temporary file in the same
folder, flushed to disk and renamed over the target, so an interrupted save leaves the
previous file intact and never a truncated one; a failed write (a full disk) is a
CheckpointError naming the file and the cause. The published Accel/DFF/DeepLab weights are
files of this format and load unchanged.

MXNet is imported inside the functions, after ``accel.utils.mxnet_version.import_mxnet`` has
had the chance to pick the package named by ``MXNET_VERSION``; the loaders' ``numpy=True``
reads through accel.utils.params_file instead and never imports it (runtimes without MXNet).
"""
import contextlib
import logging
import os
import pickle
import re
import shutil
import tempfile
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from accel.utils.params_file import ParamsFormatError, read_arrays
from accel.utils.paths import params_path, stale_temporaries, states_path, symbol_path

__all__ = ["CheckpointError", "ParamCheck", "atomic_path", "params_path", "states_path",
           "symbol_path", "save_checkpoint", "load_checkpoint", "load_param_file",
           "check_params", "check_names", "list_checkpoints", "save_optimizer_states",
           "load_optimizer_states", "remove_stale_temporaries", "write_error"]

logger = logging.getLogger(__name__)

Params = Dict[str, Any]  # parameter name -> mx.nd.NDArray (np.ndarray when numpy=True)


class CheckpointError(Exception):
    """A checkpoint file is missing, unreadable, or does not match the network."""


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


def write_error(path: str, err: BaseException) -> "CheckpointError":
    """A CheckpointError for a failed write of `path`: the file, the cause (a full disk is
    named as such, with the free space) and that the file was not replaced."""
    if isinstance(err, CheckpointError):
        return err
    cause = (err.strerror or str(err)) if isinstance(err, OSError) else _last_line(err)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    full = (isinstance(err, OSError) and err.errno == 28) or "Write incomplete" in str(err)
    if full or (free is not None and free < 64 << 20):
        cause = f"disk full? ({cause}; {free / 2**20:.0f} MiB free in {folder})" \
            if free is not None else f"disk full? ({cause})"
    existed = "the previous version of the file is intact" if os.path.exists(path) \
        else "no partial file was left"
    return CheckpointError(f"cannot write {path}: {cause}; {existed}")


def save_checkpoint(prefix: str, epoch: int, arg_params: Mapping[str, Any],
                    aux_params: Mapping[str, Any], symbol: Any = None) -> str:
    """Write `<prefix>-%04d.params` (and `<prefix>-symbol.json` if given) atomically."""
    save_dict = {"arg:" + k: _as_ndarray(k, v) for k, v in arg_params.items()}
    save_dict.update({"aux:" + k: _as_ndarray(k, v) for k, v in aux_params.items()})
    import mxnet as mx

    if symbol is not None:
        try:
            with atomic_path(symbol_path(prefix)) as tmp:
                symbol.save(tmp)
        except Exception as err:
            raise write_error(symbol_path(prefix), err) from None
    path = params_path(prefix, epoch)
    try:
        with atomic_path(path) as tmp:
            mx.nd.save(tmp, save_dict)
    except Exception as err:  # MXNetError "FileStream.Write incomplete" on a full disk
        raise write_error(path, err) from None
    logger.info("saved checkpoint %s (%d arg, %d aux)", path, len(arg_params), len(aux_params))
    return path


def remove_stale_temporaries(prefix: str) -> List[str]:
    """Delete the temporary files a killed run left for `prefix` (accel.utils.paths.
    stale_temporaries); returns them. Call it only when no other process writes `prefix`."""
    removed = []
    for path in stale_temporaries(prefix):
        with contextlib.suppress(FileNotFoundError):
            size = os.path.getsize(path)
            os.remove(path)
            removed.append(path)
            logger.info("removed %s (%.1f MiB), left by an interrupted save", path,
                        size / 2**20)
    return removed


def _load_arrays(path: str, numpy: bool) -> Any:
    """What mx.nd.load(path) gives (a dict, or a list if unnamed), NumPy arrays if `numpy`."""
    if not numpy:
        import mxnet as mx  # outside the try: a missing MXNet is no corrupt file
    try:
        if numpy:
            arrays, names = read_arrays(path)
            return dict(zip(names, arrays)) if names else arrays
        return mx.nd.load(path)
    except ParamsFormatError as err:
        cause = err.reason
    except OSError as err:
        cause = err.strerror or str(err)
    except Exception as err:  # MXNetError for truncated/corrupt files
        cause = _last_line(err)
    raise CheckpointError(f"cannot read parameter file {path} (corrupt or not an mx.nd.save "
                          f"file): {cause}")


def load_param_file(path: str, arg_prefix: str = "", numpy: bool = False
                    ) -> Tuple[Params, Params]:
    """Read a .params file into (arg_params, aux_params), prepending `arg_prefix` to every name.

    With arg_prefix='18_', a DeepLab-18 file's 'conv0_weight' becomes '18_conv0_weight' and
    its 'bn0_moving_mean' (aux) becomes '18_bn0_moving_mean', the names the update branch of
    Accel-18 uses. The values are mx.nd.NDArrays, or with `numpy` NumPy arrays read without
    MXNet (accel.utils.params_file).
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"parameter file not found: {path}")
    loaded = _load_arrays(path, numpy)
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


def load_checkpoint(prefix: str, epoch: int, arg_prefix: str = "", numpy: bool = False
                    ) -> Tuple[Params, Params]:
    """Load `<prefix>-%04d.params` into (arg_params, aux_params) (NumPy arrays if `numpy`)."""
    path = params_path(prefix, epoch)
    if not os.path.isfile(path):
        found = list_checkpoints(prefix)
        have = (f"epochs present for this prefix: {found}" if found
                else "no checkpoint with this prefix exists")
        raise CheckpointError(f"checkpoint file not found: {path} ({have})")
    return load_param_file(path, arg_prefix, numpy)


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
    if unexpected:
        logger.warning("%s: %d parameter(s) that this network does not use (ignored): %s",
                       source or "parameters", len(unexpected), ", ".join(unexpected))
    return ParamCheck([m.split(" ")[0] for m in missing], [u.split(" ")[0] for u in unexpected])


def _is_pickle(data: bytes) -> bool:
    """Pickle protocol 2+ starts with 0x80; mx.nd.save files with the magic 0x112."""
    return data[:1] == b"\x80"


def check_names(symbol: Any, arg_params: Mapping[str, Any], aux_params: Mapping[str, Any],
                inputs: Sequence[str] = (), source: str = "", allow_extra: bool = False
                ) -> List[str]:
    """Compare parameter names with `symbol`'s (inputs excluded): a missing one is an error,
    an unexpected one too unless `allow_extra` (then a warning naming every one). Returns
    the unexpected names ('arg:x' / 'aux:y'). Shapes: check_params."""
    want_arg = [n for n in symbol.list_arguments() if n not in set(inputs)]
    want_aux = symbol.list_auxiliary_states()
    missing = [f"arg:{n}" for n in want_arg if n not in arg_params] + \
        [f"aux:{n}" for n in want_aux if n not in aux_params]
    unexpected = [f"arg:{n}" for n in sorted(set(arg_params) - set(want_arg))] + \
        [f"aux:{n}" for n in sorted(set(aux_params) - set(want_aux))]
    where = source or "parameters"
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {', '.join(missing)}")
    if unexpected and not allow_extra:
        problems.append(f"{len(unexpected)} unexpected: {', '.join(unexpected)}")
    if problems:
        raise CheckpointError(f"{where} does not fit this network: " + "; ".join(problems))
    if unexpected:
        logger.warning("%s: %d parameter(s) that this network does not use (ignored): %s",
                       where, len(unexpected), ", ".join(unexpected))
    return unexpected


def save_optimizer_states(prefix: str, epoch: int, states: Mapping[str, Any]) -> str:
    """Atomically write `<prefix>-%04d.states`: `mx.nd.save` of {name: NDArray}."""
    import mxnet as mx

    path = states_path(prefix, epoch)
    arrays = {str(k): _as_ndarray(str(k), v) for k, v in states.items()}
    try:
        with atomic_path(path) as tmp:
            mx.nd.save(tmp, arrays)  # {} (SGD without momentum) is a valid, empty list
    except Exception as err:
        raise write_error(path, err) from None
    return path


def load_optimizer_states(prefix: str, epoch: int, allow_pickle: bool = False) -> Dict[Any, Any]:
    """The arrays of `<prefix>-%04d.states` as {name: NDArray}.

    Files written before this format are pickles of MXNet's Updater states ({index: state});
    unpickling runs code from the file, so it is done only with `allow_pickle` (the
    runners' --legacy-states) and returns that dict, keyed by int.
    """
    import mxnet as mx

    path = states_path(prefix, epoch)
    if not os.path.isfile(path):
        raise CheckpointError(f"optimizer states file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(1)
    if not head:
        raise CheckpointError(f"optimizer states file is empty: {path}")
    if _is_pickle(head):
        if not allow_pickle:
            raise CheckpointError(
                f"{path} is in the old pickled format; loading it runs code stored in the "
                f"file: if you trust it, resume with --legacy-states (TRAIN.legacy_states: "
                f"true), and later epochs are saved in the new format")
        try:
            with open(path, "rb") as f:
                states = pickle.load(f)
        except Exception as err:
            raise CheckpointError(f"cannot read optimizer states {path} (truncated or "
                                  f"corrupt pickle: {err})") from None
        if isinstance(states, tuple) and len(states) == 2:  # dumped with the optimizer
            states = states[0]
        if not isinstance(states, dict):
            raise CheckpointError(f"{path}: expected a pickled dict of optimizer states, got "
                                  f"{type(states).__name__}")
        return states
    try:
        loaded = mx.nd.load(path)
    except Exception as err:
        raise CheckpointError(f"cannot read optimizer states {path} (truncated or corrupt: "
                              f"{_last_line(err)})") from None
    if isinstance(loaded, list) and not loaded:  # no momentum buffers saved
        return {}
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{path}: expected named arrays (mx.nd.save of a dict), got an "
                              f"unnamed list of {len(loaded)}")
    return loaded
