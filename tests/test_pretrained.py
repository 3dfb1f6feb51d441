"""The pretrained chain: clear errors for missing files, INIT_FROM_SCRATCH, new layers,
ownership of parameters, BatchNorm calibration of parts started from scratch."""
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from accel.config import load_config, merge_overrides
from accel.core.pretrained import (DEEPLAB_CHAIN, PretrainedError, accel_chain,
                                   calibrate_batchnorm, load_pretrained)
from accel.utils.checkpoint import CheckpointError, save_checkpoint
from dff_deeplab.symbol import AccelNetwork, get_version

ROOT = Path(__file__).resolve().parents[1]
ACCEL_CFG = ROOT / "experiments/dff_deeplab/cfgs/accel_18_cityscapes_end2end_ohem.yaml"
SHAPES = {"data": (1, 3, 64, 64), "data_ref": (1, 3, 64, 64), "eq_flag": (1,),
          "label": (1, 1, 64, 64)}


@pytest.fixture(scope="module")
def accel18():
    return AccelNetwork("18", 11).train(2)


def _cfg(*overrides):
    return merge_overrides(load_config(str(ACCEL_CFG)), ["dataset.NUM_CLASSES=11", *overrides])


def test_missing_file_names_the_file_the_key_and_the_way_out(accel18, tmp_path):
    cfg = _cfg(f"network.pretrained={tmp_path}/rfcn_dff_flownet_vid")
    with pytest.raises(PretrainedError) as err:
        load_pretrained(cfg, accel18, SHAPES, accel_chain(get_version("18")))
    text = str(err.value)
    assert f"{tmp_path}/rfcn_dff_flownet_vid-0000.params" in text
    assert "network.pretrained" in text and "Deep Feature Flow" in text
    assert "INIT_FROM_SCRATCH" in text and "'flow'" in text


def test_empty_prefix_and_unknown_part_are_errors(accel18):
    with pytest.raises(PretrainedError, match="network.pretrained_base is empty"):
        load_pretrained(_cfg("network.INIT_FROM_SCRATCH=[flow]", "network.pretrained_base="),
                        accel18, SHAPES, accel_chain(get_version("18")))
    with pytest.raises(PretrainedError, match=r"\['flow'\].*parts are \['base'\]"):
        load_pretrained(_cfg("network.INIT_FROM_SCRATCH=[flow]"), accel18, SHAPES,
                        DEEPLAB_CHAIN)


def test_a_file_lacking_parameters_of_its_part_is_an_error(accel18, tmp_path):
    prefix = str(tmp_path / "flow")
    save_checkpoint(prefix, 0, {"conv2_weight": mx.nd.ones((128, 64, 5, 5))}, {})
    cfg = _cfg(f"network.pretrained={prefix}", "network.INIT_FROM_SCRATCH=[base, ec]")
    with pytest.raises(PretrainedError, match=r"flow-0000.params .*lacks") as err:
        load_pretrained(cfg, accel18, SHAPES, accel_chain(get_version("18")))
    assert "flow_conv1_weight" in str(err.value) and "conv2_weight" not in str(err.value)
    # A mis-shaped array is reported with both shapes.
    save_checkpoint(prefix, 0, {"conv2_weight": mx.nd.ones((1, 64, 5, 5))}, {})
    with pytest.raises(CheckpointError, match=r"conv2_weight: expected \(128, 64, 5, 5\)"):
        load_pretrained(cfg, accel18, SHAPES, accel_chain(get_version("18")))


def test_scratch_run_is_complete_deterministic_and_keeps_correction_init(accel18):
    cfg = _cfg("network.INIT_FROM_SCRATCH=[flow, base, ec]")
    chain = accel_chain(get_version("18"))
    args, aux = load_pretrained(cfg, accel18, SHAPES, chain)
    again, _ = load_pretrained(cfg, accel18, SHAPES, chain)
    want = set(accel18.list_arguments()) - set(SHAPES)
    assert set(args) == want and set(aux) == set(accel18.list_auxiliary_states())
    assert all((args[n].asnumpy() == again[n].asnumpy()).all() for n in want)
    corr = args["corr_weight"].asnumpy()
    assert corr.shape == (11, 22, 1, 1) and 0.005 < corr.std() < 0.02


def test_ownership_follows_the_builders():
    owner = accel_chain(get_version("18")).owner
    assert owner("Convolution5_weight") == owner("flow_conv1_weight") == "flow"
    assert owner("18_conv0_weight") == owner("18_fc6_weight") == "ec"
    assert owner("res5a_branch2b_weight") == owner("fc6_weight") == "base"
    assert accel_chain(get_version("50")).owner("curr_fc6_weight") == "ec"
    assert [p.name for p in accel_chain(get_version("101")).parts] == ["flow", "base"]


def test_batchnorm_calibration_normalises_each_layer_in_turn():
    data = mx.sym.Variable("data")
    x = data
    for i in range(3):
        x = mx.sym.Convolution(x, name=f"c{i}", num_filter=8, kernel=(3, 3), pad=(1, 1))
        x = mx.sym.BatchNorm(x, name=f"bn{i}", use_global_stats=True, fix_gamma=False)
    shapes = {"data": (2, 3, 16, 16)}
    arg_shapes, _, aux_shapes = x.infer_shape(**shapes)
    rng = np.random.default_rng(0)
    args = {n: mx.nd.array(rng.standard_normal(s) * 3) for n, s in
            zip(x.list_arguments(), arg_shapes) if n != "data"}
    args.update({n: mx.nd.ones(args[n].shape) for n in args if n.endswith("gamma")})
    args.update({n: mx.nd.zeros(args[n].shape) for n in args if n.endswith("beta")})
    aux = {n: mx.nd.array(np.full(s, 0.0 if "mean" in n else 1.0))
           for n, s in zip(x.list_auxiliary_states(), aux_shapes)}
    batch = {"data": rng.standard_normal(shapes["data"]).astype(np.float32) * 50 + 7}
    assert calibrate_batchnorm(x, batch, args, aux, lambda name: True) == 3
    exe = x.bind(mx.cpu(), {**args, "data": mx.nd.array(batch["data"])}, aux_states=aux)
    out = exe.forward()[0].asnumpy()
    assert abs(out.mean()) < 1e-3 and abs(out.var() - 1) < 1e-2


def test_unused_arrays_of_a_pretrained_file_are_named(accel18, tmp_path, caplog):
    # Issue #13.6: extra names are expected in pretrained files (the DFF model's R-FCN
    # heads), so a warning, but one that names every array left unused.
    from accel.core.pretrained import _flow_param_names

    arg_shapes, _, _ = accel18.infer_shape(**SHAPES)
    shapes = dict(zip(accel18.list_arguments(), arg_shapes))
    flow = {n: mx.nd.zeros(shapes[n]) for n in _flow_param_names()}
    flow.update(rfcn_cls_weight=mx.nd.zeros((2, 2)), rpn_bbox_bias=mx.nd.zeros(4))
    prefix = str(tmp_path / "dff")
    save_checkpoint(prefix, 0, flow, {})
    cfg = _cfg(f"network.pretrained={prefix}", "network.INIT_FROM_SCRATCH=[base, ec]")
    with caplog.at_level("WARNING"):
        load_pretrained(cfg, accel18, SHAPES, accel_chain(get_version("18")))
    assert "dff-0000.params (network.pretrained): 2 array(s) this network does not use" \
        in caplog.text
    assert "arg:rfcn_cls_weight, arg:rpn_bbox_bias" in caplog.text
