"""Result files written atomically: strict JSON and text (a temporary file, then a rename).

A reader never sees half a file, and a run killed while writing leaves the previous file.
"""
import json
import math
from typing import Any

import numpy as np

from accel.utils.checkpoint import atomic_path

__all__ = ["json_safe", "write_json", "write_text"]


def json_safe(value: Any) -> Any:
    """NaN/inf -> None and NumPy scalars -> Python, recursively (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json(path: str, data: Any) -> str:
    """Write `data` as indented strict JSON, atomically (temporary file + rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(json_safe(data), f, indent=2, sort_keys=False)
            f.write("\n")
    return path


def write_text(path: str, text: str) -> str:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text if text.endswith("\n") else text + "\n")
    return path
