"""ONNX export: every exported graph gives the official outputs in ONNX Runtime (the oracle
fixtures, same tolerance and argmax agreement as test_reference), the exported graphs
streamed hop by hop equal the MXNet segmenter on the sample clip, and what cannot be
exported fails naming the layer and op."""
import functools
import json
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx is not installed (requirements.txt)")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (requirements.txt)")

from accel.core.inference import VideoSegmenter  # noqa: E402
from accel.export.networks import DEEPLAB_FILE, export_deeplab, export_network  # noqa: E402
from accel.export.onnx import UnsupportedOpError, export_graph  # noqa: E402
from accel.export.onnxruntime import OrtGraph  # noqa: E402
from accel.utils.image import image_to_tensor, read_image, resize_image  # noqa: E402
from dff_deeplab.symbol import AccelNetwork  # noqa: E402
from oracle import oracle_value  # noqa: E402

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "oracle_128x256"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
SHAPE = (1, 3, 128, 256)
CLIP = HERE.parent / "sample_data" / "camvid" / "val"
PIXEL_MEANS_BGR = (103.06, 115.90, 123.15)


@functools.lru_cache(maxsize=None)
def _weight(name, shape):
    return oracle_value(name, shape)


def _params(sym, input_shapes):
    """Oracle weights of every parameter of `sym` (NumPy), the rule the fixtures use."""
    arg_shapes, _, aux_shapes = sym.infer_shape_partial(**input_shapes)
    args = {n: _weight(n, tuple(s)) for n, s in zip(sym.list_arguments(), arg_shapes)
            if n not in input_shapes and not n.endswith("_label")}
    aux = {n: _weight(n, tuple(s)) for n, s in zip(sym.list_auxiliary_states(), aux_shapes)}
    return args, aux


def _network_params(network, graphs):
    shapes = {"data": SHAPE, "data_key": SHAPE, "feat_key": (1, 2048, 8, 16)}
    args, aux = {}, {}
    for graph in graphs:
        sym = network.key_test() if graph == "key" else network.cur_test()
        a, x = _params(sym, {k: v for k, v in shapes.items() if k in sym.list_arguments()})
        args.update(a)
        aux.update(x)
    return args, aux


def _check(fixture, outputs, names=None):
    """Each stored output (or `names` of them) within the fixture's tolerance; argmax maps
    agree on >= 99.9% of pixels. Returns {output: (max abs error, argmax agreement)}."""
    entry = MANIFEST["fixtures"][fixture]
    data = np.load(FIXTURES / (fixture + ".npz"))
    seen = {}
    for out in names or entry["outputs"]:
        spec = entry["outputs"][out]
        got = outputs[out]
        assert list(got.shape) == spec["shape"], out
        err = np.abs(got.reshape(-1)[data["index__" + out]] - data["sample__" + out]).max()
        tol = 1e-4 * spec["abs_mean"] + 1e-6
        assert err <= tol, "%s/%s: max error %.3g > tolerance %.3g" % (fixture, out, err, tol)
        agree = None
        if spec.get("argmax"):
            agree = (got.argmax(axis=1).astype(np.uint8) == data["argmax__" + out]).mean()
            assert agree >= 0.999, "%s/%s: argmax agrees on %.4f" % (fixture, out, agree)
        seen[out] = (float(err), agree)
    return seen


def _inputs(fixture, graph):
    data = np.load(FIXTURES / (fixture + ".npz"))
    return {k: data["input__" + k] for k in graph.input_shapes}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Accel-18's key and non-key graphs, exported with dynamic spatial size."""
    folder = tmp_path_factory.mktemp("onnx")
    net = AccelNetwork("18")
    args, aux = _network_params(net, ("key", "cur"))
    extra = list(MANIFEST["fixtures"]["accel_18_cur_test"]["outputs"])
    paths = export_network(net, args, aux, SHAPE, folder, extra_outputs=extra, dynamic=True)
    return {graph: OrtGraph(path) for graph, path in paths.items()}


