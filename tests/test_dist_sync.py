"""dist_sync on loopback: two workers end with the same parameters as one process with two
contexts over the same samples, and a hang or a failing worker is a failure, in time."""
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "dist_sync_worker.py"
LAUNCH = ROOT / "experiments" / "launch_dist.py"
TIME_LIMIT = 60  # seconds for the whole dist_sync run; a hang fails the test, never skips


def _launch(*worker_args, timeout=TIME_LIMIT, env=None):
    cmd = [sys.executable, str(LAUNCH), "-n", "2", "--timeout", str(timeout), "--",
           sys.executable, *map(str, worker_args)]
    # One OpenMP thread per process: four processes share CI's two cores.
    env = dict(env or os.environ, OMP_NUM_THREADS="1")
    # The subprocess limit is a backstop; the launcher's own --timeout fires first.
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30,
                          env=env)


def _params(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def test_two_workers_equal_one_process_over_the_same_samples(tmp_path):
    tic = time.monotonic()
    proc = _launch(WORKER, tmp_path, "dist")
    assert proc.returncode == 0, ("dist_sync run failed or hung (124 = hit the "
                                  f"{TIME_LIMIT} s limit):\n{proc.stderr[-3000:]}")
    assert time.monotonic() - tic < TIME_LIMIT
    assert "worker 0 of 2: 4 samples of its own" in proc.stderr
    assert "worker 1 of 2: 4 samples of its own" in proc.stderr
    single = subprocess.run([sys.executable, str(WORKER), str(tmp_path), "single"],
                            capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert single.returncode == 0, single.stderr[-3000:]
    w0, w1 = _params(tmp_path / "params_dist_0.npz"), _params(tmp_path / "params_dist_1.npz")
    ref = _params(tmp_path / "params_single_0.npz")
    assert w0["num_batches"] == w1["num_batches"] == ref["num_batches"] == 8  # 2 epochs x 4
    names = sorted(k for k in ref if k != "num_batches")
    assert names == sorted(k for k in w0 if k != "num_batches")
    for name in names:
        np.testing.assert_array_equal(w0[name], w1[name], err_msg=name)
        np.testing.assert_allclose(w0[name], ref[name], rtol=1e-5, atol=1e-6, err_msg=name)
    # Training moved every parameter, so equality is not two untouched initialisations.
    start = _start_params()
    assert all(not np.allclose(ref[n], start[n]) for n in names)


def _start_params():
    sys.path.insert(0, str(WORKER.parent))
    try:
        import dist_sync_worker as w
    finally:
        sys.path.pop(0)
    sym = w.symbol()
    args, _ = w.init_params(sym)({"data": (1, 3, w.SIZE, w.SIZE),
                                  "label": (1, 1, w.SIZE, w.SIZE)}, None)
    return {n: v.asnumpy() for n, v in args.items()}


def test_a_failing_worker_stops_the_run_at_once(tmp_path):
    # Worker 1 dies before joining: worker 0 would wait for it forever.
    script = tmp_path / "one_fails.py"
    script.write_text(
        "import os\n"
        "import mxnet as mx\n"
        "kv = mx.kv.create('dist_sync')\n"
        "if kv.rank == 1:\n"
        "    os._exit(3)\n"
        "kv.init(0, mx.nd.zeros((1,)))\n"
        "kv.push(0, mx.nd.ones((1,)))\n"
        "out = mx.nd.zeros((1,))\n"
        "kv.pull(0, out=out)\n"
        "out.wait_to_read()\n")
    proc = _launch(script, timeout=TIME_LIMIT)
    # Its status, not 124: the launcher stopped worker 0 instead of waiting for the limit.
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "exited with 3: stopping every process" in proc.stderr
