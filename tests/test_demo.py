"""The demos end to end on the bundled CamVid clip with checkpoints made here: every
version, outputs readable, a video round trip, the table script, and clear errors."""
import importlib.util
import json
import os
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest
import yaml

from accel.config import config_to_dict, load_config
from accel.core.initializer import initialize_missing, initialize_network
from accel.config import checkpoint_prefix
from accel.utils.checkpoint import CheckpointError, save_checkpoint
from accel.utils.visualize import Mp4Writer
from accel.cli.demo import SAMPLE_CFG
from accel.symbols.versions import DEEPLAB_VERSIONS, get_version
from deeplab import demo as deeplab_demo
from deeplab.symbol import deeplab_resnet_v1_101
from dff_deeplab import demo
from dff_deeplab.symbol import AccelNetwork
from video_helpers import count_video_frames

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "camvid"
SHAPE = (1, 3, 64, 96)           # SCALES 64 x 96: 64x85 frames padded to 64x96 (stride 32)
SMALL = ["--scales", "64", "96", "--stride", "32", "--cpu"]
CLASSES = 11


def _accel_checkpoint(prefix, version):
    save_checkpoint(prefix, 0, *initialize_network(AccelNetwork(version, CLASSES), SHAPE))
    return prefix


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Checkpoints of Accel-18/34/50/101 (DFF uses Accel-18's) and DeepLab-101."""
    folder = tmp_path_factory.mktemp("model")
    prefixes = {v: _accel_checkpoint(str(folder / f"accel-{v}"), v) for v in ("18", "34", "50",
                                                                                "101")}
    prefixes["dff"] = prefixes["18"]
    sym = deeplab_resnet_v1_101(CLASSES)
    args, aux = initialize_missing(sym, {"data": SHAPE, "softmax_label": SHAPE[:1] + SHAPE[2:]},
                                   {}, {})
    args.pop("softmax_label", None)
    save_checkpoint(str(folder / "deeplab-101"), 0, args, aux)
    prefixes["deeplab"] = str(folder / "deeplab-101")
    return prefixes


def _check_outputs(out, res, labelled, panels=True):
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["mIoU"] == pytest.approx(res["mIoU"])
    maps = sorted((out / "maps").iterdir())
    assert len(maps) == labelled
    assert cv2.imread(str(maps[0])).shape == (64, 85, 3)
    if panels:
        assert len(list((out / "panels").iterdir())) == labelled
        assert cv2.imread(str(next((out / "panels").iterdir()))) is not None
    assert count_video_frames(str(out / "video.mp4")) == labelled
    assert "network, keyframes" in (out / "timing.md").read_text()
    assert "| **all** |" in (out / "results.md").read_text()


@pytest.mark.parametrize("version", ["dff", "18", "34", "50", "101"])
def test_demo_runs_every_version(models, tmp_path, version):
    out = tmp_path / "out"
    res = demo.main(["-v", version, "-i", "3", "-e", "4", "--model", models[version],
                     "--panels", "--output", str(out)] + SMALL)
    assert res["method"] == get_version(version).method
    assert res["frames"] == 4
    assert sorted(res["by_distance"]) == [0, 1, 2]   # snippets clamped at the clip's start
    net = res["timing"]["network"]
    assert net["key"]["frames"] > 0 and net["non_key"]["frames"] > 0
    _check_outputs(out, res, labelled=4)


def test_interval_one_is_deeplab_frame_by_frame_and_avg_covers_offsets(models, tmp_path):
    res = demo.main(["-i", "1", "-e", "3", "--model", models["18"], "--output",
                     str(tmp_path / "i1")] + SMALL)
    assert res["method"] == "DeepLab-101"
    assert res["timing"]["network"]["non_key"]["frames"] == 0
    avg = demo.main(["-v", "dff", "-i", "3", "--avg", "-e", "0", "--model", models["dff"],
                     "--no-video", "--output", str(tmp_path / "avg")] + SMALL)
    assert avg["protocol"] == "average over offsets"
    assert [avg["by_distance"][d]["frames"] for d in range(3)] == [12, 11, 10]
    assert not (tmp_path / "avg" / "video.mp4").exists()


def test_cfg_selects_the_training_runs_checkpoint(models, tmp_path):
    cfg = config_to_dict(load_config(str(ROOT / SAMPLE_CFG)))
    cfg["output_path"] = str(tmp_path / "output")
    cfg["SCALES"] = [[64, 96]]
    cfg["dataset"]["dataset_path"] = str(SAMPLE)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    loaded = load_config(str(path))
    prefix = checkpoint_prefix(loaded, str(path))
    os.makedirs(os.path.dirname(prefix))
    os.symlink(models["18"] + "-0000.params", "%s-%04d.params" % (prefix, loaded.TEST.test_epoch))
    res = demo.main(["--cfg", str(path), "-e", "2", "--cpu", "--output", str(tmp_path / "o")])
    assert res["interval"] == loaded.TEST.KEY_INTERVAL and res["version"] == "18"
    assert res["model"] == "%s-%04d.params" % (prefix, loaded.TEST.test_epoch)
    assert res["scales"] == [64, 96]


def test_video_file_round_trips(models, tmp_path):
    frames = sorted((SAMPLE / "val").glob("*.png"))
    clip = tmp_path / "clip.mp4"
    with Mp4Writer(str(clip), fps=15) as writer:
        for p in frames:
            writer.write(cv2.imread(str(p)))
    out = tmp_path / "seg"
    res = demo.main(["-v", "18", "-i", "4", "--video", str(clip), "--model", models["18"],
                     "--panels", "--consistency",
                     "--output", str(out)] + SMALL)
    assert res["frames"] == len(frames)
    assert count_video_frames(str(out / "video.mp4")) == len(frames)
    assert res["timing"]["network"]["key"]["frames"] == 2   # keys 0, 4, 8; frame 0 warm-up
    assert res["consistency"]["pairs"] == len(frames) - 1
    assert len(list((out / "panels").iterdir())) == len(frames)
    assert not (out / "maps").exists()
    folder = demo.main(["-i", "2", "--video", str(SAMPLE / "val"), "-e", "5", "--model",
                        models["18"], "--output", str(tmp_path / "folder")] + SMALL)
    assert folder["frames"] == 5


def test_deeplab_demo_runs_frame_by_frame(models, tmp_path):
    res = deeplab_demo.main(["--model", models["deeplab"], "-e", "3", "--panels", "--output",
                             str(tmp_path / "dl")] + SMALL)
    assert res["method"] == DEEPLAB_VERSIONS["deeplab_resnet_v1_101"].method == \
        "DeepLab-101 (dilated)" and res["frames"] == 3
    _check_outputs(tmp_path / "dl", res, labelled=3)


def test_bad_input_is_a_clear_error(models, tmp_path):
    with pytest.raises(CheckpointError) as err:
        demo.main(["--model", str(tmp_path / "nothing"), "--epoch", "3"] + SMALL)
    assert "nothing-0003.params" in str(err.value) and "--model" in str(err.value)
    with pytest.raises(CheckpointError, match="Google Drive"):
        demo.main(["--dataset", "cityscapes", "-v", "34", "--data-root", str(tmp_path)] + SMALL)
    with pytest.raises(SystemExit) as exit_:    # the parser: an integer >= 1
        demo.main(["-i", "0", "--model", models["18"], "--output", str(tmp_path / "i0")] + SMALL)
    assert exit_.value.code == 2
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    with pytest.raises(ValueError, match="unreadable"):
        demo.main(["--video", str(broken), "--model", models["18"],
                   "--output", str(tmp_path / "b")] + SMALL)
    # A model trained for another class count names the mismatch.
    with pytest.raises(CheckpointError, match="does not fit Accel version 18 with 19 classes"):
        demo.main(["--dataset", "cityscapes", "--model", models["18"], "--output",
                   str(tmp_path / "c"), "--video", str(SAMPLE / "val"), "-e", "1"] + SMALL)


def _load_script(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_script_writes_the_readme_table(models, tmp_path):
    reproduce_tables = _load_script(ROOT / "experiments" / "dff_deeplab" / "reproduce_tables.py")
    out = tmp_path / "tables"
    argv = ["--intervals", "1", "2", "-e", "4", "--output", str(out)] + SMALL
    for v in ("dff", "18", "34", "50", "101"):
        argv += ["--model", f"{v}={models[v]}"]
    res = reproduce_tables.main(argv)
    methods = [(r["method"], r["interval"]) for r in res["runs"]]
    assert ("DeepLab-101", 1) in methods and len(methods) == 6
    table = (out / "tables.md").read_text()
    for row in ("Deep Feature Flow", "Accel-18", "Accel-34", "Accel-50",
                "Frame-by-frame baseline", "Accel-101"):
        assert f"| {row} |" in table
    saved = json.loads((out / "tables.json").read_text())
    # A run without timed frames would have no time (null in the file).
    assert len(saved["runs"]) == 6 and all(r["time_per_frame"] is not None for r in saved["runs"])
    for name in ("miou_vs_interval.png", "miou_vs_time.png"):
        assert cv2.imread(str(out / name)) is not None
    with pytest.raises(FileNotFoundError, match="accel-34-0000.params"):
        reproduce_tables.main(["--versions", "34", "--output", str(out)] + SMALL)


def test_table_script_adds_fixed_vs_adaptive_rows(models, tmp_path):
    reproduce_tables = _load_script(ROOT / "experiments" / "dff_deeplab" / "reproduce_tables.py")
    out = tmp_path / "tables"
    argv = ["--versions", "dff", "18", "--intervals", "3", "-e", "4", "--output", str(out),
            "--model", f"dff={models['18']}", "--model", f"18={models['18']}",
            "--keyframe-policies", "flow", "disagreement", "--calibration-pairs", "3"] + SMALL
    res = reproduce_tables.main(argv)
    block = res["keyframes"]["versions"]
    assert list(block) == ["dff", "18"] and res["keyframes"]["rates"] == [3]
    # DFF has no update branch: no disagreement rows
    assert [r["policy"] for r in block["dff"]["adaptive"]] == ["flow"]
    assert [r["policy"] for r in block["18"]["adaptive"]] == ["flow", "disagreement"]
    fixed3 = block["18"]["fixed"][1]["schedule"]
    frames = fixed3["frames"]                  # the whole val clip, streamed continuously
    assert frames == len(list((SAMPLE / "val").glob("*.png")))
    assert fixed3["keyframes"] == -(-frames // 3)
    for row in block["dff"]["adaptive"] + block["18"]["adaptive"]:
        s = row["schedule"]
        assert row["threshold"] is not None and 0 <= row["train_rate"] <= 1
        assert (row["min_gap"], row["max_gap"]) == (1, 6)
        assert s["gap_max"] is None or s["gap_max"] <= 6
    table = (out / "tables.md").read_text()
    assert "## Fixed vs adaptive keyframes (continuous stream)" in table
    assert "| Accel-18 | disagreement | 1/3 |" in table
    assert "| Deep Feature Flow | flow | 1/3 |" in table
    saved = json.loads((out / "tables.json").read_text())
    assert "_streams" not in saved["keyframes"] and saved["keyframes"]["versions"]["18"]
    for name in ("keyframes_miou_vs_rate.png", "keyframes_miou_vs_time.png"):
        assert cv2.imread(str(out / name)) is not None
    # thresholds are never set on the split reported
    with pytest.raises(ValueError, match="--calibration-split val"):
        reproduce_tables.main(argv + ["--calibration-split", "val"])
    with pytest.raises(SystemExit) as exit_:     # the parser: an integer >= 2
        reproduce_tables.main(argv + ["--keyframe-rates", "1"])
    assert exit_.value.code == 2


def test_adaptive_keyframes_runner_compares_the_schedules(models, tmp_path):
    """experiments/dff_deeplab/adaptive_keyframes.py with the names its flags have always
    had (--rates, --policies, --train-split, --calib-pairs): its four outputs, a fixed and an
    adaptive row per version, and never a threshold set on the split reported."""
    runner = _load_script(ROOT / "experiments" / "dff_deeplab" / "adaptive_keyframes.py")
    cfg = config_to_dict(load_config(str(ROOT / SAMPLE_CFG)))
    cfg["SCALES"] = [[64, 96]]
    cfg["dataset"]["dataset_path"] = str(SAMPLE)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "adaptive"
    argv = ["--cfg", str(path), "--model", models["18"], "--rates", "3", "--policies", "flow",
            "--train-split", "train", "--calib-pairs", "2", "--no-consistency",
            "--output", str(out)]
    res = runner.main(argv)
    assert list(res["versions"]) == ["dff", "18"]
    for block in res["versions"].values():
        assert [r["target_interval"] for r in block["fixed"]] == [1, 3]
        assert [(r["policy"], r["target_interval"]) for r in block["adaptive"]] == [("flow", 3)]
    assert "2 distinct real pairs" in res["calibration"]["what"]
    saved = json.loads((out / "results.json").read_text())
    assert saved["versions"]["18"]["adaptive"][0]["threshold"] is not None
    assert "| Accel-18 | flow | 1/3 |" in (out / "results.md").read_text()
    assert cv2.imread(str(out / "miou_vs_rate.png")) is not None
    with pytest.raises(ValueError, match="--calibration-split val"):
        runner.main(argv + ["--train-split", "val", "--overwrite"])


def _constant_classes_miou(label_paths_and_classes, num_classes=CLASSES):
    """mIoU (NumPy, from the label files) of predicting one class everywhere per frame."""
    conf = np.zeros((num_classes, num_classes), np.int64)
    for path, cls in label_paths_and_classes:
        label = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).astype(np.int64)
        valid = label < num_classes          # CamVid's 11 = void
        np.add.at(conf, (label[valid], cls), 1)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    return float(np.mean(tp[union > 0] / union[union > 0]))


def _zero_but(params, biases):
    """All parameters zero except the given biases (one-hot class scores) and the heads' fixed
    bilinear upsampling kernels."""
    args, aux = params
    out = {k: v if k.endswith("upsampling_weight") and not k.endswith("feat_upsampling_weight")
           else mx.nd.zeros(v.shape) for k, v in args.items()}
    for name, cls in biases.items():
        b = np.zeros(out[name].shape, np.float32)
        b[cls] = 5.0
        out[name] = mx.nd.array(b)
    return out, aux


def test_demos_give_the_known_miou_of_a_model_with_known_outputs(models, tmp_path):
    """Zero weights and one-hot biases: DeepLab predicts Road (3) everywhere; Accel-18 Road on
    keyframes (the keyframe head's `score_bias`) and Building (1) on non-key frames (the
    fusion's `corr_bias`). The demos' mIoU, overall and per keyframe distance, must equal
    the one computed here from the label files."""
    from accel.utils.checkpoint import load_checkpoint

    labels = sorted((SAMPLE / "valannot").glob("*.png"))
    prefix = str(tmp_path / "road")
    save_checkpoint(prefix, 0, *_zero_but(load_checkpoint(models["deeplab"], 0),
                                          {"score_bias": 3}))
    res = deeplab_demo.main(["--model", prefix, "-e", "3", "--no-video", "--output",
                             str(tmp_path / "dl")] + SMALL)
    road = _constant_classes_miou([(p, 3) for p in labels[:3]])
    assert res["mIoU"] == pytest.approx(road)
    assert json.loads((tmp_path / "dl" / "metrics.json").read_text())["mIoU"] == \
        pytest.approx(road)
    prefix = str(tmp_path / "accel")
    save_checkpoint(prefix, 0, *_zero_but(load_checkpoint(models["18"], 0),
                                          {"score_bias": 3, "corr_bias": 1}))
    res = demo.main(["-v", "18", "-i", "2", "-e", "3", "--model", prefix, "--no-video",
                     "--output", str(tmp_path / "a")] + SMALL)
    # Worst case at interval 2: the first labelled frame is its own keyframe (the clip
    # starts there), the others are one frame after theirs.
    assert res["by_distance"][0]["mIoU"] == pytest.approx(
        _constant_classes_miou([(labels[0], 3)]))
    assert res["by_distance"][1]["mIoU"] == pytest.approx(
        _constant_classes_miou([(p, 1) for p in labels[1:3]]))
    assert res["mIoU"] == pytest.approx(
        _constant_classes_miou([(labels[0], 3)] + [(p, 1) for p in labels[1:3]]))