def test_key_graph_reproduces_the_fixture(exported):
    key = exported["key"]
    assert set(key.input_shapes) == {"data"}
    assert key.outputs == ["res5c_relu_output", "croped_score_output"]
    _check("accel_key_test", key.forward(**_inputs("accel_key_test", key)))


def test_non_key_graph_reproduces_the_fixture(exported):
    cur = exported["cur"]
    assert set(cur.input_shapes) == {"data", "data_key", "feat_key"}
    assert cur.outputs[:2] == ["warping_feat_output", "correction_output"]
    _check("accel_18_cur_test", cur.forward(**_inputs("accel_18_cur_test", cur)))


def test_weights_are_initializers_not_inputs(exported):
    model = onnx.load(str(exported["cur"].path), load_external_data=False)
    names = {t.name for t in model.graph.initializer}
    assert {"corr_weight", "corr_bias", "flow_conv1_weight", "18_conv0_weight"} <= names
    # `18_bn_data` has fix_gamma: MXNet uses gamma = 1, and so does the export.
    assert "18_bn_data_gamma" not in names
    assert {i.name for i in model.graph.input} == {"data", "data_key", "feat_key"}
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[2].dim_param and dims[3].dim_param        # dynamic height and width


@pytest.mark.parametrize("version", ["34", "50", "101"])
def test_other_versions_reproduce_their_fixtures(version, tmp_path):
    net = AccelNetwork(version)
    fixture = "accel_%s_cur_test" % version
    args, aux = _network_params(net, ("cur",))
    path = export_network(net, args, aux, SHAPE, tmp_path, graphs=("cur",),
                          extra_outputs=list(MANIFEST["fixtures"][fixture]["outputs"]))["cur"]
    cur = OrtGraph(path)
    _check(fixture, cur.forward(**_inputs(fixture, cur)))


def test_dff_reproduces_the_warped_branch_of_the_fixture(tmp_path):
    """DFF's non-key graph is Accel's warped branch alone: its `croped_score` and
    `warping_feat` are the accel_18 fixture's."""
    net = AccelNetwork("dff")
    args, aux = _network_params(net, ("cur",))
    cur = OrtGraph(export_network(net, args, aux, SHAPE, tmp_path, graphs=("cur",),
                                  extra_outputs=["Convolution5_output"])["cur"])
    assert cur.outputs[:2] == ["warping_feat_output", "croped_score_output"]
    _check("accel_18_cur_test", cur.forward(**_inputs("accel_18_cur_test", cur)),
           ["Convolution5_output", "warping_feat_output", "croped_score_output"])


def test_deeplab_reproduces_the_fixture(tmp_path):
    from deeplab.symbol import deeplab_resnet_v1_101

    args, aux = _params(deeplab_resnet_v1_101(19), {"data": SHAPE})
    graph = OrtGraph(export_deeplab(args, aux, SHAPE, tmp_path))
    assert graph.path.name == DEEPLAB_FILE and set(graph.input_shapes) == {"data"}
    _check("deeplab_resnet_v1_101_test",
           graph.forward(**_inputs("deeplab_resnet_v1_101_test", graph)))


def _clip(count, size):
    paths = sorted(CLIP.glob("*.png"))[:count]
    return [image_to_tensor(resize_image(read_image(str(p)), size), PIXEL_MEANS_BGR)
            for p in paths]


