"""The training runners on the bundled CamVid clip at tiny sizes: loss goes down, frozen
parameters stay bit-identical, a killed run resumed equals an uninterrupted one, the
checkpoint loads in the segmenter, configs and graphs check out, dist_sync on loopback."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from accel.config import ConfigError, checkpoint_prefix, load_config, merge_overrides
from accel.core.pretrained import PretrainedError, accel_chain, frozen_names, load_pretrained
from accel.cli.train import Runner, train_test
from deeplab.test import test_net as deeplab_test
from deeplab.train import train_net as deeplab_train
from dff_deeplab.test import test_net as accel_test
from dff_deeplab.train_end2end import train_net as accel_train
from accel.core.tester import prepare_frame
from accel.core.train_state import RunExistsError
from accel.dataset import dataset_from_config
from accel.utils import paths
from accel.utils.checkpoint import load_checkpoint
from accel.utils.image import read_image
from deeplab.symbol import deeplab_resnet_v1_101
from dff_deeplab.symbol import network_from_config
from dff_deeplab.train_end2end import train_net

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "camvid"
ACCEL_SAMPLE = ROOT / "experiments/dff_deeplab/cfgs/accel_18_camvid_sample.yaml"
DEEPLAB_SAMPLE = ROOT / "experiments/deeplab/cfgs/deeplab_camvid_sample.yaml"
ACCEL_RUNNER = ROOT / "experiments/dff_deeplab/dff_deeplab_end2end_train_test.py"
# 360x480 -> 64x85, padded to 64x96; K = 2 gives 7 training samples per epoch.
TINY = ["SCALES=[[64,96]]", "TRAIN.CROP_HEIGHT=64", "TRAIN.CROP_WIDTH=96",
        "TRAIN.KEY_INTERVAL=2", "TEST.KEY_INTERVAL=2", f"dataset.dataset_path={SAMPLE}",
        "default.frequent=7"]
# Three epochs, a learning rate small enough for the 4x6 feature grid of these crops.
RUN = ["TRAIN.end_epoch=3", "TRAIN.lr=0.0005", "TRAIN.warmup=false"]

DEEPLAB = Runner(deeplab_train, deeplab_test, "DeepLab")
ACCEL = Runner(accel_train, accel_test, "Accel")


def _overrides(tmp_path, *extra):
    return TINY + [f"output_path={tmp_path}", *extra]


def _cfg(path, tmp_path, *extra):
    return merge_overrides(load_config(str(path)), _overrides(tmp_path, *extra))


def _params_equal(a, b):
    return sorted(a) == sorted(b) and all(np.array_equal(a[k].asnumpy(), b[k].asnumpy())
                                          for k in a)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Accel-18 sample config, 3 epochs at 64x96, uninterrupted."""
    tmp = tmp_path_factory.mktemp("full")
    cfg = _cfg(ACCEL_SAMPLE, tmp, *RUN)
    result = train_net(cfg, str(ACCEL_SAMPLE))
    return cfg, result


def test_training_lowers_the_loss_and_freezes_fixed_params(uninterrupted):
    cfg, result = uninterrupted
    assert result.end_epoch == 3 and len(result.losses) == 21
    assert result.epoch_losses[3] < 0.9 * result.epoch_losses[1]
    # Initial values, as the runner computes them (same seed, same calibration batch).
    network = network_from_config(cfg)
    sym = network.train(cfg.TRAIN.KEY_INTERVAL)
    probe = dataset_from_config(cfg).sample(0, np.random.default_rng(0))
    shapes = {n: probe[n].shape for n in ("data", "data_ref", "eq_flag", "label")}
    init_args, init_aux = load_pretrained(cfg, sym, shapes, accel_chain(network.version),
                                          {n: probe[n] for n in shapes})
    args, aux = load_checkpoint(result.prefix, 3)
    frozen = set(frozen_names(list(args), cfg.network.FIXED_PARAMS))
    assert "corr_weight" not in frozen and "18_conv0_weight" not in frozen
    assert {"res5c_branch2c_weight", "flow_conv1_weight", "18_upsampling_weight"} <= frozen
    for name in args:
        same = np.array_equal(args[name].asnumpy(), init_args[name].asnumpy())
        assert same == (name in frozen), name
    assert _params_equal(aux, init_aux)


