"""Import the MXNet package that a config's MXNET_VERSION names.

As in the original release, ``MXNET_VERSION: "mxnet"`` means the installed package, and any
other name selects a Python package placed under ``external/mxnet/<name>/`` (that folder
holds the ``mxnet/`` package directory), which is put at the front of ``sys.path`` before
``mxnet`` is first imported. Call ``import_mxnet`` at the top of a runner, before anything
imports mxnet (accel.cli.run does, with <repo>/external/mxnet); see external/mxnet/README.md.
"""
import importlib
import importlib.util
import os
import sys
from types import ModuleType

__all__ = ["INSTALLED", "MXNetVersionError", "import_mxnet"]

INSTALLED = "mxnet"
_MARK = "__accel_mxnet_origin__"  # set on a module imported through MXNET_VERSION


class MXNetVersionError(ImportError):
    """The requested MXNet package cannot be (or was not) imported."""


def _is_inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def _origin(module: ModuleType) -> str:
    """Where a loaded mxnet came from: the external folder it was picked from, else its file."""
    return getattr(module, _MARK, None) or module.__file__ or "?"


def import_mxnet(version: str, external_dir: str) -> ModuleType:
    """Import and return mxnet: the installed one for "mxnet", else the package in
    `external_dir`/<version>/mxnet (the command line passes <repo>/external/mxnet)."""
    loaded = sys.modules.get("mxnet")
    if version == INSTALLED:
        if loaded is not None and _is_inside(_origin(loaded), external_dir):
            raise MXNetVersionError(
                f"MXNET_VERSION is 'mxnet' (the installed package) but mxnet was already "
                f"imported from {os.path.dirname(_origin(loaded))}")
        return loaded if loaded is not None else importlib.import_module("mxnet")

    if not version or os.sep in version or (os.altsep and os.altsep in version) \
            or version in (".", ".."):
        raise MXNetVersionError(f"MXNET_VERSION must be 'mxnet' or a folder name under "
                                f"{external_dir}, got {version!r}")
    folder = os.path.join(external_dir, version)
    if not os.path.isfile(os.path.join(folder, "mxnet", "__init__.py")):
        available = sorted(d for d in os.listdir(external_dir)
                           if os.path.isdir(os.path.join(external_dir, d, "mxnet"))) \
            if os.path.isdir(external_dir) else []
        raise MXNetVersionError(
            f"MXNET_VERSION {version!r}: no MXNet package at {folder}/mxnet/__init__.py "
            f"(packages present in {external_dir}: {', '.join(available) or 'none'}; use "
            f"'mxnet' for the installed one)")
    if loaded is not None:
        if _is_inside(_origin(loaded), folder):
            return loaded
        raise MXNetVersionError(
            f"MXNET_VERSION {version!r} asks for the package in {folder}, but mxnet was "
            f"already imported from {os.path.dirname(_origin(loaded))}; call "
            f"import_mxnet before anything imports mxnet")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.find_spec("mxnet")
    if spec is None or not _is_inside(spec.origin or "", folder):
        raise MXNetVersionError(f"MXNET_VERSION {version!r}: importing mxnet from {folder} "
                                f"would load {spec.origin if spec else 'nothing'} instead")
    mx = importlib.import_module("mxnet")  # the package may hand over to another build
    setattr(mx, _MARK, os.path.join(folder, "mxnet", "__init__.py"))
    return mx
