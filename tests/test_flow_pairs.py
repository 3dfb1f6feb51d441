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
    assert endpoint_error(s["flow_label"], s["flow_label"]) == 0.0
    with pytest.raises(ValueError, match="multiples of 16"):
        FlowPairs(video, crop_size=(350, 480))