def test_checkpoint_loads_in_the_segmenter(uninterrupted):
    from accel.core.inference import VideoSegmenter

    cfg, result = uninterrupted
    assert result.prefix == checkpoint_prefix(cfg, str(ACCEL_SAMPLE))
    args, aux = load_checkpoint(result.prefix, 3)
    seg = VideoSegmenter(network_from_config(cfg), args, aux, interval=2)
    ds = dataset_from_config(cfg, train=False)
    frames = [prepare_frame(read_image(ds.items[i].image), ds.pixel_means, ds.scales,
                            ds.stride).data for i in range(3)]
    flags = [seg.step(f).is_key for f in frames]
    assert flags == [True, False, True]
    assert seg.step(frames[0]).pred.shape == (64, 96)


def test_resume_after_a_kill_equals_the_uninterrupted_run(uninterrupted, tmp_path):
    cfg, result = uninterrupted
    cmd = [sys.executable, str(ACCEL_RUNNER), "--cfg", str(ACCEL_SAMPLE), "--no-test",
           *_overrides(tmp_path, *RUN)]
    prefix = checkpoint_prefix(_cfg(ACCEL_SAMPLE, tmp_path), str(ACCEL_SAMPLE))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not os.path.exists(prefix + "-0001.params") and proc.poll() is None:
            assert time.monotonic() < deadline, "no epoch-1 checkpoint within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not os.path.exists(prefix + "-0003.params")
    # What a kill during a save leaves (issue #13.7): resume removes it.
    stale = Path(os.path.dirname(prefix)) / ("." + os.path.basename(prefix)
                                             + "-0002.params.k1ll3d.tmp")
    stale.write_bytes(b"half a file")
    resumed = train_net(_cfg(ACCEL_SAMPLE, tmp_path, *RUN), str(ACCEL_SAMPLE),
                        resume=True)
    assert 1 <= resumed.begin_epoch < 3
    with open(prefix + "-0003.json") as f:
        assert json.load(f)["num_update"] == 21
    assert not stale.exists()
    a = load_checkpoint(result.prefix, 3)
    b = load_checkpoint(prefix, 3)
    assert _params_equal(a[0], b[0]) and _params_equal(a[1], b[1])


def test_deeplab_runner_trains_and_tests(tmp_path):
    # At 64x96 the sample config's lr 0.01 diverges (NaN at batch 4: issue #25.9).
    overrides = _overrides(tmp_path, "TRAIN.end_epoch=1", "default.frequent=4",
                           "TRAIN.lr=0.0005")
    assert train_test(["--cfg", str(DEEPLAB_SAMPLE), "--cpu", *overrides], DEEPLAB) == 0
    cfg = _cfg(DEEPLAB_SAMPLE, tmp_path)
    prefix = checkpoint_prefix(cfg, str(DEEPLAB_SAMPLE))
    args, aux = load_checkpoint(prefix, 1)
    sym = deeplab_resnet_v1_101(11, is_train=True)
    assert set(args) == set(sym.list_arguments()) - {"data", "label"}
    with open(prefix + "-0001_val.json") as f:
        results = json.load(f)
    assert results["frames"] == 12
    assert os.path.isfile(os.path.join(os.path.dirname(prefix), DEEPLAB_SAMPLE.name))


@pytest.mark.parametrize("name", ["accel_18", "accel_34", "accel_50", "accel_101"])
def test_official_configs_build_their_training_graphs(name):
    path = ROOT / f"experiments/dff_deeplab/cfgs/{name}_cityscapes_end2end_ohem.yaml"
    cfg = load_config(str(path))
    k = cfg.TRAIN.KEY_INTERVAL
    sym = network_from_config(cfg).train(k)
    shapes = dict(data=(1, 3, 768, 1024), data_ref=(k - 1, 3, 768, 1024), eq_flag=(1,),
                  label=(1, 1, 768, 1024))
    arg_shapes, out_shapes, _ = sym.infer_shape(**shapes)
    assert out_shapes[0] == (1, 19, 768, 1024)
    params = [n for n in sym.list_arguments() if n not in shapes]
    trainable = set(params) - set(frozen_names(params, cfg.network.FIXED_PARAMS))
    assert trainable == {"corr_weight", "corr_bias"}  # docs/design.md: only the fusion trains


