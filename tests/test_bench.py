"""The benchmark (accel.cli.benchmark over accel.bench.stream) on its real code path at a
tiny size: every path asked for is timed frame by frame in turns, the table keeps its rows,
its ratio column against the reference path and says whether the CPU has native BF16, and
the JSON report keeps its format."""
import json

import mxnet as mx
import numpy as np
import pytest

from accel.bench import peak
from accel.bench.stream import time_in_turns
from accel.cli.benchmark import benchmark
from accel.core.inference import FrameResult


def test_benchmark_times_reference_fast_and_torch_in_turns(tmp_path):
    pytest.importorskip("torch", reason="the torch path needs PyTorch")
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
            self.index += 1
            return FrameResult(frame, self.index % 3 == 1, 0.001 * self.index)

    frames = [np.zeros((2, 2), np.uint8)] * 5
    times = time_in_turns({"a": Fake(), "b": Fake()}, frames, warmup=2)
    assert times["a"]["all"]["n"] == 3 and times["a"]["key"]["n"] == 1
    assert times["b"]["all"]["max"] == pytest.approx(5.0)
    assert times["b"]["agreement"] == 1.0



def test_convolution_work_is_two_flop_per_multiply_add():
    conv = mx.sym.Convolution(mx.sym.Variable("data"), num_filter=8, kernel=(3, 3), pad=(1, 1),
                              name="c")
    up = mx.sym.Deconvolution(conv, num_filter=2, kernel=(4, 4), stride=(2, 2), pad=(1, 1),
                              name="d")
    # conv: 6x6 outputs x 8 filters x (4 x 3 x 3); deconv: 6x6 inputs x 8 x (2 x 4 x 4)
    want = 2 * (36 * 8 * 4 * 9 + 36 * 8 * 2 * 16) / 1e9
    assert peak.conv_gflop(up, {"data": (1, 4, 6, 6)}) == pytest.approx(want)


def test_peaks_say_why_a_precision_does_not_run(monkeypatch):
    monkeypatch.setattr(peak, "cpu_has_native_bf16", lambda: False)
    results = peak.conv_peaks(("fp32", "bf16"), channels=8, size=(8, 8), repeats=2)
    assert results["fp32"]["ms"] > 0 and results["fp32"]["best"] >= results["fp32"]["median"]
    assert "avx512_bf16" in results["bf16"]["unsupported"]
    table = peak.peak_table(results, 8, (8, 8))
    assert "| bf16 | - | - | not run: this CPU has no avx512_bf16" in table


def test_bf16_graph_computes_in_bf16_and_returns_float32():
    sym = mx.sym.Activation(mx.sym.Convolution(mx.sym.Variable("data"), num_filter=4,
                                               kernel=(3, 3), name="c"), act_type="relu")
    args = {"c_weight": mx.nd.ones((4, 2, 3, 3)), "c_bias": mx.nd.zeros((4,))}
    bsym, bargs = peak.to_bf16(sym, args)
    assert bargs["c_weight"].dtype == np.dtype([("bfloat16", np.uint16)])
    _, out_types, _ = bsym.infer_type(data="float32")
    assert out_types == [np.float32]
