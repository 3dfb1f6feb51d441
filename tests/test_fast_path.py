"""The fast CPU path computes what the official graphs compute.

Deformable convolutions and flow are checked against the oracle fixtures directly. The
fused low-resolution correction and the separable upsampling are exact only for a shared
separable kernel (the released models' fixed bilinear one), which the oracle's random
kernels are not: there the fast graphs are compared with the official graphs run on the
same weights with bilinear upsampling kernels.
"""
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from accel.core.inference import VideoSegmenter
from accel.runtime.upsample import SeparableUpsampler, separable_upsampling_filter
from accel.runtime.upsample import bilinear_kernel
from dff_deeplab.fast_symbol import FastAccelNetwork
from dff_deeplab.symbol import AccelNetwork
from oracle import oracle_network_params

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "oracle_128x256"


def _bilinear(args):
    args = dict(args)
    for name, value in args.items():
        if name.endswith("upsampling_weight") and not name.endswith("feat_upsampling_weight"):
            args[name] = mx.nd.array(bilinear_kernel(value.shape[0], value.shape[-1]))
    return args


def _forward(sym, inputs, args, aux):
    bound = {k: mx.nd.array(v) for k, v in inputs.items()}
    bound.update({k: args[k] for k in sym.list_arguments() if k not in inputs})
    exe = sym.bind(mx.cpu(), bound, aux_states={k: aux[k] for k in sym.list_auxiliary_states()},
                   grad_req="null")
    return dict(zip(sym.list_outputs(), (o.asnumpy() for o in exe.forward(is_train=False))))


def _pick(sym, names):
    internals = sym.get_internals()
    return mx.sym.Group([internals[n] for n in names])


def _project(net, feat, args):
    """The fast path's state for features `feat`: fc6 without its bias (or `feat` itself)."""
    if net.state_output != "fc6_state_output":
        return feat
    return np.einsum("oc,nchw->nohw", args["fc6_weight"].asnumpy()[:, :, 0, 0], feat)


@pytest.mark.parametrize("version", ["dff", "18", "34", "50", "101"])
def test_fast_non_key_graph_matches_official_graph(version):
    z = np.load(FIXTURES / ("accel_%s_cur_test.npz" % ("18" if version == "dff" else version)))
    inputs = {k: z["input__" + k] for k in ("data", "data_key", "feat_key")}
    net = AccelNetwork(version)
    args, aux = oracle_network_params(net, inputs["data"].shape)
    args = _bilinear(args)
    fused = net.score_output(key=False)
    want = _forward(_pick(net.cur_test(), ["warping_feat_output", fused]), inputs, args, aux)
    fast = FastAccelNetwork(version)
    args.update({k: mx.nd.array(v) for k, v in fast.derived_params(args).items()})  # NumPy
    fast_inputs = dict(inputs, feat_key=_project(fast, inputs["feat_key"], args))
    low = fast.score_output(key=False)
    got = _forward(_pick(fast.cur_test(), ["Convolution5_output", "warping_feat_output", low]),
                   fast_inputs, args, aux)
    # Flow straight from the fixture (oracle weights); the propagated state is the official
    # warped res5c_relu, projected by fc6 where the fast path propagates fc6_state.
    idx = z["index__Convolution5_output"]
    assert np.abs(got["Convolution5_output"].reshape(-1)[idx]
                  - z["sample__Convolution5_output"]).max() < 1e-5
    state = _project(fast, want["warping_feat_output"], args)
    assert np.abs(got["warping_feat_output"] - state).max() <= 1e-4 * np.abs(state).mean() + 1e-6
    # Scores: official graph vs fast graph upsampled on the host, bilinear kernels.
    up = SeparableUpsampler(separable_upsampling_filter(args), (128, 256), (8, 16))
    scores = up.scores(got[low][0], fast.score_bias(args, key=False))
    want = want[fused][0]
    assert np.abs(scores - want).max() <= 1e-4 * np.abs(want).mean() + 1e-6
    labels = up.labels(got[low][0], fast.score_bias(args, key=False))
    assert (labels == want.argmax(0)).mean() >= 0.999


