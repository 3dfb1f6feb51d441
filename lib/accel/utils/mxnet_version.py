"""Import the MXNet package that a config's MXNET_VERSION names.

As in the original release, ``MXNET_VERSION: "mxnet"`` means the installed package, and any
other name selects a Python package placed under ``external/mxnet/<name>/`` (that folder
holds the ``mxnet/`` package directory), which is put at the front of ``sys.path`` before
``mxnet`` is first imported. Call ``import_mxnet`` at the top of a runner, before anything
imports mxnet; see external/mxnet/README.md.
"""
import importlib
import os
import sys
from types import ModuleType
from typing import Optional

__all__ = ["MXNetVersionError", "external_mxnet_dir", "import_mxnet"]

INSTALLED = "mxnet"

# lib/accel/utils/mxnet_version.py -> repository root (the package is installed editable).
_REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


class MXNetVersionError(ImportError):
    """The requested MXNet package cannot be (or was not) imported."""


def external_mxnet_dir() -> str:
    """The folder holding the alternate MXNet packages: <repo>/external/mxnet."""
    return os.path.join(_REPO_ROOT, "external", "mxnet")


def _is_inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def import_mxnet(version: str, external_dir: Optional[str] = None) -> ModuleType:
    """Import and return mxnet: the installed one for "mxnet", else external/mxnet/<version>."""
    external_dir = external_dir or external_mxnet_dir()
    loaded = sys.modules.get("mxnet")
    if version == INSTALLED:
        if loaded is not None and _is_inside(loaded.__file__ or "", external_dir):
            raise MXNetVersionError(
                f"MXNET_VERSION is 'mxnet' (the installed package) but mxnet was already "
                f"imported from {os.path.dirname(loaded.__file__)}")
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
            f"(packages present: {available or 'none'}; use 'mxnet' for the installed one)")
    if loaded is not None:
        if _is_inside(loaded.__file__ or "", folder):
            return loaded
        raise MXNetVersionError(
            f"MXNET_VERSION {version!r} asks for the package in {folder}, but mxnet was "
            f"already imported from {os.path.dirname(loaded.__file__ or '?')}; call "
            f"import_mxnet before anything imports mxnet")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    mx = importlib.import_module("mxnet")
    if not _is_inside(mx.__file__ or "", folder):
        raise MXNetVersionError(f"importing mxnet from {folder} gave {mx.__file__} instead")
    return mx
