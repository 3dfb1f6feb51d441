"""The optional INT8 keyframe trunk and the demo's speed flags."""
import argparse
from pathlib import Path

import numpy as np
import pytest

from accel.core.inference import VideoSegmenter
from accel.runtime.quantize import int8_available
from accel.cli.data import calibration_frames
from accel.cli.runtime import add_speed_arguments, speed_options
from accel.runtime import make_runtime
from dff_deeplab.fast_symbol import FastAccelNetwork
from dff_deeplab.symbol import AccelNetwork
from oracle import oracle_network_params
from test_fast_path import _bilinear

import mxnet as mx

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "oracle_128x256"
SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "camvid"


def _frames():
    z = np.load(FIXTURES / "accel_18_train.npz")
    return list(z["input__data_ref"][:, None]) + [z["input__data"]]


def _quantized(graph):
    return any("quantize" in n for n in graph.exe._symbol.get_internals().list_outputs())


needs_int8 = pytest.mark.skipif(not int8_available(),
                                reason="this MXNet build has no MKL-DNN INT8 kernels")

# Tolerances from a measured distribution (pip's mxnet 1.9.1, 2 CPU cores, 2026-12-01;
# oracle weights with bilinear upsampling, interval 3). On the 5 fixture frames (128 x 256,
# calibration on 3 of them), versions 18/34/50/101, scopes key and all (16 runs), and on
# 5 CamVid val frames as the demo reads them (calibration on 3 train frames, versions 18/50):
#   keyframe state error mean|int8 - float| / mean|float|: 0.0920-0.0921 (fc6 state, 18/34/50),
#     0.065 (res5c state, 101), 0.069 (CamVid frames);
#   argmax agreement with the float fast path on keyframes: 0.977-0.993;
#   on propagated frames, worst per run: 18 key 0.941 (CamVid frames 0.946), 34 key 0.972,
#     34 all 0.951, 50 key 0.976, 50 all 0.933, 101 key 0.901, 101 all 0.872.
# Bounds: the error within (0.03, 0.12), agreements the worst measured less 0.03.
STATE_ERROR = (0.03, 0.12)
KEY_AGREEMENT = 0.95
NON_KEY_AGREEMENT = {("18", "key"): 0.91, ("34", "all"): 0.92, ("50", "all"): 0.90,
                     ("101", "all"): 0.84}


def _bilinear_params(version):
    net = AccelNetwork(version)
    args, aux = oracle_network_params(net, (1, 3, 128, 256))
    return net, _bilinear(args), aux


def _check_close_to_float(ref, int8, frames, non_key_agreement):
    for i, frame in enumerate(frames):
        a, b = ref.step(frame), int8.step(frame)
        assert a.is_key == b.is_key == (i % 3 == 0)
        if a.is_key:
            # The state handed to the non-key frames: INT8 rounding, not another network.
            fa = ref._key.exe.outputs[0].asnumpy()
            fb = int8._key.exe.outputs[0].asnumpy()
            err = np.abs(fa - fb).mean() / np.abs(fa).mean()
            assert STATE_ERROR[0] < err < STATE_ERROR[1], (i, err)
        agreement = (a.pred == b.pred).mean()
        assert agreement >= (KEY_AGREEMENT if a.is_key else non_key_agreement), (i, agreement)


@needs_int8
@pytest.mark.parametrize("version", ["34", "50", "101"])
def test_int8_everywhere_is_quantized_and_close_to_float(version):
    """Scope 'all': keyframe trunk, flow network and the update trunk (ResNet-34, ResNet-50,
    or ResNet-101 itself) in INT8. The float fast path it is measured against is first
    checked against the official graphs through the segmenter (keyframe and non-key)."""
    frames = _frames()
    net, args, aux = _bilinear_params(version)
    ref = VideoSegmenter(FastAccelNetwork(net.name), args, aux, interval=3, fast=True)
    if version != "101":   # 101's fast segmenter: tests/test_fast_path.py
        official = VideoSegmenter(net, args, aux, interval=3)
        assert ref.fast and not official.fast
        for i, frame in enumerate(frames):
            a, b = official.step(frame), ref.step(frame)
            assert a.is_key == b.is_key == (i % 3 == 0)
            assert (a.pred == b.pred).mean() >= 0.999, i
        ref.reset()
    int8 = VideoSegmenter(FastAccelNetwork(net.name), args, aux, interval=3, fast=True,
                          int8_calibration=frames[:3],
                          int8_scope="all")
    _check_close_to_float(ref, int8, frames, NON_KEY_AGREEMENT[version, "all"])
    assert _quantized(int8._key) and _quantized(int8._cur)


