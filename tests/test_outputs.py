"""Output folders (accel.utils.outputs) as a user meets them through the demos and the table
script: nothing a user wrote is deleted, two runs never mix, a partial run is marked
(issue #25, items 1-4). The demo runs are a DeepLab-18 at 64x96 on two labelled frames."""
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from accel.utils.checkpoint import CheckpointError
from accel.utils.outputs import (INCOMPLETE, LOCK, MANIFEST, IncompleteRunError, OutputError,
                                 RunOutput, read_results, require_complete)
from deeplab import demo as deeplab_demo

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "camvid"
CFG = ROOT / "experiments" / "deeplab" / "cfgs" / "camvid_protocol_deeplab_18.yaml"
SMALL = ["--cfg", str(CFG), "--data-root", str(SAMPLE), "--scales", "64", "96", "--stride",
         "32", "--cpu", "-e", "2", "--no-video"]


def _demo(model, out, *extra):
    return deeplab_demo.main(SMALL + ["--model", model, "--output", str(out), *extra])


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*"))
            if p.is_file()}


def test_bad_input_never_touches_the_previous_results(deeplab18, tmp_path):
    """#25.1: a bad -e, --data-root or model fails before the output folder is touched."""
    out = tmp_path / "out"
    _demo(deeplab18["good"], out)
    before = _snapshot(out)
    assert "metrics.json" in before and any(k.startswith("maps") for k in before)
    with pytest.raises(SystemExit) as exit_:
        _demo(deeplab18["good"], out, "-e", "-5")
    assert exit_.value.code == 2
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        _demo(deeplab18["good"], out, "--data-root", str(tmp_path / "no_such_folder"))
    with pytest.raises(CheckpointError, match="score_weight"):
        _demo(deeplab18["broken"], out)
    assert _snapshot(out) == before


def test_a_folder_the_demo_did_not_write_is_refused_and_never_emptied(deeplab18, tmp_path):
    """#25.2: a user's maps/, panels/, results.md are never deleted: a folder that is not
    one of our runs is refused unless --overwrite, and even then no file of the user's is
    replaced; beside other files --overwrite writes the demo's own."""
    out = tmp_path / "mine"
    (out / "maps").mkdir(parents=True)
    (out / "maps" / "drawing.png").write_bytes(b"user")
    (out / "panels").mkdir()
    (out / "panels" / "p.png").write_bytes(b"user")
    (out / "results.md").write_text("my notes")
    (out / "other.txt").write_text("keep")
    before = _snapshot(out)
    with pytest.raises(OutputError, match="not written by .*--overwrite"):
        _demo(deeplab18["good"], out)
    assert _snapshot(out) == before
    with pytest.raises(OutputError, match="results.md, maps, panels were not written by"):
        _demo(deeplab18["good"], out, "--overwrite")
    assert _snapshot(out) == before
    beside = tmp_path / "beside"
    beside.mkdir()
    (beside / "other.txt").write_text("keep")
    _demo(deeplab18["good"], beside, "--overwrite")
    assert (beside / "other.txt").read_text() == "keep"
    assert (beside / "metrics.json").is_file()
    # A re-run replaces the demo's own files there, and still not the user's.
    (beside / "maps" / "user.png").write_bytes(b"user")
    _demo(deeplab18["good"], beside)
    assert (beside / "maps" / "user.png").read_bytes() == b"user"
    assert (beside / "other.txt").read_text() == "keep"


def test_a_second_run_into_a_folder_in_use_is_refused(deeplab18, tmp_path):
    """#25.3: while a run holds the folder (its lock), another demo into it stops at once,
    naming the process, and writes nothing there."""
    out = tmp_path / "busy"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, json, os, sys, time\n"
         f"fd = os.open({str(out / LOCK)!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "os.write(fd, json.dumps({'pid': os.getpid(), 'since': 'now', "
         "'command': 'other demo'}).encode())\n"
         "print('locked', flush=True)\n"
         "time.sleep(60)\n"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputError, match=f"another run is writing into it \\(pid "
                                              f"{holder.pid}"):
            _demo(deeplab18["good"], out)
        assert sorted(p.name for p in out.iterdir()) == [LOCK]
    finally:
        holder.kill()
        holder.wait()
    _demo(deeplab18["good"], out)      # the lock died with its process: no stale lock
    assert not (out / LOCK).exists()


def test_an_interrupted_run_is_marked_and_refused_by_readers(deeplab18, tmp_path, monkeypatch):
    """#25.4: Ctrl-C half way leaves INCOMPLETE and no metrics.json; a complete run writes
    metrics.json last and removes INCOMPLETE; readers (require_complete, read_results, the
    table script's --from) refuse the partial run."""
    from accel.core.inference import FrameSegmenter

    out = tmp_path / "cut"
    _demo(deeplab18["good"], out)
    require_complete(str(out))
    assert not (out / INCOMPLETE).exists()
    saved = json.loads((out / MANIFEST).read_text())
    assert saved["complete"] and "metrics.json" in saved["files"]
    written = {n: (out / n).stat().st_mtime_ns for n in ("metrics.json", "results.md",
                                                          "timing.md")}
    assert written["metrics.json"] >= max(written.values())
    assert read_results(str(out))["frames"] == 2

    step, calls = FrameSegmenter.step, []

    def interrupted(self, data):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return step(self, data)
    monkeypatch.setattr(FrameSegmenter, "step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _demo(deeplab18["good"], out)
    assert (out / INCOMPLETE).is_file() and not (out / "metrics.json").exists()
    assert "interrupted" in (out / INCOMPLETE).read_text()
    with pytest.raises(IncompleteRunError, match="partial run"):
        require_complete(str(out))
    with pytest.raises(IncompleteRunError, match="partial run"):
        read_results(str(out))


def test_run_output_rules_without_a_network(tmp_path):
    """The rules of RunOutput on their own: a file is refused, a fresh folder that a failed
    run created is removed again, a run's files are recorded and only those replaced."""
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        RunOutput(str(tmp_path / "f"), "demo", ["a.txt"]).check()
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError):
        with RunOutput(str(fresh), "demo", ["a.txt"]):
            raise RuntimeError("failed before start")
    assert not fresh.exists()
    with RunOutput(str(fresh), "demo", ["a.txt", "sub"]) as out:
        out.start()
        Path(out.path("a.txt")).write_text("1")
        os.makedirs(out.path("sub"))
        Path(out.path("sub", "b.txt")).write_text("2")
    assert json.loads((fresh / MANIFEST).read_text())["files"] == ["a.txt", "sub/b.txt"]
    (fresh / "sub" / "mine.txt").write_text("user")
    with RunOutput(str(fresh), "demo", ["a.txt", "sub"]) as out:
        out.start()
        assert sorted(os.listdir(fresh / "sub")) == ["mine.txt"]
    lock = RunOutput(str(fresh), "demo", ["a.txt"]).lock()
    try:
        fd = os.open(str(fresh / LOCK), os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
    finally:
        lock.release()
