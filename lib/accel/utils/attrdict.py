"""A dict with attribute access, for the configuration where easydict is not installed.

The MXNet-free runtime install (numpy, PyTorch, OpenCV, PyYAML) has no easydict; the
configuration (accel.config) then uses this class, which behaves as EasyDict does for it:
keys read and written as attributes, nested dicts (also inside lists) converted on assignment.
"""
from typing import Any

__all__ = ["AttrDict"]


class AttrDict(dict):
    """dict whose keys are also attributes; dict values become AttrDicts."""

    def __init__(self, data: Any = None, **kwargs: Any):
        super().__init__()
        for key, value in dict(data or {}, **kwargs).items():
            self[key] = value

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, self._wrap(value))

    __setattr__ = __setitem__

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __delattr__(self, key: str) -> None:
        try:
            del self[key]
        except KeyError:
            raise AttributeError(key) from None

    @classmethod
    def _wrap(cls, value: Any) -> Any:
        if isinstance(value, dict) and not isinstance(value, cls):
            return cls(value)
        if isinstance(value, (list, tuple)):
            return type(value)(cls._wrap(v) for v in value)
        return value
