"""The PyTorch runtime: the stored graphs run by PyTorch give MXNet's results through the
same segmenter, refuse what they cannot run exactly, and need no MXNet at all."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install -c "
                                            "constraints.txt torch, or sh init.sh)")

from accel.core.inference import FrameSegmenter, VideoSegmenter  # noqa: E402
from accel.keyframes.policies import make_policy  # noqa: E402
from accel.networks import DeepLabGraphs, accel_network  # noqa: E402
from accel.runtime import make_runtime  # noqa: E402
from accel.graphs import load_graph  # noqa: E402
from accel.runtime.torch_graph import TorchGraph, infer_shapes  # noqa: E402
from accel.runtime.torch_opset import GraphError  # noqa: E402
from accel.utils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint  # noqa
from accel.utils.image import image_to_tensor, read_image, resize_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_VAL = ROOT / "sample_data" / "camvid" / "val"
SHAPE = (1, 3, 64, 96)
CLASSES = 11
MEANS = (103.06, 115.90, 123.15)


def _frames(count):
    paths = sorted(SAMPLE_VAL.glob("*.png"))[:count]
    return [image_to_tensor(resize_image(read_image(str(p)), SHAPE[2:]), MEANS) for p in paths]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An Accel-18 checkpoint (He-normal weights, bilinear upsampling) of the demo's size,
    written by MXNet, read back as NumPy."""
    from accel.core.initializer import initialize_network
    from dff_deeplab.symbol import AccelNetwork

    prefix = str(tmp_path_factory.mktemp("model") / "accel-18")
    save_checkpoint(prefix, 0, *initialize_network(AccelNetwork("18", CLASSES), SHAPE))
    return prefix


def _run(network, params, runtime, frames, **kw):
    seg = VideoSegmenter(network, *params, runtime=runtime, **kw)
    return [seg.step(f) for f in frames]


@pytest.mark.parametrize("fast", [False, True], ids=["official", "fast"])
def test_segmenter_gives_mxnet_results_on_torch(checkpoint, fast):
    """Same label maps (keyframes and propagated frames) and the same policy signals."""
    params = load_checkpoint(checkpoint, 0, numpy=True)
    frames = _frames(6)
    results = {}
    for name in ("mxnet", "torch"):
        policy = make_policy("flow", threshold=1e9, min_gap=1, max_gap=3)
        results[name] = _run(accel_network("18", CLASSES, fast), params, make_runtime(name),
                             frames, interval=3, policy=policy)
    for mx_res, torch_res in zip(results["mxnet"], results["torch"]):
        assert mx_res.is_key == torch_res.is_key
        assert (mx_res.pred == torch_res.pred).mean() >= 0.999
        if not mx_res.is_key:
            for field in ("flow", "warped_scores", "update_scores"):
                a, b = getattr(mx_res.observation, field), getattr(torch_res.observation, field)
                np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-3 * np.abs(a).max())
    assert [r.is_key for r in results["torch"]] == [True, False, False, True, False, False]


def test_frame_by_frame_deeplab_on_torch(tmp_path):
    from accel.core.initializer import initialize_missing
    from deeplab.symbol import deeplab_resnet_v1_101

    sym = deeplab_resnet_v1_101(CLASSES)
    args, aux = initialize_missing(sym, {"data": SHAPE, "softmax_label": (1,) + SHAPE[2:]},
                                   {}, {})
    args.pop("softmax_label", None)
    frame = _frames(1)[0]
    preds = [FrameSegmenter(CLASSES, args, aux, runtime=make_runtime(name)).step(frame).pred
             for name in ("mxnet", "torch")]
    assert (preds[0] == preds[1]).mean() >= 0.999


def test_bf16_on_the_cpu_agrees_with_fp32(checkpoint):
    """bf16 through autocast (emulated on CPUs without native BF16: slow, still right)."""
    params = load_checkpoint(checkpoint, 0, numpy=True)
    frames = _frames(2)
    net = accel_network("18", CLASSES, True)
    fp32 = _run(net, params, make_runtime("torch"), frames, interval=2)
    bf16 = _run(net, params, make_runtime("torch", precision="bf16"), frames, interval=2)
    for a, b in zip(fp32, bf16):
        assert (a.pred == b.pred).mean() >= 0.9


@pytest.mark.parametrize("precision", ["tf32", "fp16"])
def test_cuda_only_precisions_are_refused_on_the_cpu(precision):
    with pytest.raises(ValueError, match=f"--precision {precision} needs a CUDA GPU"):
        make_runtime("torch", precision=precision)


