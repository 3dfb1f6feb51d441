"""Every runner honours MXNET_VERSION before mxnet is imported, and refuses an unknown one
with one line naming the key, the folder looked in and what is there."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from accel.cli import mxnet_version_of

ROOT = Path(__file__).resolve().parents[1]
EXTERNAL = ROOT / "external" / "mxnet"
DEMO_CFG = ROOT / "experiments" / "deeplab" / "cfgs" / "deeplab_camvid_sample.yaml"

# The runners, each with arguments that get past argument parsing (MXNET_VERSION comes from
# the yaml for those with --cfg, from --mxnet-version for the others).
RUNNERS = {
    "accel demo": ["dff_deeplab/demo.py", "--cpu", "--model", "nothing"],
    "deeplab demo": ["deeplab/demo.py", "--cpu", "--model", "nothing"],
    "tables": ["experiments/dff_deeplab/reproduce_tables.py", "--cpu", "--versions", "18"],
    "deeplab train-test": ["experiments/deeplab/deeplab_train_test.py", "--cpu"],
    "accel train-test": ["experiments/dff_deeplab/dff_deeplab_end2end_train_test.py", "--cpu"],
    "flownet": ["experiments/flownet/train_flownet.py", "--cpu"],
    "benchmark": ["experiments/benchmark.py", "--versions", "18", "--size", "64", "128",
                  "--frames", "1", "--no-parts"],
}


def _cfg(tmp_path, version):
    cfg = yaml.safe_load(DEMO_CFG.read_text())
    cfg["MXNET_VERSION"] = version
    cfg["output_path"] = str(tmp_path / "output")
    cfg["dataset"]["dataset_path"] = str(tmp_path / "no_data")  # runners stop there
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(argv, tmp_path, version, env=None):
    """Run a runner with MXNET_VERSION = version (yaml for --cfg runners, else the flag)."""
    script, *rest = argv
    if "train" in script or "flownet" in script or "demo" in script:
        rest = rest + ["--cfg", str(_cfg(tmp_path, version))]
    else:
        rest = rest + ["--mxnet-version", version]
    return subprocess.run([sys.executable, str(ROOT / script)] + rest, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, **(env or {})))


@pytest.fixture
def fake_mxnet(tmp_path):
    """A package under external/mxnet/ that records its import and hands over to the
    installed mxnet (as a source build's python/ folder would be imported)."""
    name = "_test_fake_%d" % os.getpid()
    package = EXTERNAL / name / "mxnet"
    package.mkdir(parents=True)
    log = tmp_path / "imported.log"
    (package / "__init__.py").write_text(textwrap.dedent(f"""
        import importlib, os, sys
        with open({str(log)!r}, "a") as f:
            f.write("imported " + __file__ + "\\n")
        folder = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        sys.path.remove(folder)
        del sys.modules["mxnet"]
        sys.modules["mxnet"] = importlib.import_module("mxnet")
        """))
    yield name, log
    import shutil
    shutil.rmtree(EXTERNAL / name)


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_an_unknown_mxnet_version_stops_every_runner_with_one_line(tmp_path, runner):
    proc = _run(RUNNERS[runner], tmp_path, "no_such_mxnet")
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "MXNET_VERSION 'no_such_mxnet'" in lines[0]
    assert str(EXTERNAL / "no_such_mxnet") in lines[0] and "packages present" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "output").exists()   # nothing ran


@pytest.mark.parametrize("runner", ["deeplab demo", "deeplab train-test", "benchmark"])
def test_the_package_under_external_mxnet_is_the_one_imported(tmp_path, fake_mxnet, runner):
    name, log = fake_mxnet
    proc = _run(RUNNERS[runner], tmp_path, name)
    assert log.read_text().count("imported") == 1, proc.stderr
    assert str(EXTERNAL / name) in log.read_text()
    # The run went on with that mxnet: it stops later, at its own business (no model, no
    # training frames) or finishes (the benchmark), never at MXNET_VERSION.
    assert "MXNET_VERSION" not in proc.stderr


def test_mxnet_version_comes_from_the_flag_the_override_or_the_yaml(tmp_path):
    path = _cfg(tmp_path, "from_yaml")
    assert mxnet_version_of(["--cfg", str(path)]) == "from_yaml"
    assert mxnet_version_of(["--cfg", str(path), "MXNET_VERSION=from_override"]) == \
        "from_override"
    assert mxnet_version_of(["--cfg", str(path), "--mxnet-version", "flag"]) == "flag"
    assert mxnet_version_of([]) == "mxnet"
