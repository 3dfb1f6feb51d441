"""Pictures: palette colouring, panels, mp4 files that OpenCV reads back, plots."""
import cv2
import numpy as np
import pytest

from accel.dataset.camvid import CAMVID_CLASSES, CAMVID_PALETTE
from accel.utils.visualize import Mp4Writer, PredictionWriter, color_labels, make_panel
from video_helpers import count_video_frames


def test_color_labels_uses_the_palette_in_bgr_and_ignore_is_black():
    pred = np.array([[0, 3], [10, 255]], np.uint8)
    out = color_labels(pred, CAMVID_PALETTE)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert tuple(out[0, 1]) == tuple(CAMVID_PALETTE[3][::-1])   # Road, as BGR
    assert tuple(out[1, 0]) == tuple(CAMVID_PALETTE[10][::-1])
    assert tuple(out[1, 1]) == (0, 0, 0)


def test_panel_puts_titled_tiles_side_by_side():
    a = np.full((40, 60, 3), 200, np.uint8)
    b = np.full((20, 30, 3), 50, np.uint8)            # scaled up to the tile height
    panel = make_panel([("input", a), ("DFF", None), ("out", b)], tile_height=40,
                       title_height=14)
    assert panel.shape == (54, 60 * 3 + 2 * 2, 3)
    assert (panel[14:, 62 + 60 + 2:][:, :60] == 50).all()   # third tile's body
    with pytest.raises(ValueError, match="empty"):
        make_panel([("x", None)])


def test_mp4_writer_round_trips_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "v.mp4"
    rng = np.random.default_rng(0)
    with Mp4Writer(str(path), fps=10) as writer:
        for _ in range(9):
            writer.write(rng.integers(0, 255, (33, 47, 3), dtype=np.uint8))  # odd size
    assert count_video_frames(str(path)) == 9
    cap = cv2.VideoCapture(str(path))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (48, 34)
    cap.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]
    with pytest.raises(RuntimeError):
        with Mp4Writer(str(tmp_path / "w.mp4")) as writer:
            writer.write(np.zeros((8, 8, 3), np.uint8))
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]
    with pytest.raises(ValueError, match=".mp4"):
        Mp4Writer(str(tmp_path / "x.avi"))


def test_prediction_writer_writes_maps_panels_and_video(tmp_path):
    img = np.zeros((64, 85, 3), np.uint8)
    pred = np.random.default_rng(1).integers(0, 11, (64, 85)).astype(np.uint8)
    writer = PredictionWriter(str(tmp_path), CAMVID_PALETTE, CAMVID_CLASSES, "Accel-18",
                              branches=True, save_panels=True,
                              video=str(tmp_path / "video.mp4"), fps=5)
    writer("a", img, pred, {}, pred, True)
    writer("b", img, pred, {"dff": pred, "update": pred}, None, False)
    out = writer.close()
    assert out == {"maps": 2, "panels": 2, "video": str(tmp_path / "video.mp4"),
                   "video_frames": 2}
    saved = cv2.imread(str(tmp_path / "maps" / "a.png"))
    assert (saved == color_labels(pred, CAMVID_PALETTE)).all()
    panel_a = cv2.imread(str(tmp_path / "panels" / "a.png"))
    panel_b = cv2.imread(str(tmp_path / "panels" / "b.png"))
    # a: input | DFF | update | Accel | ground truth; b has no ground truth tile.
    assert panel_a.shape[1] > panel_b.shape[1] > 4 * 85
    assert count_video_frames(str(tmp_path / "video.mp4")) == 2