def test_precision_is_for_the_torch_runtime_only():
    with pytest.raises(ValueError, match="--precision bf16 is for --runtime torch"):
        make_runtime("mxnet", precision="bf16")


def test_a_gpu_pytorch_cannot_see_is_refused():
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ValueError, match=rf"--gpu {count}: PyTorch sees {count} CUDA device"):
        make_runtime("torch", gpu=count)


def _graph(nodes):
    return {"nodes": nodes, "arg_nodes": [0], "heads": [[len(nodes) - 1, 0, 0]]}


def test_unknown_operators_and_attributes_fail_at_load_naming_them():
    data = {"op": "null", "name": "data", "inputs": []}
    unknown_op = _graph([data, {"op": "Flatten", "name": "flat", "inputs": [[0, 0, 0]]}])
    with pytest.raises(GraphError, match=r"node 'flat': operator Flatten is not supported"):
        TorchGraph(unknown_op, ["flat_output"], _params())
    odd_attr = _graph([data, {"op": "Activation", "name": "act", "inputs": [[0, 0, 0]],
                              "attrs": {"act_type": "relu", "alpha": "2"}}])
    with pytest.raises(GraphError, match=r"node 'act' \(operator Activation\): attribute "
                                         r"alpha='2' is not supported"):
        TorchGraph(odd_attr, ["act_output"], _params())
    odd_value = _graph([data, {"op": "Pooling", "name": "pool", "inputs": [[0, 0, 0]],
                               "attrs": {"kernel": "(2, 2)", "pool_type": "lp"}}])
    with pytest.raises(GraphError, match=r"node 'pool' \(operator Pooling\): attribute "
                                         r"pool_type='lp' is not supported"):
        TorchGraph(odd_value, ["pool_output"], _params())


def _params():
    from accel.runtime import SharedParams
    return SharedParams({}, {})


@pytest.mark.parametrize("convention,size", [("valid", 7), ("full", 8)])
def test_pooling_conventions_give_mxnets_sizes(convention, size):
    """3x3/2 max pooling of 16x16: 'valid' floors to 7, 'full' (the keyframe trunk's pool1)
    ceils to 8; the extra window sees only the input's last row/column."""
    node = {"op": "Pooling", "name": "pool", "inputs": [[0, 0, 0]],
            "attrs": {"kernel": "(3, 3)", "stride": "(2, 2)", "pool_type": "max",
                      "pooling_convention": convention}}
    graph = _graph([{"op": "null", "name": "data", "inputs": []}, node])
    x = torch.arange(256, dtype=torch.float32).view(1, 1, 16, 16)
    out = TorchGraph(graph, ["pool_output"], _params())(data=x)["pool_output"]
    assert out.shape == (1, 1, size, size)
    assert out[0, 0, -1, -1] == (255 if convention == "full" else 238)


def test_shape_errors_name_the_frame_size():
    """A frame size whose flow grid is not the feature grid: the stride hint, before any
    weight is read."""
    params = ({}, {})
    seg = VideoSegmenter(accel_network("18", CLASSES), *params, runtime=make_runtime("torch"))
    with pytest.raises(ValueError, match=r"frames of shape \(1, 3, 64, 72\) do not give the "
                                         r"same grid .* multiple of 32"):
        seg.step(np.zeros((1, 3, 64, 72), np.float32))


def test_missing_parameters_are_listed_before_anything_runs(checkpoint):
    args, aux = load_checkpoint(checkpoint, 0, numpy=True)
    args = {k: v for k, v in args.items() if k != "18_score_weight"}
    seg = VideoSegmenter(accel_network("18", CLASSES), args, aux, runtime=make_runtime("torch"),
                         source="a18.params")
    with pytest.raises(CheckpointError, match=r"(?s)in a18.params.*missing "
                                              r"arg:18_score_weight \(11, 1024, 1, 1\)"):
        seg.step(_frames(1)[0])


def test_shape_inference_of_the_fast_graphs_needs_no_checkpoint():
    args, _, outs = infer_shapes(load_graph("accel_18.fast_cur_test", CLASSES),
                                 {"data": SHAPE, "data_key": SHAPE, "feat_key": (1, 1024, 4, 6)},
                                 ["correction_lowres_output", "warping_feat_output"])
    assert outs == {"correction_lowres_output": (1, CLASSES, 4, 6),
                    "warping_feat_output": (1, 1024, 4, 6)}
    assert args["_folded_18_fc6_18_feat_upsampling_weight"] == (512, 1024, 4, 4)
    assert args["fc6_bias"] == (1024,)


