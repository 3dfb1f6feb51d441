"""Training hyper-parameters of the official configs as the trainer applies them: per-parameter
learning-rate multipliers, weight decay only on weights and gammas, and the softmax loss over
valid pixels with 255 ignored, against values written down from the official release
(docs/design.md, "Networks" and "Training") and a NumPy computation."""
import json
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from accel.config import load_config, merge_overrides
from accel.core.trainer import SoftmaxMeter, fit
from accel.symbols.layers import segmentation_loss
from deeplab.symbol import deeplab_resnet_v1_101
from dff_deeplab.symbol import network_from_config

ROOT = Path(__file__).resolve().parents[1]
ACCEL_CFG = ROOT / "experiments/dff_deeplab/cfgs/accel_{}_cityscapes_end2end_ohem.yaml"
DEEPLAB_CFG = ROOT / "experiments/deeplab/cfgs/deeplab_resnet_v1_101_cityscapes_segmentation_base.yaml"

# From the official release (docs/design.md): fc6 and score biases learn at 2x, the fusion layer
# `correction` at 2x (weight) and 4x (bias), the bilinear `upsampling` not at all; every
# other parameter at 1x. Head copies carry a prefix ('18_', '34_', 'curr_').
OFFICIAL_LR_MULT = {"fc6_bias": 2.0, "score_bias": 2.0, "upsampling_weight": 0.0,
                    "corr_weight": 2.0, "corr_bias": 4.0}
HEAD_PREFIXES = ("18_", "34_", "50_", "curr_")


def official_lr_mult(name: str) -> float:
    for prefix in HEAD_PREFIXES:
        if name.startswith(prefix) and name[len(prefix):] in OFFICIAL_LR_MULT:
            return OFFICIAL_LR_MULT[name[len(prefix):]]
    return OFFICIAL_LR_MULT.get(name, 1.0)


def official_wd_mult(name: str) -> float:
    """Weight decay on convolution/deconvolution weights and BatchNorm gammas only."""
    return 1.0 if name.endswith(("_weight", "_gamma")) else 0.0


class _Stop(Exception):
    pass


class _ZeroSamples:
    """A data set of zero samples with the shapes a training graph takes (batch 1 of H x W)."""

    def __init__(self, shapes):
        self.shapes = shapes

    def __len__(self):
        return 3000   # batches per epoch, so the epoch-based lr steps land at known updates

    def sample(self, index, rng):
        return {n: np.zeros(s, np.float32) for n, s in self.shapes.items()}


def _trainer_optimizer(monkeypatch, tmp_path, cfg, symbol, shapes):
    """The optimizer `fit` builds for `symbol` under `cfg` (stopped before any update)."""
    seen = {}

    def stop_at_updater(optimizer):
        seen["optimizer"] = optimizer
        raise _Stop

    def zeros(input_shapes, batch):
        arg_shapes, _, aux_shapes = symbol.infer_shape(**input_shapes)
        args = {n: mx.nd.zeros(s) for n, s in zip(symbol.list_arguments(), arg_shapes)
                if n not in input_shapes}
        return args, {n: mx.nd.zeros(s) for n, s in
                      zip(symbol.list_auxiliary_states(), aux_shapes)}

    monkeypatch.setattr(mx.optimizer, "get_updater", stop_at_updater)
    with pytest.raises(_Stop):
        fit(cfg, symbol, _ZeroSamples(shapes), str(tmp_path / "never-written"), zeros,
            [mx.cpu()])
    opt = seen["optimizer"]
    base_lr = opt.lr_scheduler(opt.num_update) if opt.lr_scheduler else opt.lr
    lr = {name: opt._get_lrs([i])[0] / base_lr for i, name in opt.idx2name.items()}
    wd = {name: opt._get_wds([i])[0] / opt.wd for i, name in opt.idx2name.items()}
    return opt, lr, wd


def _accel(version, *overrides):
    cfg = merge_overrides(load_config(str(ACCEL_CFG).format(version)), list(overrides))
    k = cfg.TRAIN.KEY_INTERVAL
    h, w = 64, 64
    shapes = {"data": (1, 3, h, w), "data_ref": (k - 1, 3, h, w), "eq_flag": (1,),
              "label": (1, 1, h, w)}
    return cfg, network_from_config(cfg).train(k), shapes


@pytest.mark.parametrize("version", ["18", "34", "50", "101"])
def test_official_accel_configs_train_the_correction_at_2x_and_4x(monkeypatch, tmp_path,
                                                                 version):
    cfg, sym, shapes = _accel(version)
    opt, lr, wd = _trainer_optimizer(monkeypatch, tmp_path, cfg, sym, shapes)
    assert sorted(lr) == ["corr_bias", "corr_weight"]
    assert lr == {"corr_weight": 2.0, "corr_bias": 4.0}
    assert wd == {"corr_weight": 1.0, "corr_bias": 0.0}
    assert (opt.wd, opt.momentum) == (0.0005, 0.9)
    # Warm-up at 5e-5 for 1000 updates, then 5e-4, x0.1 after 1.333 epochs.
    assert opt.lr_scheduler(0) == pytest.approx(5e-5)
    assert opt.lr_scheduler(1001) == pytest.approx(5e-4)
    assert opt.lr_scheduler(4100) == pytest.approx(5e-5)