def test_streamed_onnx_graphs_equal_the_mxnet_segmenter(exported):
    """The sample clip at another size than the export (dynamic H, W), interval 3: the
    keyframe's `res5c_relu` then each frame's `warping_feat` handed on hop by hop."""
    frames = _clip(6, (96, 192))
    net = AccelNetwork("18")
    args, aux = _network_params(net, ("key", "cur"))
    mxnet_seg = VideoSegmenter(net, {k: mx.nd.array(v) for k, v in args.items()},
                               {k: mx.nd.array(v) for k, v in aux.items()}, interval=3)
    key, cur = exported["key"], exported["cur"]
    for index, frame in enumerate(frames):
        expected = mxnet_seg.step(frame)
        if index % 3 == 0:
            out = key.forward(data=frame)
            state, scores = out["res5c_relu_output"], out["croped_score_output"]
        else:
            out = cur.forward(data=frame)
            state, scores = out["warping_feat_output"], out["correction_output"]
        cur.set_input("data_key", frame)
        cur.set_input("feat_key", state)
        assert expected.is_key == (index % 3 == 0)
        agree = (scores.argmax(axis=1)[0].astype(np.uint8) == expected.pred).mean()
        assert agree >= 0.999, "frame %d: argmax agrees on %.4f" % (index, agree)