def test_official_deeplab_config_builds_its_training_graph():
    cfg = load_config(str(ROOT / "experiments/deeplab/cfgs/"
                          "deeplab_resnet_v1_101_cityscapes_segmentation_base.yaml"))
    sym = deeplab_resnet_v1_101(cfg.dataset.NUM_CLASSES, is_train=True)
    _, out_shapes, _ = sym.infer_shape(data=(1, 3, 768, 1024), label=(1, 1, 768, 1024))
    assert out_shapes[0] == (1, 19, 768, 1024)


def test_bad_configs_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="BATCH_IMAGES = 2"):
        train_net(_cfg(ACCEL_SAMPLE, tmp_path, "TRAIN.BATCH_IMAGES=2"), str(ACCEL_SAMPLE))
    with pytest.raises(ValueError, match="freezes every parameter"):
        train_net(_cfg(ACCEL_SAMPLE, tmp_path, "network.FIXED_PARAMS=['']"), str(ACCEL_SAMPLE))
    with pytest.raises(ValueError, match="symbol = 'deeplab_resnet_v1_101'"):
        network_from_config(load_config(str(DEEPLAB_SAMPLE)))
    with pytest.raises(ConfigError, match="TRAIN.lr_stp"):
        train_test(["--cfg", str(ACCEL_SAMPLE), "TRAIN.lr_stp=1"], ACCEL)
    with pytest.raises(PretrainedError, match="rfcn_dff_flownet_vid-0000.params"):
        train_net(_cfg(ACCEL_SAMPLE, tmp_path, "network.INIT_FROM_SCRATCH=[base, ec]",
                       f"network.pretrained={tmp_path}/rfcn_dff_flownet_vid"),
                  str(ACCEL_SAMPLE))



def _fake_run(prefix, epochs=(1, 2)):
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    for e in epochs:
        for path in (paths.params_path(prefix, e), paths.states_path(prefix, e),
                     paths.train_state_path(prefix, e)):
            Path(path).write_bytes(b"old run")


def test_a_fresh_run_refuses_a_folder_holding_another_run(tmp_path):
    # Issue #13.1: training into an existing run folder without --resume overwrote epoch 1
    # and kept the old later epochs, and wrote the run's yaml before failing.
    prefix = checkpoint_prefix(_cfg(ACCEL_SAMPLE, tmp_path), str(ACCEL_SAMPLE))
    _fake_run(prefix)
    saved = paths.saved_config_path(os.path.dirname(prefix), str(ACCEL_SAMPLE))
    with pytest.raises(RunExistsError) as err:
        train_test(["--cfg", str(ACCEL_SAMPLE), "--no-test", *_overrides(tmp_path)], ACCEL)
    message = str(err.value)
    assert os.path.dirname(prefix) in message and "--resume" in message
    assert "output_path=" in message and "--overwrite" in message
    assert Path(paths.params_path(prefix, 2)).read_bytes() == b"old run"
    assert not os.path.exists(saved)


def test_a_run_failing_at_data_loading_writes_no_config(tmp_path):
    prefix = checkpoint_prefix(_cfg(ACCEL_SAMPLE, tmp_path), str(ACCEL_SAMPLE))
    saved = paths.saved_config_path(os.path.dirname(prefix), str(ACCEL_SAMPLE))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "no_such_data")):
        train_test(["--cfg", str(ACCEL_SAMPLE), "--no-test", *_overrides(tmp_path),
                    f"dataset.dataset_path={tmp_path / 'no_such_data'}"], ACCEL)
    assert not os.path.exists(saved)


def test_overwrite_replaces_the_old_run(tmp_path):
    prefix = checkpoint_prefix(_cfg(DEEPLAB_SAMPLE, tmp_path), str(DEEPLAB_SAMPLE))
    _fake_run(prefix, epochs=(1, 2, 3))
    Path(prefix + "-0003_val.json").write_text("{}")
    assert train_test(["--cfg", str(DEEPLAB_SAMPLE), "--no-test", "--overwrite",
                       *_overrides(tmp_path, "TRAIN.end_epoch=1", "TRAIN.lr=0.0005")],
                      DEEPLAB) == 0
    assert [os.path.basename(p) for p in paths.epoch_files(prefix)] == [
        os.path.basename(prefix) + s for s in ("-0001.json", "-0001.params", "-0001.states")]
    assert os.path.isfile(paths.saved_config_path(os.path.dirname(prefix),
                                                  str(DEEPLAB_SAMPLE)))


