"""The streaming segmenter: executors bound once, keyframe schedule, incremental
propagation, and agreement with the official graphs (oracle fixtures)."""
import time
from pathlib import Path

import numpy as np
import pytest

from accel.core.inference import VideoSegmenter
from accel.utils.checkpoint import CheckpointError
from dff_deeplab.symbol import AccelNetwork
from oracle import oracle_network_params

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "oracle_128x256"


def _segmenter(version, interval, frame_shape=(1, 3, 128, 256), panels=False):
    net = AccelNetwork(version)
    args, aux = oracle_network_params(net, frame_shape)
    return VideoSegmenter(net, args, aux, interval=interval, panels=panels)


def test_two_frames_reproduce_the_non_key_fixture():
    z = np.load(FIXTURES / "accel_18_cur_test.npz")
    seg = _segmenter("18", interval=5, panels=True)
    tic = time.perf_counter()
    key = seg.step(z["input__data_key"])
    key_wall = time.perf_counter() - tic
    cur = seg.step(z["input__data"])
    cur_wall = time.perf_counter() - tic - key_wall
    assert key.is_key and not cur.is_key
    assert (cur.pred == z["argmax__correction_output"][0]).mean() >= 0.999
    assert (cur.extras["dff"] == z["argmax__croped_score_output"][0]).mean() >= 0.999
    assert (cur.extras["update"] == z["argmax__18_croped_score_output"][0]).mean() >= 0.999
    # Each frame's network time (seconds) lies within that frame's step.
    assert key.network_s <= key_wall and cur.network_s <= cur_wall


def test_hop_by_hop_propagation_equals_the_training_graph():
    """Four non-key hops from the keyframe give the training graph's fused scores."""
    z = np.load(FIXTURES / "accel_18_train.npz")
    frames = list(z["input__data_ref"][:, None]) + [z["input__data"]]
    seg = _segmenter("18", interval=len(frames))
    results = [seg.step(f) for f in frames]
    assert [r.is_key for r in results] == [True, False, False, False, False]
    assert (results[-1].pred == z["argmax__correction_output"][0]).mean() >= 0.999


def test_executors_are_bound_once_and_interval_one_is_all_keyframes():
    z = np.load(FIXTURES / "accel_18_train.npz")
    seg = _segmenter("dff", interval=1)
    seg.step(z["input__data"])
    key_graph, cur_graph = seg._key, seg._cur
    flags = [seg.step(f[None]).is_key for f in z["input__data_ref"]]
    assert flags == [True] * 4
    assert seg._key is key_graph and seg._cur is cur_graph


def test_bad_interval_and_mismatched_grid_are_clear_errors():
    with pytest.raises(ValueError, match="interval must be >= 1"):
        _segmenter("18", interval=0)
    seg = _segmenter("18", interval=2)
    # 360 rows: the flow net's grid (22) and the ResNet's (23) disagree.
    with pytest.raises(ValueError, match="IMAGE_STRIDE"):
        seg.step(np.zeros((1, 3, 360, 480), np.float32))


def test_missing_parameters_are_listed():
    net = AccelNetwork("18")
    args, aux = oracle_network_params(net, (1, 3, 128, 256))
    del args["corr_weight"], aux["bn_conv1_moving_var"]
    seg = VideoSegmenter(net, args, aux, interval=2, source="model/accel-18-0000.params")
    with pytest.raises(CheckpointError, match="corr_weight") as err:
        seg.step(np.zeros((1, 3, 128, 256), np.float32))
    assert "bn_conv1_moving_var" in str(err.value)
    assert "accel-18-0000.params" in str(err.value)