@pytest.mark.parametrize("mode", ["sampling", "deformconv"])
@pytest.mark.parametrize("groups,stride", [(1, 1), (4, 2)])
def test_deformable_convolution_equals_mxnet(mode, groups, stride, tmp_path):
    """Both exports of the deformable convolution, with offsets large enough to sample
    outside the map and on its last row/column (MXNet's DCN v1 rule)."""
    rng = np.random.default_rng(groups)
    x = rng.standard_normal((1, 8, 9, 13)).astype(np.float32)
    out_hw = ((9 - 1) // stride + 1, (13 - 1) // stride + 1)
    offset = (3 * rng.standard_normal((1, 18 * groups) + out_hw)).astype(np.float32)
    weight = rng.standard_normal((4, 8, 3, 3)).astype(np.float32)
    sym = mx.contrib.sym.DeformableConvolution(
        data=mx.sym.Variable("data"), offset=mx.sym.Variable("offset"), name="dc",
        num_filter=4, kernel=(3, 3), stride=(stride, stride), pad=(2, 2), dilate=(2, 2),
        num_deformable_group=groups, no_bias=True)
    expected = sym.bind(mx.cpu(), {"data": mx.nd.array(x), "offset": mx.nd.array(offset),
                                   "dc_weight": mx.nd.array(weight)}).forward()[0].asnumpy()
    path = tmp_path / "dc.onnx"
    export_graph(sym, {"dc_weight": weight}, {}, {"data": x.shape, "offset": offset.shape},
                 path, deformable=mode)
    got = OrtGraph(path).forward(data=x, offset=offset)["dc_output"]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert ("DeformConv" in ops) == (mode == "deformconv")


def test_fused_warp_and_fast_deformable_ops_export(tmp_path):
    """The fast path's custom ops (accel.operators) export to the same ONNX ops."""
    from accel.operators import flow_warp
    from accel.operators.deformable import deformable_conv_fast

    rng = np.random.default_rng(3)
    feat = rng.standard_normal((1, 8, 6, 10)).astype(np.float32)
    flow = (2 * rng.standard_normal((1, 2, 6, 10))).astype(np.float32)
    weight = rng.standard_normal((5, 8, 3, 3)).astype(np.float32)
    offset_w = (0.3 * rng.standard_normal((36, 8, 3, 3))).astype(np.float32)
    data = mx.sym.Variable("data")
    offset = mx.sym.Convolution(data, name="dc_offset", num_filter=36, kernel=(3, 3),
                                pad=(2, 2), dilate=(2, 2), no_bias=True)
    sym = mx.sym.Group([
        flow_warp(data, mx.sym.Variable("flow"), name="warped"),
        deformable_conv_fast(data, offset, mx.sym.Variable("dc_weight"), "dc", 5, 1, 2, 2)])
    params = {"dc_weight": weight, "dc_offset_weight": offset_w}
    exe = sym.bind(mx.cpu(), {"data": mx.nd.array(feat), "flow": mx.nd.array(flow),
                              **{k: mx.nd.array(v) for k, v in params.items()}})
    expected = [o.asnumpy() for o in exe.forward()]
    export_graph(sym, params, {}, {"data": feat.shape, "flow": flow.shape},
                 tmp_path / "fast.onnx")
    got = OrtGraph(tmp_path / "fast.onnx").forward(data=feat, flow=flow)
    np.testing.assert_allclose(got["warped_output"], expected[0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(got["dc_output"], expected[1], rtol=0, atol=1e-4)


def test_an_op_without_converter_fails_naming_it(tmp_path):
    a, b = mx.sym.Variable("a"), mx.sym.Variable("b")
    sym = mx.sym.Correlation(a, b, name="corr", kernel_size=1, max_displacement=2,
                             pad_size=2)
    with pytest.raises(UnsupportedOpError, match=r"layer 'corr' \(op Correlation\)"):
        export_graph(sym, {}, {}, {"a": (1, 4, 8, 8), "b": (1, 4, 8, 8)}, tmp_path / "c.onnx")
    assert not (tmp_path / "c.onnx").exists()


def test_wrong_input_shape_is_an_error_naming_it(tmp_path):
    data = mx.sym.Variable("data")
    sym = mx.sym.Convolution(data, name="conv", num_filter=2, kernel=(1, 1), no_bias=True)
    export_graph(sym, {"conv_weight": np.ones((2, 3, 1, 1), np.float32)}, {},
                 {"data": (1, 3, 4, 4)}, tmp_path / "conv.onnx")
    graph = OrtGraph(tmp_path / "conv.onnx")
    with pytest.raises(ValueError, match="'data' has shape"):
        graph.forward(data=np.zeros((1, 3, 5, 4), np.float32))
    with pytest.raises(KeyError, match="no input 'frame'"):
        graph.set_input("frame", np.zeros((1, 3, 4, 4), np.float32))


def test_outputs_keep_the_symbol_order(tmp_path):
    """An output that another output's layers read (the fast keyframe graph's `fc6_state`
    feeding `score`) is kept, in the symbol's order."""
    data = mx.sym.Variable("data")
    state = mx.sym.Convolution(data, name="state", num_filter=2, kernel=(1, 1), no_bias=True)
    score = mx.sym.Convolution(mx.sym.Activation(state, act_type="relu"), name="score",
                               num_filter=3, kernel=(1, 1), no_bias=True)
    sym = mx.sym.Group([state, score])
    params = {"state_weight": np.ones((2, 3, 1, 1), np.float32),
              "score_weight": np.ones((3, 2, 1, 1), np.float32)}
    model = export_graph(sym, params, {}, {"data": (1, 3, 4, 4)}, tmp_path / "two.onnx")
    assert [o.name for o in model.graph.output] == ["state", "score"]
    assert OrtGraph(tmp_path / "two.onnx").outputs == ["state_output", "score_output"]


def test_export_runner_checks_its_files_and_times_them_on_the_segmenter(tmp_path, caplog):
    """experiments/export_onnx.py --check --benchmark: both files written and checked
    against MXNet through accel.runtime, then timed by the segmenter on the ONNX Runtime
    runtime beside MXNet's reference and fast paths (the benchmark's table)."""
    import importlib.util
    import logging

    spec = importlib.util.spec_from_file_location(
        "export_onnx", HERE.parent / "experiments" / "export_onnx.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    with caplog.at_level(logging.INFO):
        result = runner.main(["--version", "18", "--random-weights", "--size", "64", "128",
                              "--check", "--benchmark", "3", "--interval", "2",
                              "--output", str(tmp_path)])
    assert sorted(Path(p).name for p in result["files"].values()) == [
        "accel_18.cur_test.onnx", "accel_18.key_test.onnx"]
    diffs = [r.getMessage() for r in caplog.records if "max abs diff" in r.getMessage()]
    assert len(diffs) == 4 and all("argmax agreement 1.00000" in d for d in diffs
                                   if "croped_score" in d or "correction" in d)
    table = result["benchmark"]
    for path in ("reference", "fast", "onnxruntime reference"):
        assert f"| Accel-18 | {path} |" in table
    assert "argmax agreement, ONNX Runtime vs MXNet reference: mean 1.00000" in table
