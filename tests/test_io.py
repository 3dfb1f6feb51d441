"""Result files: strict JSON, written atomically."""
import json

import numpy as np

from accel.utils.io import write_json


def test_results_json_is_strict_and_atomic(tmp_path):
    path = tmp_path / "m.json"
    write_json(str(path), {"mIoU": float("nan"), "n": np.int64(3), "x": [np.float32(0.5)]})
    assert json.loads(path.read_text()) == {"mIoU": None, "n": 3, "x": [0.5]}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
