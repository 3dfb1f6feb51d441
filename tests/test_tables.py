"""The table script's command line (accel.cli.tables) before anything runs: contradicting
flags refused, and --from re-making the tables of a finished run, never of a partial one
(issue #25, items 4, 10, 11)."""
import json

import pytest

from accel.cli.tables import tables
from accel.utils.outputs import IncompleteRunError, RunOutput


def _run(tmp_path, *flags):
    return tables(["--output", str(tmp_path / "tables"), "--cpu", *flags])


def test_a_main_interval_not_run_is_refused_before_anything_runs(tmp_path):
    """#25.11: --main-interval N with N not in --intervals wrote a misleading table."""
    with pytest.raises(ValueError, match=r"--main-interval 7: not one of --intervals 1 2"):
        _run(tmp_path, "--intervals", "1", "2", "--main-interval", "7",
             "--model", "18=" + str(tmp_path / "missing"))
    assert not (tmp_path / "tables").exists()


@pytest.mark.parametrize("flags", [["--keyframe-rates", "2", "3"],
                                   ["--calibration-pairs", "10"],
                                   ["--calibration-split", "val"]])
def test_adaptive_row_flags_without_adaptive_rows_are_refused(tmp_path, flags):
    """#25.10 (tables): the adaptive rows' flags without --keyframe-policies did nothing."""
    with pytest.raises(ValueError, match=f"{flags[0]}: only used by the adaptive rows"):
        _run(tmp_path, *flags, "--model", "18=" + str(tmp_path / "missing"))


def _finished_run(folder, complete=True):
    """A table run's folder as the script leaves it (two runs of Accel-18 and the
    reference), finished or stopped half way."""
    run = {"method": "Accel-18", "version": "18", "interval": 2, "mIoU": 0.5,
           "time_per_frame": 0.1, "by_distance": {"0": 0.6, "1": 0.4}}
    ref = dict(run, method="DeepLab-101", version=None, interval=1, mIoU=0.6,
               by_distance={"0": 0.6})
    results = {"settings": {"dataset": "camvid", "split": "val", "protocol": "worst case",
                            "num_ex": 0, "scales": [64, 96], "device": "cpu(0)",
                            "total_seconds": 1.0}, "runs": [ref, run]}
    out = RunOutput(str(folder), "reproduce_tables", ["tables.md", "tables.json"],
                    results="tables.json")
    out.lock()
    out.start()
    (folder / "tables.md").write_text("old")
    if not complete:
        out.fail("interrupted (Ctrl-C)")
        return
    (folder / "tables.json").write_text(json.dumps(results))
    out.finish()


def test_tables_from_a_finished_run_and_never_from_a_partial_one(tmp_path):
    """#25.4 (tables): --from DIR re-makes the tables of a finished run without running a
    network; a partial run (INCOMPLETE) is refused naming why."""
    done, cut = tmp_path / "done", tmp_path / "cut"
    _finished_run(done)
    _finished_run(cut, complete=False)
    res = _run(tmp_path, "--from", str(done), "--main-interval", "2")
    text = (tmp_path / "tables" / "tables.md").read_text()
    assert "keyframe interval 2" in text and "| 50.0 / 0.100 |" in text
    assert res["runs"][1]["mIoU"] == 0.5
    with pytest.raises(ValueError, match="--main-interval 3: .* has runs at intervals 1 2"):
        _run(tmp_path, "--from", str(done), "--main-interval", "3")
    with pytest.raises(IncompleteRunError, match=f"--from {cut} is a partial run .*"
                                                 f"interrupted"):
        _run(tmp_path, "--from", str(cut))