@needs_int8
def test_int8_from_the_demo_flags():
    """--int8 FOLDER --int8-frames 3: calibrated on the sample clip's frames, only the
    keyframe trunk in INT8 (the default scope), as close to float as the bounds say."""
    opts = speed_options(_speed_args("--int8", str(SAMPLE / "train"), "--int8-frames", "3"),
                         _Data128, make_runtime("mxnet"))
    assert opts["fast"] and opts["int8_scope"] == "key" and len(opts["int8_calibration"]) == 3
    net, args, aux = _bilinear_params("18")
    ref = VideoSegmenter(FastAccelNetwork(net.name), args, aux, interval=3, fast=True)
    fast = FastAccelNetwork(net.name) if opts.pop("fast") else net
    int8 = VideoSegmenter(fast, args, aux, interval=3, **opts)
    # Frames the way the demo reads them (128 x 192 here), calibration from another folder.
    _check_close_to_float(ref, int8, calibration_frames(str(SAMPLE / "val"), _Data128, 5),
                          NON_KEY_AGREEMENT["18", "key"])
    assert _quantized(int8._key) and not _quantized(int8._cur)


def test_int8_needs_the_fast_path_and_consistent_calibration():
    net = AccelNetwork("18")
    args, aux = oracle_network_params(net, (1, 3, 128, 256))
    frames = _frames()
    with pytest.raises(ValueError, match="fast CPU path"):   # random kernels: no fast path
        VideoSegmenter(FastAccelNetwork(net.name), args, aux, interval=3, fast=True, int8_calibration=frames[:1])
    seg = VideoSegmenter(FastAccelNetwork(net.name), _bilinear(args), aux, interval=3, fast=True,
                         int8_calibration=[frames[0], frames[0][:, :, :64]])
    with pytest.raises(ValueError, match="one shape"):
        seg.step(frames[0])
    with pytest.raises(ValueError, match="at least 2 calibration frames"):
        VideoSegmenter(FastAccelNetwork(net.name), _bilinear(args), aux, fast=True, int8_calibration=frames[:1],
                       int8_scope="all")


def _speed_args(*argv):
    parser = argparse.ArgumentParser()
    add_speed_arguments(parser)
    args = parser.parse_args(list(argv))
    args.panels = "--panels" in argv
    return args


class _Data:
    pixel_means = [103.06, 115.90, 123.15]
    scales = [96, 128]
    stride = 32


class _Data128(_Data):
    scales = [128, 256]


def test_speed_flags(tmp_path):
    cpu = make_runtime("mxnet")
    assert speed_options(_speed_args(), _Data, cpu) == {
        "fast": True, "int8_calibration": None, "int8_scope": "key"}
    assert not speed_options(_speed_args("--reference-path"), _Data, cpu)["fast"]
    with pytest.raises(ValueError, match="--reference-path"):
        speed_options(_speed_args("--reference-path", "--int8", str(SAMPLE / "train")),
                      _Data, cpu)
    frames = speed_options(_speed_args("--int8", str(SAMPLE / "train"), "--int8-frames", "3"),
                           _Data, cpu)["int8_calibration"]
    assert len(frames) == 3 and all(f.shape == (1, 3, 96, 128) for f in frames)
    pytest.importorskip("torch", reason="PyTorch is not installed")
    with pytest.raises(ValueError, match="--int8 runs on MXNet's fast CPU path, which "
                                         "--runtime torch rules out"):
        speed_options(_speed_args("--int8", str(SAMPLE / "train")), _Data,
                      make_runtime("torch"))
    with pytest.raises(FileNotFoundError, match="no .png/.jpg images"):
        calibration_frames(str(tmp_path), _Data, 4)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        calibration_frames(str(tmp_path / "missing"), _Data, 4)