def test_only_the_last_optimizer_states_are_kept(uninterrupted):
    # Issue #13.9: every epoch kept its .states (10 x 123 MB for the quick start).
    cfg, result = uninterrupted
    assert cfg.TRAIN.keep_states == 1
    files = [os.path.basename(p)[len(os.path.basename(result.prefix)):]
             for p in paths.epoch_files(result.prefix)]
    assert files == ["-0001.json", "-0001.params", "-0002.json", "-0002.params",
                     "-0003.json", "-0003.params", "-0003.states"]
    with open(paths.train_state_path(result.prefix, 3)) as f:
        state = json.load(f)
    assert state["num_update"] == 21 and "provenance" in state


def test_resuming_a_complete_run_just_finishes(uninterrupted):
    cfg, result = uninterrupted
    before = {p: os.path.getmtime(p) for p in paths.epoch_files(result.prefix)}
    again = train_net(cfg, str(ACCEL_SAMPLE), resume=True)
    assert (again.begin_epoch, again.end_epoch, again.losses) == (3, 3, [])
    assert {p: os.path.getmtime(p) for p in paths.epoch_files(result.prefix)} == before


def test_resume_point_is_the_last_complete_epoch(tmp_path):
    from accel.core.train_state import resume_point

    prefix = str(tmp_path / "model")
    assert resume_point(prefix) is None
    files = {1: (".params", ".states", ".json"), 2: (".params", ".json"),
             3: (".states", ".json"), 4: (".params", ".states")}
    for epoch, suffixes in files.items():
        for suffix in suffixes:
            Path("%s-%04d%s" % (prefix, epoch, suffix)).write_bytes(b"x")
    assert resume_point(prefix) == 1
    Path(prefix + "-0004.json").write_bytes(b"x")
    assert resume_point(prefix) == 4


def test_a_failed_save_names_the_file_and_the_intact_checkpoint(tmp_path, monkeypatch):
    import mxnet as mx

    from accel.core import train_state
    from accel.utils.checkpoint import save_checkpoint

    prefix = str(tmp_path / "model")
    save_checkpoint(prefix, 1, {"fc_weight": mx.nd.ones((3, 2)), "fc_bias": mx.nd.ones(3)}, {})
    exe = mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=3, name="fc") \
        .simple_bind(mx.cpu(), data=(1, 2))

    def full(fname, data):
        raise mx.base.MXNetError("Check failed: FileStream.Write incomplete")
    monkeypatch.setattr(mx.nd, "save", full)
    with pytest.raises(train_state.CheckpointError) as err:
        train_state.save_epoch(prefix, 2, exe, {"data": (1, 2)}, {"fc_weight@0": mx.nd.ones((3, 2))},
                      {"num_update": 2}, 1)
    message = str(err.value)
    assert "epoch 2 not saved" in message and prefix + "-0002.states" in message
    assert "disk full" in message and f"{prefix}-0001.params is intact" in message


def test_testing_a_checkpoint_with_unexpected_parameters_is_an_error(uninterrupted, tmp_path):
    # Issue #13.6: an unexpected parameter in a checkpoint was accepted silently.
    from accel.utils.checkpoint import CheckpointError, save_checkpoint
    from dff_deeplab.test import test_net

    cfg, result = uninterrupted
    args, aux = load_checkpoint(result.prefix, 3)
    other = _cfg(ACCEL_SAMPLE, tmp_path, *RUN)
    save_checkpoint(checkpoint_prefix(other, str(ACCEL_SAMPLE)), 3,
                    {**args, "rfcn_cls_weight": args["corr_weight"]}, aux)
    with pytest.raises(CheckpointError, match=r"holds 1 parameter\(s\) that Accel-18 does not "
                                              r"use: rfcn_cls_weight"):
        test_net(other, str(ACCEL_SAMPLE), epoch=3, cpu=True)