@pytest.mark.parametrize("version", ["18", "50"])
def test_every_accel_parameter_gets_the_official_multipliers(monkeypatch, tmp_path, version):
    """Everything trainable (FIXED_PARAMS emptied), so each multiplier is visible."""
    cfg, sym, shapes = _accel(version, "network.FIXED_PARAMS=[]")
    _, lr, wd = _trainer_optimizer(monkeypatch, tmp_path, cfg, sym, shapes)
    params = [n for n in sym.list_arguments() if n not in shapes]
    assert sorted(lr) == sorted(params)
    head = "18_" if version == "18" else "curr_"
    for name in ("fc6_bias", "score_bias", head + "fc6_bias", head + "score_bias"):
        assert lr[name] == 2.0, name
    assert lr["upsampling_weight"] == 0.0 and lr[head + "upsampling_weight"] == 0.0
    assert {n: lr[n] for n in params} == {n: official_lr_mult(n) for n in params}
    assert {n: wd[n] for n in params} == {n: official_wd_mult(n) for n in params}
    assert any(n.endswith("_gamma") and wd[n] == 1.0 for n in params)
    assert any(n.endswith("_beta") and wd[n] == 0.0 for n in params)


def test_official_deeplab_config_multipliers(monkeypatch, tmp_path):
    cfg = load_config(str(DEEPLAB_CFG))
    sym = deeplab_resnet_v1_101(cfg.dataset.NUM_CLASSES, is_train=True)
    shapes = {"data": (1, 3, 64, 64), "label": (1, 1, 64, 64)}
    opt, lr, wd = _trainer_optimizer(monkeypatch, tmp_path, cfg, sym, shapes)
    assert (lr["fc6_weight"], lr["fc6_bias"], lr["score_weight"], lr["score_bias"]) == \
        (1.0, 2.0, 1.0, 2.0)
    assert lr["upsampling_weight"] == 0.0
    assert lr == {n: official_lr_mult(n) for n in lr}
    assert wd == {n: official_wd_mult(n) for n in wd}
    assert wd["res5a_branch2a_weight"] == 1.0 and wd["fc6_bias"] == 0.0
    # conv1, res2 and every BatchNorm stay frozen in the released DeepLab config.
    assert not any(n.startswith(("conv1", "res2", "bn")) for n in lr)
    assert opt.lr_scheduler(0) == pytest.approx(5e-4)


def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_softmax_loss_and_gradient_over_valid_pixels_match_numpy():
    rng = np.random.default_rng(0)
    n, c, h, w = 2, 4, 3, 5
    score = rng.normal(size=(n, c, h, w)).astype(np.float32) * 3
    label = rng.integers(0, c, size=(n, 1, h, w)).astype(np.float32)
    label[0, 0, 0, :4] = 255
    label[1, 0, 2, 1:] = 255
    sym = segmentation_loss(mx.sym.Variable("score"), mx.sym.Variable("label"))
    grad = mx.nd.zeros(score.shape)
    exe = sym.bind(mx.cpu(), {"score": mx.nd.array(score), "label": mx.nd.array(label)},
                   args_grad={"score": grad}, grad_req={"score": "write", "label": "null"})
    exe.forward(is_train=True)
    exe.backward()
    prob = _softmax(score.astype(np.float64))
    lab = label[:, 0].astype(np.int64)
    valid = lab != 255
    num_valid = valid.sum()
    assert num_valid == n * h * w - 8
    onehot = np.zeros_like(prob)
    for i, y, x in zip(*np.nonzero(valid)):
        onehot[i, lab[i, y, x], y, x] = 1.0
    # d loss / d score = (p - onehot) / (valid pixels), nothing from ignored pixels.
    expected = (prob - onehot) * valid[:, None] / num_valid
    np.testing.assert_allclose(exe.outputs[0].asnumpy(), prob, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad.asnumpy(), expected, rtol=1e-4, atol=1e-7)
    # The logged loss: mean cross-entropy over the valid pixels only.
    p_true = np.take_along_axis(prob, np.where(valid, lab, 0)[:, None], axis=1)[:, 0]
    ce = -np.log(p_true[valid]).mean()
    meter = SoftmaxMeter()
    assert meter.add(exe) == pytest.approx(ce, rel=1e-5)
    acc = (prob.argmax(axis=1) == lab)[valid].mean()
    assert meter.line() == "loss=%.4f pixel-acc=%.4f" % (ce, acc)


@pytest.mark.parametrize("build", ["deeplab", "accel"])
def test_official_training_graphs_end_in_that_loss(build):
    if build == "deeplab":
        sym = deeplab_resnet_v1_101(19, is_train=True)
    else:
        sym = _accel("18")[1]
    out = sym.get_internals()["softmax_output"]
    attrs = out.list_attr()
    assert json.loads(out.tojson())["nodes"][-1]["op"] == "SoftmaxOutput"
    assert {k: attrs[k] for k in ("ignore_label", "use_ignore", "normalization",
                                  "multi_output")} == \
        {"ignore_label": "255", "use_ignore": "True", "normalization": "valid",
         "multi_output": "True"}
    assert sym.list_outputs()[0] == "softmax_output"
