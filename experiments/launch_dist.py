"""Start MXNet's dist_sync kvstore on this machine: one scheduler, servers and N workers.

    python experiments/launch_dist.py -n 2 -- python experiments/dff_deeplab/\
dff_deeplab_end2end_train_test.py --cfg <yaml> default.kvstore=dist_sync

Every process gets DMLC_ROLE, DMLC_PS_ROOT_URI=127.0.0.1, DMLC_PS_ROOT_PORT,
DMLC_NUM_SERVER and DMLC_NUM_WORKER; scheduler and servers are plain `import mxnet`
(importing MXNet with DMLC_ROLE=server/scheduler runs the parameter server and exits).
MXNet's own tools/launch.py --launcher local hung here; on a cluster the same variables come
from MXNet's ssh/mpi launchers (README, "Distributed training"). The exit status is the
first failing worker's (which stops the others at once), or 0; --timeout kills everything
left after that many seconds and exits with 124.
"""
import argparse
import logging
import os
import socket
import subprocess
import sys
import time
from typing import List, Optional

logger = logging.getLogger("launch_dist")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(command: List[str], num_workers: int, num_servers: int = 1,
           port: Optional[int] = None, timeout: float = 0) -> int:
    """Run `command` as `num_workers` dist_sync workers; returns the exit status."""
    base = dict(os.environ, DMLC_PS_ROOT_URI="127.0.0.1",
                DMLC_PS_ROOT_PORT=str(port or free_port()),
                DMLC_NUM_SERVER=str(num_servers), DMLC_NUM_WORKER=str(num_workers))
    serve = [sys.executable, "-c", "import mxnet"]
    helpers = [subprocess.Popen(serve, env=dict(base, DMLC_ROLE="scheduler"))]
    helpers += [subprocess.Popen(serve, env=dict(base, DMLC_ROLE="server"))
                for _ in range(num_servers)]
    workers = [subprocess.Popen(command, env=dict(base, DMLC_ROLE="worker"))
               for _ in range(num_workers)]
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
    finally:
        for proc in workers + helpers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return status


def main(argv: Optional[List[str]] = None) -> int:
    """Command line: -n WORKERS [-s SERVERS] [--port P] [--timeout S] -- command ..."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--num-workers", type=int, required=True)
    parser.add_argument("-s", "--num-servers", type=int, default=1)
    parser.add_argument("--port", type=int, default=0, help="scheduler port (default: free)")
    parser.add_argument("--timeout", type=float, default=0, help="seconds; 0 = none")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the worker command after --")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    return launch(command, args.num_workers, args.num_servers, args.port or None, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