# -- a tiny network for the trainer's own behaviour (seconds, not minutes) -----------------
class _TinySamples:
    """Eight fixed random 8x8 images with 3-class labels (some pixels ignored)."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.data = rng.normal(size=(8, 1, 3, 8, 8)).astype(np.float32)
        label = rng.integers(0, 3, size=(8, 1, 1, 8, 8))
        label[rng.random(label.shape) < 0.1] = 255
        self.label = label.astype(np.float32)

    def __len__(self):
        return 8

    def sample(self, index, rng):
        return {"data": self.data[index], "label": self.label[index]}


def tiny_fit(prefix, end_epoch, lr=0.1, samples=None, **kwargs):
    """Train a two-convolution network on `samples` (default _TinySamples) with `fit`."""
    import mxnet as mx

    from accel.config import get_defaults
    from accel.core.trainer import fit
    from accel.symbols.layers import segmentation_loss

    x = mx.sym.Convolution(mx.sym.Variable("data"), num_filter=4, kernel=(3, 3), pad=(1, 1),
                           name="conv1")
    sym = segmentation_loss(mx.sym.Convolution(mx.sym.relu(x), num_filter=3, kernel=(1, 1),
                                               name="score"), mx.sym.Variable("label"))

    def init(shapes, batch):
        rng = np.random.default_rng(1)
        arg_shapes, _, _ = sym.infer_shape(**shapes)
        return {n: mx.nd.array(rng.normal(scale=0.3, size=s))
                for n, s in zip(sym.list_arguments(), arg_shapes) if n not in shapes}, {}
    cfg = get_defaults()
    cfg.default.frequent = 100
    cfg.TRAIN.update(end_epoch=end_epoch, lr=lr, lr_step="", warmup=False, momentum=0.9,
                     keep_states=kwargs.pop("keep_states", 1),
                     legacy_states=kwargs.pop("legacy_states", False))
    cfg.network.FIXED_PARAMS = []
    return fit(cfg, sym, samples or _TinySamples(), prefix, init, [mx.cpu()], **kwargs)


def test_old_pickled_states_resume_only_with_the_flag_and_exactly(tmp_path):
    import pickle

    import mxnet as mx

    from accel.utils.checkpoint import CheckpointError

    full = str(tmp_path / "full" / "tiny")
    tiny_fit(full, 2, keep_states=0)
    assert os.path.isfile(paths.states_path(full, 1))  # keep_states 0 keeps all
    part = str(tmp_path / "part" / "tiny")
    tiny_fit(part, 1)
    # What the old trainer wrote: a pickle of the Updater's {index: momentum}.
    names = ["conv1_weight", "conv1_bias", "score_weight", "score_bias"]
    new = mx.nd.load(paths.states_path(part, 1))
    with open(paths.states_path(part, 1), "wb") as f:
        pickle.dump({i: new[f"{n}@0"] for i, n in enumerate(names)}, f)
    with pytest.raises(CheckpointError, match="old pickled format.*--legacy-states"):
        tiny_fit(part, 2, resume=True)
    resumed = tiny_fit(part, 2, resume=True, legacy_states=True)
    assert resumed.begin_epoch == 1
    assert set(mx.nd.load(paths.states_path(part, 2))) == {f"{n}@0" for n in names}
    assert not os.path.exists(paths.states_path(part, 1))  # keep_states 1
    assert _params_equal(load_checkpoint(full, 2)[0], load_checkpoint(part, 2)[0])


def test_resuming_from_a_checkpoint_of_another_network_names_the_difference(tmp_path):
    import mxnet as mx

    from accel.utils.checkpoint import CheckpointError, save_checkpoint

    prefix = str(tmp_path / "tiny")
    tiny_fit(prefix, 1)
    args, aux = load_checkpoint(prefix, 1)
    save_checkpoint(prefix, 1, {**args, "rfcn_cls_weight": mx.nd.ones(2)}, aux)
    with pytest.raises(CheckpointError, match="tiny-0001.params does not fit this network: "
                                              "1 unexpected: arg:rfcn_cls_weight"):
        tiny_fit(prefix, 2, resume=True)