BLOCK_MXNET = "import sys; sys.modules['mxnet'] = None\n"


def test_demo_runs_without_mxnet_and_matches_the_mxnet_demo(checkpoint, tmp_path):
    """The acceptance check of the PyTorch runtime: with `import mxnet` impossible, the demo
    on the bundled clip gives MXNet's label maps (>= 99.9% of pixels) and mIoU (within 0.05
    points)."""
    from accel.cli.demo import accel_demo

    base = ["-v", "18", "-i", "3", "-e", "4", "--model", checkpoint, "--no-video",
            "--scales", "64", "96", "--cpu"]
    ref = accel_demo(base + ["--output", str(tmp_path / "mx")])
    script = (BLOCK_MXNET + "import runpy\nsys.argv = ['demo.py'] + sys.argv[1:]\n"
              "runpy.run_path('dff_deeplab/demo.py', run_name='__main__')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "lib"), str(ROOT)]))
    proc = subprocess.run([sys.executable, "-c", script] + base
                          + ["--runtime", "torch", "--output", str(tmp_path / "torch")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads((tmp_path / "torch" / "metrics.json").read_text())
    assert got["runtime"] == "torch" and got["device"] == "cpu"
    assert abs(100 * got["mIoU"] - 100 * ref["mIoU"]) <= 0.05
    maps = sorted((tmp_path / "mx" / "maps").iterdir())
    assert len(maps) == 4
    for a in maps:
        b = tmp_path / "torch" / "maps" / a.name
        assert (cv2.imread(str(a)) == cv2.imread(str(b))).all(axis=2).mean() >= 0.999


@pytest.mark.parametrize("runner", ["dff_deeplab/test.py", "deeplab/test.py"])
def test_test_entry_points_run_without_mxnet_or_the_training_code(runner, checkpoint,
                                                                   deeplab18, tmp_path):
    """Issue #26.4: deeplab/test.py and dff_deeplab/test.py with --runtime torch import
    neither MXNet nor accel.core.trainer; the results land beside the run's checkpoint."""
    from accel.config import checkpoint_prefix, load_config, merge_overrides, run_results_path

    accel = runner.startswith("dff")
    cfg_path = ROOT / "experiments" / ("dff_deeplab/cfgs/accel_18_camvid_sample.yaml" if accel
                                       else "deeplab/cfgs/deeplab_camvid_sample.yaml")
    overrides = [f"output_path={tmp_path}", "SCALES=[[64, 96]]", "TEST.test_epoch=2"]
    if not accel:
        overrides.append("symbol=deeplab_resnet_18")
    cfg = merge_overrides(load_config(str(cfg_path)), overrides)
    prefix = checkpoint_prefix(cfg, str(cfg_path))
    os.makedirs(os.path.dirname(prefix))
    os.symlink((checkpoint if accel else deeplab18["good"]) + "-0000.params",
               prefix + "-0002.params")
    script = (BLOCK_MXNET + "sys.modules['accel.core.trainer'] = None\nimport runpy\n"
              "sys.argv = sys.argv[1:]\nrunpy.run_path(sys.argv[0], run_name='__main__')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "lib"), str(ROOT)]))
    proc = subprocess.run([sys.executable, "-c", script, runner, "--cfg", str(cfg_path),
                           "--runtime", "torch", "--cpu"] + overrides, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(Path(run_results_path(cfg, str(cfg_path), 2,
                                               3 if accel else None)).read_text())
    assert results["runtime"] == "torch" and results["frames"] == 12
    assert results["checkpoint"] == prefix + "-0002.params"


def test_torch_runtime_without_pytorch_says_how_to_install_it(tmp_path):
    script = ("import sys; sys.modules['torch'] = None\n"
              "from accel.runtime import make_runtime\nmake_runtime('torch')\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0
    assert "needs PyTorch, which is not installed: pip install -c constraints.txt torch" \
        in proc.stderr


def test_class_maps_are_the_argmax_ties_to_the_first_class():
    from accel.runtime.torch_runtime import class_map

    scores = torch.randn(19, 37, 53)
    scores[5, :4, :6] = scores[2, :4, :6] = scores[:, :4, :6].max(0).values + 1  # ties: 2 wins
    labels = class_map(scores)
    assert labels.dtype == np.uint8 and labels.shape == (37, 53)
    np.testing.assert_array_equal(labels, scores.argmax(0).numpy())
    assert (labels[:4, :6] == 2).all()
