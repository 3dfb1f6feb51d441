"""The optional INT8 keyframe trunk and the demo's speed flags."""
import argparse
from pathlib import Path

import numpy as np
import pytest

from accel.core.inference import VideoSegmenter
from accel.core.quantize import int8_available
from accel.core.tester import add_speed_arguments, calibration_frames, speed_options
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


@pytest.mark.skipif(not int8_available(), reason="this MXNet build has no MKL-DNN INT8 kernels")
@pytest.mark.parametrize("version, scope", [("18", "key"), ("18", "all"), ("101", "all")])
def test_int8_trunks_are_quantized_and_close_to_float(version, scope):
    frames = _frames()
    net = AccelNetwork(version)
    args, aux = oracle_network_params(net, (1, 3, 128, 256))
    args = _bilinear(args)
    ref = VideoSegmenter(net, args, aux, interval=3, fast=True)
    int8 = VideoSegmenter(net, args, aux, interval=3, fast=True, int8_calibration=frames[:3],
                          int8_scope=scope)
    for i, frame in enumerate(frames):
        a, b = ref.step(frame), int8.step(frame)
        assert a.is_key == b.is_key
        if i == 0:
            # The state handed to the non-key frames: INT8 rounding, not another network.
            fa = ref._key.exe.outputs[0].asnumpy()
            fb = int8._key.exe.outputs[0].asnumpy()
            err = np.abs(fa - fb).mean() / np.abs(fa).mean()
            assert 0 < err < 0.2
            assert _quantized(int8._key)
        assert (a.pred == b.pred).mean() > 0.5
    assert _quantized(int8._cur) == (scope == "all")


def test_int8_needs_the_fast_path_and_consistent_calibration():
    net = AccelNetwork("18")
    args, aux = oracle_network_params(net, (1, 3, 128, 256))
    frames = _frames()
    with pytest.raises(ValueError, match="fast CPU path"):   # random kernels: no fast path
        VideoSegmenter(net, args, aux, interval=3, fast=True, int8_calibration=frames[:1])
    seg = VideoSegmenter(net, _bilinear(args), aux, interval=3, fast=True,
                         int8_calibration=[frames[0], frames[0][:, :, :64]])
    with pytest.raises(ValueError, match="one shape"):
        seg.step(frames[0])
    with pytest.raises(ValueError, match="at least 2 calibration frames"):
        VideoSegmenter(net, _bilinear(args), aux, fast=True, int8_calibration=frames[:1],
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


def test_speed_flags(tmp_path):
    cpu = mx.cpu()
    assert speed_options(_speed_args(), _Data, cpu) == {
        "fast": True, "int8_calibration": None, "int8_scope": "key"}
    assert not speed_options(_speed_args("--reference-path"), _Data, cpu)["fast"]
    with pytest.raises(ValueError, match="--reference-path"):
        speed_options(_speed_args("--reference-path", "--int8", str(SAMPLE / "train")),
                      _Data, cpu)
    frames = speed_options(_speed_args("--int8", str(SAMPLE / "train"), "--int8-frames", "3"),
                           _Data, cpu)["int8_calibration"]
    assert len(frames) == 3 and all(f.shape == (1, 3, 96, 128) for f in frames)
    with pytest.raises(FileNotFoundError, match="no .png/.jpg images"):
        calibration_frames(str(tmp_path), _Data, 4)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        calibration_frames(str(tmp_path / "missing"), _Data, 4)
