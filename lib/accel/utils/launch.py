"""A local MXNet dist_sync job: one scheduler, servers and N workers, started and ended
together (experiments/launch_dist.py).

Every process gets DMLC_ROLE, DMLC_PS_ROOT_URI=127.0.0.1, DMLC_PS_ROOT_PORT,
DMLC_NUM_SERVER and DMLC_NUM_WORKER; scheduler and servers are plain `import mxnet`
(importing MXNet with DMLC_ROLE=server/scheduler runs the parameter server and exits). The
exit status is the first failing worker's (which stops the others at once), or 0; a
timeout kills everything left and gives 124. Each process runs in a process group of its
own, so that ending the launcher (SIGTERM, SIGINT / Ctrl-C) ends every process it started,
children of the workers included (exit 128 + the signal number).
"""
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import List, Optional

__all__ = ["free_port", "launch"]

logger = logging.getLogger("launch_dist")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Stopped(Exception):
    """The launcher received SIGTERM or SIGINT."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum, frame) -> None:
    raise _Stopped(signum)


def _end_groups(procs: List[subprocess.Popen], grace: float = 3.0) -> None:
    """SIGTERM every process group still running, then SIGKILL what is left after `grace` s
    (a worker's own children included: each process leads a group of its own)."""
    alive = [p for p in procs if p.poll() is None]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in alive:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while alive and time.monotonic() < deadline:
            alive = [p for p in alive if p.poll() is None]
            time.sleep(0.05)
    for proc in procs:
        if proc.poll() is None:
            proc.wait()


def launch(command: List[str], num_workers: int, num_servers: int = 1,
           port: Optional[int] = None, timeout: float = 0) -> int:
    """Run `command` as `num_workers` dist_sync workers; returns the exit status."""
    if num_workers < 1 or num_servers < 1:
        raise ValueError(f"-n {num_workers} -s {num_servers}: at least one worker and one "
                         f"server are needed")
    base = dict(os.environ, DMLC_PS_ROOT_URI="127.0.0.1",
                DMLC_PS_ROOT_PORT=str(port or free_port()),
                DMLC_NUM_SERVER=str(num_servers), DMLC_NUM_WORKER=str(num_workers))
    serve = [sys.executable, "-c", "import mxnet"]
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in (signal.SIGTERM,
                                                                      signal.SIGINT)}
    started: List[subprocess.Popen] = []

    def start(cmd: List[str], role: str) -> subprocess.Popen:
        try:
            proc = subprocess.Popen(cmd, env=dict(base, DMLC_ROLE=role),
                                    start_new_session=True)
        except OSError as err:
            _end_groups(started)
            raise OSError(f"cannot start the {role} {' '.join(cmd)}: "
                          f"{err.strerror or err}") from None
        started.append(proc)
        return proc
    try:
        helpers = [start(serve, "scheduler")] + [start(serve, "server")
                                                 for _ in range(num_servers)]
        workers = [start(command, "worker") for _ in range(num_workers)]
        return _supervise(command, workers, helpers, timeout)
    except _Stopped as stop:
        logger.error("%s: stopping every process", stop)
        return 128 + stop.signum
    finally:
        for sig in previous:             # a second signal must not interrupt the cleanup
            signal.signal(sig, signal.SIG_IGN)
        _end_groups(started)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _supervise(command: List[str], workers: List[subprocess.Popen],
               helpers: List[subprocess.Popen], timeout: float) -> int:
    """Wait for the workers (and then the helpers); the exit status of the run."""
    deadline = time.monotonic() + timeout if timeout > 0 else None
    status = 0
    try:
        # Poll every worker: the first one to fail stops the run at once (the others would
        # wait for it at the next synchronisation, forever).
        while status == 0 and any(w.poll() is None for w in workers):
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(command, timeout)
            time.sleep(0.1)
            for rank, proc in enumerate(workers):
                rc = proc.poll()
                if rc not in (None, 0) and status == 0:
                    status = rc
                    logger.error("worker %d exited with %d: stopping every process", rank, rc)
        if status == 0:
            for proc in helpers:  # scheduler and servers end once every worker has left
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                proc.wait(timeout=left)
    except subprocess.TimeoutExpired:
        logger.error("timed out after %.0f s: stopping every process", timeout)
        status = 124
    return status
