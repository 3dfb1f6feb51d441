"""The benchmark (accel.cli.benchmark over accel.bench.stream) on its real code path at a
tiny size: every path asked for is timed frame by frame in turns, the table keeps its rows,
its ratio column against the reference path and says whether the CPU has native BF16, and
the JSON report keeps its format."""
import json

import pytest

pytest.importorskip("torch", reason="the torch path needs PyTorch")

from accel.bench.stream import time_in_turns  # noqa: E402
from accel.cli.benchmark import benchmark  # noqa: E402


def test_benchmark_times_reference_fast_and_torch_in_turns(tmp_path):
    out = tmp_path / "report.json"
    report, table = benchmark(["--versions", "18", "--size", "64", "128", "--frames", "2",
                               "--paths", "reference", "fast", "torch", "--no-parts",
                               "--json", str(out)])
    assert report["paths"] == ["reference", "fast", "torch"]
    row = report["versions"]["18"]
    assert row["interval"] == 5
    for path in report["paths"]:
        stats = row[path]
        assert stats["all"]["n"] == 2 and stats["nonkey"]["n"] == 2 and stats["key"] is None
        assert 0 < stats["all"]["p50"] <= stats["all"]["max"]
        # The same network on every path: the same label maps (synthetic weights).
        assert stats["agreement"] >= 0.999, (path, stats["agreement"])
    assert json.loads(out.read_text())["versions"]["18"]["fast"]["all"]["n"] == 2
    lines = table.splitlines()
    assert lines[0].startswith("Per-frame network time (ms: mean / p50 / p99 / max), 64x128, "
                               "interval 5, 2 frames after 2 warm-up")
    assert any(line.startswith("CPU BF16: ") for line in lines)
    header = "| network | path | all frames | keyframes | non-key frames | / reference |"
    assert header in lines
    torch_row = next(line for line in lines if line.startswith("| Accel-18 | torch |"))
    ratio = float(torch_row.rstrip(" |").rsplit("|", 1)[1])
    assert ratio == pytest.approx(row["torch"]["all"]["mean"] / row["reference"]["all"]["mean"],
                                  abs=0.006)


def test_frames_in_turns_leave_out_the_warm_up():
    class Fake:
        def __init__(self):
            self.index = 0

        def step(self, frame):
            from accel.core.inference import FrameResult

            self.index += 1
            return FrameResult(frame, self.index % 3 == 1, 0.001 * self.index)

    import numpy as np

    frames = [np.zeros((2, 2), np.uint8)] * 5
    times = time_in_turns({"a": Fake(), "b": Fake()}, frames, warmup=2)
    assert times["a"]["all"]["n"] == 3 and times["a"]["key"]["n"] == 1
    assert times["b"]["all"]["max"] == pytest.approx(5.0)
    assert times["b"]["agreement"] == 1.0

