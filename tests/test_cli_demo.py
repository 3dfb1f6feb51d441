"""The demos' command line: data sources as configs, output folders, flag checks."""
import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from accel.cli.data import demo_data, open_dataset
from accel.core.tester import evaluate_snippets
from test_tester import _constant


def test_cityscapes_labels_apart_from_frames(tmp_path):
    """--label-root: labels under one root, sequence frames under another."""
    frames, labels = tmp_path / "frames", tmp_path / "labels"
    seq = frames / "leftImg8bit_sequence" / "val" / "lindau"
    gt = labels / "gtFine" / "val" / "lindau"
    seq.mkdir(parents=True)
    gt.mkdir(parents=True)
    for f in (17, 18, 19):
        cv2.imwrite(str(seq / f"lindau_000000_{f:06d}_leftImg8bit.png"),
                    np.full((32, 64, 3), 10 * f, np.uint8))
    cv2.imwrite(str(gt / "lindau_000000_000019_gtFine_labelTrainIds.png"),
                np.full((32, 64), 13, np.uint8))
    args = argparse.Namespace(dataset="cityscapes", data_root=str(frames),
                              label_root=str(labels), split=None, scales=[32, 64], stride=None,
                              cfg=None)
    ds = open_dataset(demo_data(args))
    (snippet,) = ds.test_snippets(3)
    assert [Path(p).parent for p in snippet.frames] == [seq] * 3
    res = evaluate_snippets(ds, [snippet], _constant(lambda d: np.full(d.shape[2:], 13)),
                            interval=3)
    assert res["IoU"]["car"] == 1.0 and res["by_distance"][2]["frames"] == 1
    args.dataset = "camvid"
    with pytest.raises(ValueError, match="only Cityscapes"):
        open_dataset(demo_data(args))


# ---------------------------------------------------------------- the demos' bad input
import logging  # noqa: E402

import mxnet as mx  # noqa: E402

from accel.cli.checks import demo_output  # noqa: E402
from accel.cli.demo import accel_parser  # noqa: E402
from accel.core.inference import VideoSegmenter  # noqa: E402
from accel.core.initializer import initialize_network  # noqa: E402
from accel.utils.checkpoint import CheckpointError  # noqa: E402
from dff_deeplab.fast_symbol import FastAccelNetwork  # noqa: E402
from dff_deeplab.symbol import AccelNetwork  # noqa: E402

SHAPE = (1, 3, 64, 96)
SAMPLE_VAL = Path(__file__).resolve().parents[1] / "sample_data" / "camvid" / "val"


def _params(version):
    return initialize_network(AccelNetwork(version, 11), SHAPE)


@pytest.fixture(scope="module")
def accel18():
    return _params("18")


def test_fast_path_checks_the_checkpoint_before_deriving_from_it(accel18):
    """-v 34 with an Accel-18 checkpoint, or one lacking 18_feat_upsampling_weight: one error
    listing what is missing, not a KeyError from the fast path's folded kernel."""
    args, aux = accel18
    frame = np.zeros(SHAPE, np.float32)
    with pytest.raises(CheckpointError, match="34_feat_upsampling_weight") as err:
        VideoSegmenter(FastAccelNetwork("34", 11), args, aux, 3, source="a18.params").step(frame)
    assert "missing" in str(err.value) and "a18.params" in str(err.value)
    partial = {k: v for k, v in args.items() if k != "18_feat_upsampling_weight"}
    with pytest.raises(CheckpointError, match="missing arg:18_feat_upsampling_weight"):
        VideoSegmenter(FastAccelNetwork("18", 11), partial, aux, 3).step(frame)


def test_unexpected_parameters_are_named(accel18, caplog):
    args, aux = accel18
    frame = np.zeros(SHAPE, np.float32)
    extra = dict(args, stray_conv_weight=mx.nd.zeros((2, 2)))
    with pytest.raises(CheckpointError, match="stray_conv_weight") as err:
        VideoSegmenter(AccelNetwork("18", 11), extra, aux, 3, source="x.params").step(frame)
    assert "--allow-extra-params" in str(err.value)
    # Where extra names are expected (DFF reading an Accel file): a warning naming them.
    with caplog.at_level(logging.WARNING):
        VideoSegmenter(AccelNetwork("dff", 11), args, aux, 3, allow_extra=True).step(frame)
    assert "18_fc6_weight" in caplog.text and "not used by DFF" in caplog.text


