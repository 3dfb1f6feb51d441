"""Run provenance (accel.utils.provenance): the git state of a known repository, the thread
count MXNet really runs with, library versions, and no import of config or MXNet."""
import json
import os
import subprocess
import sys

import pytest

from accel.utils.provenance import UNKNOWN, git_state, provenance_line, run_provenance


def _git(cwd, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def test_git_state_of_a_known_repository(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    _git(repo, "add", "a.py")
    _git(repo, "commit", "-q", "-m", "one")
    first = _git(repo, "rev-parse", "HEAD")
    assert git_state(str(repo)) == {"commit": first, "dirty": False}
    (repo / "output.log").write_text("untracked files are outputs, not code\n")
    assert git_state(str(repo))["dirty"] is False
    (repo / "a.py").write_text("x = 2\n")
    assert git_state(str(repo)) == {"commit": first, "dirty": True}
    _git(repo, "commit", "-q", "-am", "two")
    second = git_state(str(repo))
    assert second == {"commit": _git(repo, "rev-parse", "HEAD"), "dirty": False}
    assert second["commit"] != first
    outside = tmp_path / "not_a_repo"
    outside.mkdir()
    assert git_state(str(outside)) == {"commit": UNKNOWN, "dirty": None}


_CHILD = """
import json, sys
import accel.utils.provenance as p
info = p.run_provenance()
before = {"config": "accel.config" in sys.modules, "mxnet": "mxnet" in sys.modules}
import mxnet, numpy, cv2, Cython
after = p.run_provenance()
print(json.dumps({"before": before, "info": info, "after": after,
                  "versions": [mxnet.__version__, numpy.__version__, cv2.__version__,
                               Cython.__version__]}))
"""


@pytest.mark.parametrize("threads", ["1", "3"])
def test_thread_count_is_the_one_mxnet_runs_with(threads):
    env = dict(os.environ, OMP_NUM_THREADS=threads)
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    # Reading provenance imports neither the config module nor MXNet.
    assert got["before"] == {"config": False, "mxnet": False}
    assert got["info"]["mxnet_omp_threads"] is None
    after = got["after"]
    assert after["omp_num_threads"] == threads
    assert after["mxnet_omp_threads"] == int(threads)   # read from libmxnet's OpenMP
    assert after["env"]["OMP_NUM_THREADS"] == threads
    assert [after[k] for k in ("mxnet", "numpy", "opencv", "cython")] == got["versions"]
    assert got["info"]["mxnet"] == got["versions"][0]  # from the installed package


def test_this_checkout_and_the_log_line():
    info = run_provenance()
    json.dumps(info)  # goes into result files as is
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.abspath(__file__)))
    assert info["commit"] == (head.stdout.strip() if head.returncode == 0 else UNKNOWN)
    assert info["python"] == "%d.%d.%d" % sys.version_info[:3]
    assert info["cpu"] and info["cores"] == len(os.sched_getaffinity(0))  # this process's
    line = provenance_line({**info, "commit": "0123456789abcdef" * 2 + "01234567",
                            "dirty": True, "omp_num_threads": "2", "mxnet_omp_threads": 2})
    assert line.startswith("code 0123456789ab+dirty, OMP_NUM_THREADS 2 (mxnet omp 2)")
    assert f"mxnet {info['mxnet']}" in line and f"numpy {info['numpy']}" in line
    clean = provenance_line({**info, "commit": UNKNOWN, "dirty": None})
    assert clean.startswith("code unknown,")
