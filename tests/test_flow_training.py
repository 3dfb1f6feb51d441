"""FlowNet trained on DIS targets with the shared training loop; its checkpoint is a valid
`network.pretrained` (part `flow`) for Accel."""
from pathlib import Path

import numpy as np
import pytest

from accel.config import checkpoint_prefix, load_config, merge_overrides
from accel.core import flow_training
from accel.core.pretrained import accel_chain, load_pretrained
from accel.utils import paths
from dff_deeplab.symbol import AccelNetwork

REPO = Path(__file__).resolve().parents[1]
CFG = REPO / "experiments" / "flownet" / "cfgs" / "flownet_camvid_sample.yaml"
ACCEL_CFG = REPO / "experiments" / "dff_deeplab" / "cfgs" / "accel_18_camvid_sample.yaml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("flow")
    cfg = merge_overrides(load_config(str(CFG)), [
        "output_path=%s" % out, "TRAIN.end_epoch=4", "TEST.test_epoch=4",
        "TRAIN.CROP_HEIGHT=96", "TRAIN.CROP_WIDTH=128", "TRAIN.lr=0.0002"])
    result = flow_training.train_flownet(cfg, str(CFG), cpu=True)
    return cfg, result


def test_training_lowers_the_end_point_error(trained):
    _, result = trained
    losses = [result.epoch_losses[e] for e in sorted(result.epoch_losses)]
    assert len(losses) == 4 and losses[-1] < losses[0]


def test_evaluation_reports_epe_against_dis(trained):
    cfg, _ = trained
    res = flow_training.evaluate_flownet(cfg, str(CFG), cpu=True)
    pairs = flow_training.flow_pairs_from_config(cfg, train=False)
    targets = [pairs[i]["flow_label"] for i in range(len(pairs))]
    # Zero flow is off by each target's length.
    magnitude = np.mean([np.linalg.norm(t, axis=1).mean() for t in targets])
    assert res["pairs"] == len(targets) == 11
    assert res["epe_zero_flow"] == pytest.approx(magnitude, rel=1e-5)
    assert res["checkpoint"] == paths.params_path(checkpoint_prefix(cfg, str(CFG)), 4)


def test_checkpoint_is_the_flow_part_of_accel(trained):
    cfg, _ = trained
    accel = merge_overrides(load_config(str(ACCEL_CFG)), [
        "network.pretrained=%s" % checkpoint_prefix(cfg, str(CFG)), "network.pretrained_epoch=4",
        "network.INIT_FROM_SCRATCH=[base, ec]"])
    net = AccelNetwork("18", 11)
    shapes = {"data": (1, 3, 64, 64), "data_ref": (2, 3, 64, 64), "eq_flag": (1,),
              "label": (1, 1, 64, 64)}
    args, _ = load_pretrained(accel, net.train(3), shapes, accel_chain(net.version))
    flow_file = flow_training.load_checkpoint(checkpoint_prefix(cfg, str(CFG)), 4)[0]
    assert (args["conv3_weight"].asnumpy() == flow_file["conv3_weight"].asnumpy()).all()
