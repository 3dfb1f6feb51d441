"""The networks ARE the official ones: same parameter names and shapes as the released
symbols (so published checkpoints load unchanged), and the same outputs on real frames with
deterministic weights (oracle fixtures made with the official code).

ACCEL_REFERENCE_FIXTURES=<dir> points the fixture test at another directory of the same
format (any resolution; shapes are read from the files).
"""
import json
import os
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from deeplab.symbol import deeplab_resnet_v1_101
from dff_deeplab.symbol import AccelNetwork
from accel.oracle import compare
from oracle import oracle_value

HERE = Path(__file__).resolve().parent
OFFICIAL = json.loads((HERE / "fixtures" / "official_symbols_1024x2048.json").read_text())
FIXTURE_DIR = Path(os.environ.get("ACCEL_REFERENCE_FIXTURES",
                                  HERE / "fixtures" / "oracle_128x256"))
MANIFEST = json.loads((FIXTURE_DIR / "manifest.json").read_text())


def official_symbol(key: str) -> mx.sym.Symbol:
    """Our symbol for an official entry: 'accel_18.cur_test', 'deeplab_resnet_v1_101.test'."""
    net, graph = key.split(".")
    if net == "deeplab_resnet_v1_101":
        return deeplab_resnet_v1_101(19, is_train=(graph == "train"))
    return getattr(AccelNetwork(net.split("_")[1]), graph)()


def fixture_symbol(name: str) -> mx.sym.Symbol:
    """Fixture names: deeplab_resnet_v1_101_test, accel_key_test, accel_V_cur_test, accel_V_train."""
    if name == "deeplab_resnet_v1_101_test":
        return official_symbol("deeplab_resnet_v1_101.test")
    if name == "accel_key_test":
        return official_symbol("accel_18.key_test")
    _, version, graph = name.split("_", 2)
    return official_symbol("accel_%s.%s" % (version, graph))


def _shapes(entries):
    return {k: (tuple(v) if v is not None else None) for k, v in entries.items()}


@pytest.mark.parametrize("key", sorted(OFFICIAL))
def test_names_and_shapes_match_official(key):
    ref = OFFICIAL[key]
    sym = official_symbol(key)
    arg, out, aux = sym.infer_shape_partial(**{k: tuple(v) for k, v in ref["inputs"].items()})
    args = dict(zip(sym.list_arguments(), (tuple(s) if s else None for s in arg)))
    auxs = dict(zip(sym.list_auxiliary_states(), (tuple(s) for s in aux)))
    outs = dict(zip(sym.list_outputs(), (tuple(s) if s else None for s in out)))
    assert args == _shapes(ref["args"])
    assert list(args) == list(ref["args"]), "argument order differs from the official symbol"
    assert auxs == _shapes(ref["aux"])
    assert outs == _shapes(ref["outputs"])


def run_fixture(name: str, warp_op: str = "builtin"):
    """Forward our network on a fixture's inputs with oracle weights -> {output: array}."""
    entry = MANIFEST["fixtures"][name]
    data = np.load(FIXTURE_DIR / (name + ".npz"))
    inputs = {k[len("input__"):]: data[k] for k in data.files if k.startswith("input__")}
    sym = fixture_symbol(name) if warp_op == "builtin" else _with_warp(name, warp_op)
    internals = sym.get_internals()
    wanted = list(entry["outputs"])
    group = mx.sym.Group([internals[o] for o in wanted])
    inputs = {k: v for k, v in inputs.items() if k in group.list_arguments()}
    arg_shapes, _, aux_shapes = group.infer_shape(**{k: v.shape for k, v in inputs.items()})
    args = {}
    for n, s in zip(group.list_arguments(), arg_shapes):
        args[n] = mx.nd.array(inputs[n] if n in inputs else oracle_value(n, s))
    aux = {n: mx.nd.array(oracle_value(n, s))
           for n, s in zip(group.list_auxiliary_states(), aux_shapes)}
    exe = group.bind(mx.cpu(), args=args, aux_states=aux, grad_req="null")
    outputs = exe.forward(is_train=False)
    return entry, data, {o: a.asnumpy() for o, a in zip(wanted, outputs)}


def _with_warp(name, warp_op):
    _, version, graph = name.split("_", 2)
    return getattr(AccelNetwork(version, warp_op=warp_op), graph)()


def assert_matches_fixture(entry, data, outputs):
    """Every sample within 1e-4 * abs_mean + 1e-6, every argmax map on >= 99.9% of pixels
    (accel.oracle.compare)."""
    for out, row in compare(entry, data, outputs).items():
        assert row["ok"], "%s: %s" % (out, row)


@pytest.mark.parametrize("name", sorted(MANIFEST["fixtures"]))
def test_outputs_match_oracle_fixture(name):
    entry, data, outputs = run_fixture(name)
    assert_matches_fixture(entry, data, outputs)


@pytest.mark.parametrize("name", sorted(n for n in MANIFEST["fixtures"] if "cur_test" in n
                                        or n.endswith("_train")))
def test_fused_warp_network_matches_oracle_fixture(name):
    """network.WARP_OP: fused (our single-kernel warp) gives the official outputs too."""
    entry, data, outputs = run_fixture(name, warp_op="fused")
    assert_matches_fixture(entry, data, outputs)


# ------------------------------------------------------------------- the PyTorch runtime
try:
    import torch
except ImportError:  # the MXNet-only install
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed "
                                 "(pip install -c constraints.txt torch, or sh init.sh)")


def run_fixture_torch(name: str, fold_batchnorm: bool = True):
    """Our stored graph run by the PyTorch runtime on a fixture's inputs, with oracle weights
    whose shapes the runtime infers itself (no MXNet involved)."""
    from accel.oracle import run_torch

    return run_torch(FIXTURE_DIR, name, fold_batchnorm=fold_batchnorm)


@needs_torch
@pytest.mark.parametrize("name", sorted(MANIFEST["fixtures"]))
def test_torch_runtime_matches_oracle_fixture(name):
    """The PyTorch runtime (BatchNorm folded at load, its default) gives the official
    outputs: every sample within the MXNet tolerance, argmax maps on >= 99.9% of pixels."""
    assert_matches_fixture(*run_fixture_torch(name))


@needs_torch
def test_torch_runtime_unfolded_batchnorm_matches_oracle_fixture():
    assert_matches_fixture(*run_fixture_torch("accel_18_cur_test", fold_batchnorm=False))


@needs_torch
@pytest.mark.parametrize("key", sorted(k for k in OFFICIAL if not k.endswith("train")
                                       or k == "accel_18.train"))
def test_torch_shape_inference_gives_the_official_names_and_shapes(key):
    """Without MXNet, the runtime infers exactly the official parameters (names, order,
    shapes), auxiliary states and output shapes from the stored graph."""
    from accel.graphs import load_graph
    from accel.runtime.torch_graph import infer_shapes

    ref = OFFICIAL[key]
    net, graph = key.split(".")
    name = "deeplab_resnet_v1_101.test" if net.startswith("deeplab") else key
    args, aux, outs = infer_shapes(load_graph(name, 19), ref["inputs"])
    inputs = ("data", "data_key", "feat_key", "data_ref", "eq_flag", "label", "softmax_label")
    assert list(args.items()) == [(k, tuple(v)) for k, v in ref["args"].items()
                                  if k not in inputs]
    assert aux == _shapes(ref["aux"])
    assert outs == _shapes(ref["outputs"])