def test_fast_keyframe_graph_matches_fixture_and_official_scores():
    z = np.load(FIXTURES / "accel_key_test.npz")
    net = AccelNetwork("18")
    args, aux = _bilinear_pair(net)
    fast = FastAccelNetwork("18")
    inputs = {"data": z["input__data"]}
    want = _forward(_pick(net.key_test(), ["res5c_relu_output", "croped_score_output"]),
                    inputs, args, aux)
    got = _forward(_pick(fast.key_test(), ["fc6_state_output", "score_output"]), inputs,
                   args, aux)
    state = _project(fast, want["res5c_relu_output"], args)
    assert np.abs(got["fc6_state_output"] - state).max() <= 1e-4 * np.abs(state).mean() + 1e-6
    up = SeparableUpsampler(separable_upsampling_filter(args), (128, 256), (8, 16))
    want = want["croped_score_output"][0]
    assert np.abs(up.scores(got["score_output"][0]) - want).max() <= (
        1e-4 * np.abs(want).mean() + 1e-6)
    assert (up.labels(got["score_output"][0]) == want.argmax(0)).mean() >= 0.999


def _bilinear_pair(net):
    args, aux = oracle_network_params(net, (1, 3, 128, 256))
    return _bilinear(args), aux


def test_fast_keyframe_features_match_fixture():
    z = np.load(FIXTURES / "accel_key_test.npz")
    net = FastAccelNetwork("18")
    args, aux = oracle_network_params(AccelNetwork("18"), (1, 3, 128, 256))
    got = _forward(_pick(net.key_test(), ["res5c_relu_output"]), {"data": z["input__data"]},
                   args, aux)["res5c_relu_output"]
    idx = z["index__res5c_relu_output"]
    err = np.abs(got.reshape(-1)[idx] - z["sample__res5c_relu_output"]).max()
    assert err <= 1e-4 * np.abs(z["sample__res5c_relu_output"]).mean() + 1e-6


@pytest.mark.parametrize("version", ["18", "dff", "101"])
def test_fast_segmenter_agrees_with_reference_segmenter_and_falls_back(version):
    z = np.load(FIXTURES / "accel_18_train.npz")
    frames = list(z["input__data_ref"][:, None]) + [z["input__data"]]
    net = AccelNetwork(version)
    args, aux = oracle_network_params(net, (1, 3, 128, 256))
    bil = _bilinear(args)
    ref = VideoSegmenter(net, bil, aux, interval=3)
    fast = VideoSegmenter(FastAccelNetwork(version), bil, aux, interval=3)
    assert fast.fast
    for frame in frames:
        a, b = ref.step(frame), fast.step(frame)
        assert a.is_key == b.is_key
        assert (a.pred == b.pred).mean() >= 0.999
    # Random (non-separable) kernels: the fast path declines and says so.
    assert not VideoSegmenter(FastAccelNetwork(version), args, aux, interval=3).fast


@pytest.mark.parametrize("out_hw, in_hw", [((128, 256), (8, 16)), ((72, 104), (5, 7))])
def test_separable_upsampler_equals_deconvolution_and_crop(out_hw, in_hw):
    """Host upsampling = the official grouped Deconvolution(32, stride 16) + Crop(8, 8)."""
    rng = np.random.default_rng(3)
    low = rng.standard_normal((19,) + in_hw).astype(np.float32)
    bias = rng.standard_normal(19).astype(np.float32)
    kernel = bilinear_kernel(19)
    score, data = mx.sym.Variable("score"), mx.sym.Variable("data")
    up = mx.sym.Crop(mx.sym.Deconvolution(score, mx.sym.Variable("w"), kernel=(32, 32),
                                          stride=(16, 16), num_filter=19, num_group=19,
                                          no_bias=True), data, offset=(8, 8))
    want = _forward(up, {"score": low[None], "data": np.zeros((1, 3) + out_hw, np.float32),
                         "w": kernel}, {}, {})[up.list_outputs()[0]][0] + bias[:, None, None]
    sampler = SeparableUpsampler(separable_upsampling_filter({"upsampling_weight":
                                                              mx.nd.array(kernel)}),
                                 out_hw, in_hw)
    got = sampler.scores(low, bias)
    assert np.abs(got - want).max() < 1e-5 * np.abs(want).max()
    assert np.array_equal(sampler.labels(low, bias), got.argmax(0))
    # Ties go to the first class, as with NumPy's argmax.
    assert not sampler.labels(np.zeros_like(low)).any()
