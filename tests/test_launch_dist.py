"""The dist_sync launcher (experiments/launch_dist.py) as a user meets it: bad counts
refused at once, and ending the launcher ends every process it started (issue #25.21).
Real subprocesses, bounded in time."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

LAUNCH = Path(__file__).resolve().parents[1] / "experiments" / "launch_dist.py"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:   # a zombie (not yet reaped by its parent) has ended
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("flags", [["-n", "0"], ["-n", "-2"], ["-n", "2", "-s", "0"],
                                   ["-n", "1", "--timeout", "nan"]])
def test_counts_that_cannot_work_are_refused_at_once(flags):
    """`-n 0` hung forever: refused with a one-line usage error naming the flag."""
    proc = subprocess.run([sys.executable, str(LAUNCH), *flags, "--", "true"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert f"argument {flags[-2]}" in proc.stderr or flags[-2] in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_ending_the_launcher_ends_every_process_it_started(sig):
    """After SIGTERM (or Ctrl-C) to the launcher its workers survived; now every worker and
    their own children end with it, within seconds."""
    # Each worker: a shell that starts a child (sleep) and says both pids.
    worker = "sleep 120 & echo worker $$ $!; wait"
    launcher = subprocess.Popen([sys.executable, str(LAUNCH), "-n", "2", "--", "sh", "-c",
                                 worker], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    pids = []
    try:
        deadline = time.monotonic() + 60
        while len(pids) < 4 and time.monotonic() < deadline:
            line = launcher.stdout.readline()
            if line.startswith("worker"):
                pids += [int(p) for p in line.split()[1:]]
        assert len(pids) == 4, "workers did not start"
        launcher.send_signal(sig)
        launcher.wait(timeout=20)
        assert launcher.returncode == 128 + sig
        gone = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < gone:
            time.sleep(0.1)
        assert not [p for p in pids if _alive(p)], "processes outlived the launcher"
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if launcher.poll() is None:
            launcher.kill()
        launcher.wait()
