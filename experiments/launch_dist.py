"""Start MXNet's dist_sync kvstore on this machine: one scheduler, servers and N workers.

    python experiments/launch_dist.py -n 2 -- python experiments/dff_deeplab/\
dff_deeplab_end2end_train_test.py --cfg <yaml> default.kvstore=dist_sync

Every process gets DMLC_ROLE, DMLC_PS_ROOT_URI=127.0.0.1, DMLC_PS_ROOT_PORT,
DMLC_NUM_SERVER and DMLC_NUM_WORKER; scheduler and servers are plain `import mxnet`
(importing MXNet with DMLC_ROLE=server/scheduler runs the parameter server and exits).
MXNet's own tools/launch.py --launcher local hung here; on a cluster the same variables come
from MXNet's ssh/mpi launchers (docs/training.md, "Multi-device and distributed"). The exit
status is the first failing worker's (which stops the others at once), or 0; --timeout
kills everything left after that many seconds and exits with 124. Each process runs in a
process group of its own, so that ending the launcher (SIGTERM, SIGINT / Ctrl-C) ends every
process it started, children of the workers included (exit 128 + the signal number).
"""
import argparse
from typing import List, Optional

from accel.cli import run
from accel.cli.flags import add_debug_flag, nonnegative_float, number, positive_int


def main(argv: Optional[List[str]] = None) -> int:
    """Command line: -n WORKERS [-s SERVERS] [--port P] [--timeout S] -- command ..."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--num-workers", type=positive_int, required=True,
                        help="worker processes (>= 1)")
    parser.add_argument("-s", "--num-servers", type=positive_int, default=1,
                        help="parameter servers (>= 1; default 1)")
    parser.add_argument("--port", type=number(int, 0, 65535), default=0,
                        help="scheduler port (default: free)")
    parser.add_argument("--timeout", type=nonnegative_float, default=0,
                        help="seconds; 0 = none")
    add_debug_flag(parser)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the worker command after --")
    from accel.utils.launch import launch

    return launch(command, args.num_workers, args.num_servers, args.port or None, args.timeout)


if __name__ == "__main__":
    run(main, mxnet="never")