def test_a_rerun_replaces_the_demos_own_files_only(tmp_path):
    """A folder of an older demo (its metrics.json, no manifest yet) is the demo's own: a
    re-run replaces its files there and nothing else."""
    out = tmp_path / "out"
    (out / "maps").mkdir(parents=True)
    (out / "maps" / "frame_000099.png").write_bytes(b"old")
    (out / "metrics.json").write_text('{"method": "Accel-18", "interval": 5, "outputs": {}}')
    (out / "notes.txt").write_text("mine")
    with demo_output(str(out)) as output:
        output.start()
        assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
            "INCOMPLETE", "notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file; expected a folder"):
        demo_output(str(tmp_path / "file")).check()


@pytest.mark.parametrize("flags", [["--tile-height", "-5"], ["--tile-height", "0"],
                                   ["--fps", "0"], ["--fps", "-1"]])
def test_bad_numbers_are_refused_by_the_parser(flags, capsys):
    with pytest.raises(SystemExit) as exit_:
        accel_parser("demo").parse_args(flags)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flags[0]}" in err
    assert "expected a finite number > 0" in err or "expected an integer >= 1" in err


def test_a_stride_the_networks_cannot_use_is_refused_before_anything_runs(tmp_path):
    from accel.cli.demo import accel_demo

    with pytest.raises(ValueError, match="--stride 7: Accel needs frames padded to a multiple "
                                         "of 32"):
        accel_demo(["--stride", "7", "--cpu", "--model", str(tmp_path / "none")])


def test_keyframe_policies_on_a_video(accel18, tmp_path):
    """--keyframe-policy on --video: `always` keys every frame; `flow` with threshold 0 keys
    every other frame (a keyframe shows the policy no flow, the next frame's flow exceeds 0);
    `fixed` is the interval; results carry the achieved schedule."""
    from accel.cli.demo import accel_demo
    from accel.utils.checkpoint import save_checkpoint

    prefix = str(tmp_path / "a18")
    save_checkpoint(prefix, 0, *accel18)
    base = ["-v", "18", "-i", "3", "--video", str(SAMPLE_VAL), "-e", "6", "--model", prefix,
            "--no-video", "--scales", "64", "96", "--cpu"]
    runs = {}
    for name, extra in (("fixed", []), ("always", ["--keyframe-policy", "always"]),
                        ("flow", ["--keyframe-policy", "flow", "--threshold", "0"])):
        runs[name] = accel_demo(base + extra + ["--output", str(tmp_path / name)])
    assert runs["fixed"]["schedule"]["keyframes"] == 2          # frames 0 and 3
    assert runs["always"]["schedule"]["key_rate"] == 1.0
    assert runs["flow"]["schedule"]["keyframes"] == 3           # frames 0, 2, 4
    assert runs["flow"]["keyframe_policy"]["policy"] == "flow"
    assert "Keyframes: 3 of 6 frames" in (tmp_path / "flow" / "results.md").read_text()
    with pytest.raises(ValueError, match="needs a threshold"):
        accel_demo(base + ["--keyframe-policy", "disagreement"])


def test_keyframe_rate_alone_calibrates_the_threshold_on_the_training_split(accel18, tmp_path):
    """Budget mode in the demo: --keyframe-rate without --threshold sets the threshold on
    streams of the data set's training split (never the frames segmented) and records it."""
    from accel.cli.demo import accel_demo
    from accel.utils.checkpoint import save_checkpoint

    prefix = str(tmp_path / "a18")
    save_checkpoint(prefix, 0, *accel18)
    base = ["-v", "18", "--video", str(SAMPLE_VAL), "-e", "6", "--model", prefix, "--no-video",
            "--scales", "64", "96", "--cpu", "--keyframe-policy", "flow",
            "--keyframe-rate", "0.5", "--calibration-pairs", "3"]
    res = accel_demo(base + ["--output", str(tmp_path / "budget")])
    policy = res["keyframe_policy"]
    assert policy["policy"] == "flow" and (policy["min_gap"], policy["max_gap"]) == (1, 4)
    cal = policy["calibration"]
    assert cal["threshold"] == policy["threshold"] and 0 <= cal["train_rate"] <= 1
    assert "sample_data/camvid (train)" in cal["calibration"]
    assert res["schedule"]["gap_max"] is None or res["schedule"]["gap_max"] <= 4
    saved = json.loads((tmp_path / "budget" / "metrics.json").read_text())
    assert saved["keyframe_policy"]["threshold"] == policy["threshold"]
    assert res["method"] == "Accel-18"        # not DeepLab-101: the policy picks keyframes
    with pytest.raises(ValueError, match="needs -i/--interval K > 1"):
        accel_demo([a for a in base if a not in ("--video", str(SAMPLE_VAL))]
                   + ["--output", str(tmp_path / "y")])
    labelled = [a for a in base if a not in ("--video", str(SAMPLE_VAL))] + ["-i", "3"]
    with pytest.raises(ValueError, match="--calibration-split val.*segmented"):
        accel_demo(labelled + ["--calibration-split", "val", "--output", str(tmp_path / "x")])


