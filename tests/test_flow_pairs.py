"""Flow targets for FlowNet training: direction and scale follow the feature warp."""
from pathlib import Path

import numpy as np
import pytest

from accel.dataset import CamVidVideo
from accel.dataset.flow_pairs import FlowPairs, dis_flow, endpoint_error, flow_to_grid
from accel.operators import warp_numpy
from accel.utils.image import read_image

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "camvid"


def test_dis_flow_warps_the_earlier_frame_onto_the_current_one():
    frames = sorted((SAMPLE / "val").glob("*.png"))
    cur, ref = read_image(str(frames[3])), read_image(str(frames[1]))
    flow = dis_flow(cur, ref)
    to_nchw = lambda img: img.astype(np.float64).transpose(2, 0, 1)[None]
    warped = warp_numpy(to_nchw(ref), flow.transpose(2, 0, 1)[None].astype(np.float64))
    inner = (slice(None), slice(None), slice(20, -20), slice(20, -20))
    before = np.abs(to_nchw(ref) - to_nchw(cur))[inner].mean()
    after = np.abs(warped - to_nchw(cur))[inner].mean()
    assert after < 0.6 * before, (before, after)


def test_grid_target_is_area_mean_in_grid_pixels():
    flow = np.zeros((32, 48, 2), np.float32)
    flow[:16, :16, 0] = 32.0          # one grid cell moves 2 grid pixels right
    grid = flow_to_grid(flow)
    assert grid.shape == (1, 2, 2, 3)
    assert grid[0, 0, 0, 0] == pytest.approx(2.0) and np.abs(grid).sum() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="multiple of the stride"):
        flow_to_grid(np.zeros((30, 48, 2), np.float32))


def test_pairs_from_the_sample_clip():
    video = CamVidVideo(str(SAMPLE), "val", key_interval=2, pixel_means=(103.06, 115.9, 123.15),
                        scales=(360, 480))
    pairs = FlowPairs(video, crop_size=(352, 480), max_gap=2, seed=0)
    assert len(pairs) == 11 + 10       # 12 consecutive frames, gaps 1 and 2
    s = pairs[5]
    assert s["data"].shape == (1, 3, 352, 480) and s["data_key"].shape == (1, 3, 352, 480)
    assert s["flow_label"].shape == (1, 2, 22, 30)
    assert np.array_equal(pairs[5]["flow_label"], s["flow_label"])   # seeded
    off = s["flow_label"].copy()
    off[:, 0] += 3.0
    off[:, 1] += 4.0                   # every vector off by (3, 4): end-point error 5
    assert endpoint_error(off, s["flow_label"]) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="multiples of 16"):
        FlowPairs(video, crop_size=(350, 480))


# --- synthetic small hops (CamVid protocol v2) ---------------------------------------------

def _sample_video(key_interval=2, **kw):
    return CamVidVideo(str(SAMPLE), "val", key_interval=key_interval,
                       pixel_means=(103.06, 115.9, 123.15), scales=(360, 480), **kw)


def test_synthetic_pairs_have_a_fraction_of_the_real_motion_as_exact_target():
    real = FlowPairs(_sample_video(), crop_size=(352, 480), seed=0)
    synth = FlowPairs(_sample_video(), crop_size=(352, 480), seed=0, hop=2 / 30)
    a, b = real[4], synth[4]
    assert np.array_equal(a["data_key"], b["data_key"])        # same crop and flip
    assert not np.array_equal(a["data"], b["data"])
    big = np.abs(a["flow_label"]) > 0.05
    ratio = b["flow_label"][big] / a["flow_label"][big]
    assert np.allclose(ratio, ratio[0], rtol=1e-4) and 1 / 30 <= ratio[0] <= 3 / 30
    # the target moves the earlier frame onto the synthetic current one
    from accel.dataset.flow_pairs import shift_along_flow
    img = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    flow = np.zeros((4, 5, 2), np.float32)
    flow[..., 0] = 1.0                 # out(x) = img(x + 1), the last column replicated
    np.testing.assert_array_equal(shift_along_flow(img, flow),
                                  np.concatenate([img[:, 1:], img[:, -1:]], axis=1))
    with pytest.raises(ValueError, match="fraction"):
        FlowPairs(_sample_video(), crop_size=(352, 480), hop=1.5)


def test_synthetic_hops_move_the_labelled_frame_back_in_time():
    from accel.dataset.flow_pairs import SyntheticHops
    video = _sample_video(stride=32)   # 360 rows padded to 384: padding stays untouched
    hops = SyntheticHops(video, key_interval=5, hop=2 / 30)
    assert len(hops) == len(video)
    s, base = hops[3], video[3]
    assert np.array_equal(s["data"], base["data"]) and np.array_equal(s["label"], base["label"])
    assert s["data_ref"].shape == (4,) + base["data"].shape[1:] and s["eq_flag"][0] == 0
    assert np.all(s["data_ref"][:, :, 360:] == 0)
    # oldest (keyframe) first: the farther back, the more it differs from the labelled frame
    diffs = [np.abs(r - s["data"][0])[:, :360].mean() for r in s["data_ref"]]
    assert diffs[0] > diffs[1] > diffs[2] > diffs[3] > 0, diffs
    assert np.array_equal(hops[3]["data_ref"], s["data_ref"])    # seeded
    with pytest.raises(ValueError, match="key_interval 2"):
        SyntheticHops(_sample_video(key_interval=3), 5, 2 / 30)
