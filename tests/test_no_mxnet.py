"""What must work on a machine without MXNet (the PyTorch runtime's install, the lent GPU
machines): data, metrics, consistency, plots, the demos' outputs and command lines, the
network contract, the graph store and the checkpoint reader import with `import mxnet` made
impossible."""
import subprocess
import sys

import pytest

WITHOUT_MXNET = ["accel.dataset", "accel.core.metrics", "accel.core.consistency",
                 "accel.core.tester", "accel.core.timing", "accel.keyframes",
                 "accel.core.inference", "accel.utils.plots", "accel.utils.visualize",
                 "accel.utils.checkpoint", "accel.utils.params_file", "accel.config",
                 "accel.networks", "accel.graphs", "accel.oracle", "accel.live",
                 "accel.cli.demo", "accel.cli.tables", "accel.cli.live", "accel.cli.train",
                 "accel.cli.keyframes", "accel.cli.benchmark"]
WITH_TORCH = ["accel.runtime.torch_runtime", "accel.runtime.torch_ops",
              "accel.core.runtime_check"]


def _import_all(modules):
    script = ("import importlib, sys\nsys.modules['mxnet'] = None\n"
              "for name in sys.argv[1:]:\n    importlib.import_module(name)\n"
              "assert 'mxnet' not in {m.split('.')[0] for m, v in sys.modules.items() "
              "if v is not None}\n")
    return subprocess.run([sys.executable, "-c", script, *modules], capture_output=True,
                          text=True, timeout=120)


def test_the_inference_side_imports_without_mxnet():
    proc = _import_all(WITHOUT_MXNET)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_pytorch_runtime_imports_without_mxnet():
    pytest.importorskip("torch", reason="PyTorch is not installed")
    proc = _import_all(WITH_TORCH)
    assert proc.returncode == 0, proc.stderr[-2000:]