def test_segmenter_policies_fixed_equals_today_and_always_equals_interval_one(accel18):
    from accel.keyframes.policies import AlwaysKey, FixedInterval

    args, aux = accel18
    rng = np.random.default_rng(0)
    frames = [rng.standard_normal(SHAPE).astype(np.float32) for _ in range(5)]

    def run(**kw):
        seg = VideoSegmenter(AccelNetwork("18", 11), args, aux, **kw)
        return [(r.is_key, r.pred) for r in map(seg.step, frames)]

    today, fixed = run(interval=3), run(interval=3, policy=FixedInterval(3))
    assert [k for k, _ in today] == [True, False, False, True, False]
    assert all(a[0] == b[0] and np.array_equal(a[1], b[1]) for a, b in zip(today, fixed))
    every, always = run(interval=1), run(interval=3, policy=AlwaysKey())
    assert all(a[0] and b[0] and np.array_equal(a[1], b[1]) for a, b in zip(every, always))


@pytest.mark.parametrize("version", ["18"])
def test_the_demo_over_onnx_runtime_equals_the_mxnet_demo(accel18, tmp_path, version):
    """--runtime onnxruntime: the segmenter's graphs exported and run in ONNX Runtime, the
    rest of the demo unchanged; same maps as MXNet on the labelled clip (fast CPU graphs,
    since the official kernels here are bilinear)."""
    from accel.cli.demo import accel_demo
    from accel.utils.checkpoint import save_checkpoint

    prefix = str(tmp_path / "a18")
    save_checkpoint(prefix, 0, *accel18)
    base = ["-v", version, "-i", "2", "-e", "3", "--model", prefix, "--no-video",
            "--scales", "64", "96", "--cpu"]
    ref = accel_demo(base + ["--output", str(tmp_path / "mx")])
    ort = accel_demo(base + ["--runtime", "onnxruntime", "--output", str(tmp_path / "ort")])
    assert ort["runtime"] == "onnxruntime" and ref["runtime"] == "mxnet"
    agree = []
    for a in sorted((tmp_path / "mx" / "maps").iterdir()):
        b = tmp_path / "ort" / "maps" / a.name
        agree.append((cv2.imread(str(a)) == cv2.imread(str(b))).all(axis=2).mean())
    assert len(agree) == 3 and min(agree) >= 0.999
    assert ort["mIoU"] == pytest.approx(ref["mIoU"], abs=2e-3)
    with pytest.raises(ValueError, match="--providers is for --runtime onnxruntime"):
        accel_demo(base + ["--providers", "CPUExecutionProvider"])


def test_the_demo_looks_for_a_cfgs_checkpoint_where_training_writes_it(tmp_path, monkeypatch):
    """Relative paths in a yaml are relative to the repository root for the demo too, from
    whatever folder it runs in (as for the training runners)."""
    from accel.cli import REPO_ROOT
    from accel.cli.demo import SAMPLE_CFG, accel_demo

    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as err:
        accel_demo(["--cfg", str(Path(REPO_ROOT) / SAMPLE_CFG), "--cpu", "--epoch", "9999"])
    assert str(Path(REPO_ROOT) / "output") in str(err.value)
    assert not (tmp_path / "output").exists()


def test_a_frame_of_another_size_is_named_with_both_shapes(accel18, tmp_path):
    """#25.17: "frame shape changed" did not say which frame, its shape or the expected one."""
    from accel.core.tester import segment_video

    args, aux = accel18
    seg = VideoSegmenter(FastAccelNetwork("18", 11), args, aux, 5)
    frames = [cv2.imread(str(p)) for p in sorted(SAMPLE_VAL.glob("*.png"))[:3]]
    frames.append(np.full((100, 100, 3), 128, np.uint8))
    with pytest.raises(ValueError) as err:
        segment_video(iter(frames), seg.step, seg.reset, [103.06, 115.9, 123.15], [64, 96], 32,
                      interval=5, threaded=False)
    message = str(err.value)
    assert "frame 3 (100x100 pixels)" in message
    assert "(1, 3, 64, 64)" in message and "(1, 3, 64, 96)" in message
