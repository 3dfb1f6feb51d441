"""Result plots: matplotlib writes PNG and SVG with the series, axes and legend asked for."""
import cv2
import pytest

from accel.utils.plots import line_plot


def test_line_plot_writes_png_and_svg_with_every_series(tmp_path):
    paths = line_plot(str(tmp_path / "p.png"),
                      {"fixed": ([1, 2, 3], [50.0, 60.0, float("nan")]),
                       "adaptive": ([1, 3], [40, 45])},
                      "keyframe interval", "mIoU (%)", "mIoU against interval",
                      styles={"adaptive": "--"})
    assert paths == [str(tmp_path / "p.png"), str(tmp_path / "p.svg")]
    img = cv2.imread(paths[0])
    assert img.shape[:2] == (480, 720)
    # Lines are drawn in colour (not only black axes and text on white).
    colourful = (img.max(axis=2).astype(int) - img.min(axis=2)) > 60
    assert colourful.sum() > 200
    svg = (tmp_path / "p.svg").read_text()
    for text in ("fixed", "adaptive", "keyframe interval", "mIoU (%)"):
        assert text in svg


def test_line_plot_refuses_empty_input_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="no finite points"):
        line_plot(str(tmp_path / "e.png"), {"a": ([float("nan")], [1.0])}, "x", "y")
    with pytest.raises(ValueError, match="no finite points"):   # x <= 0 on a log axis
        line_plot(str(tmp_path / "e.png"), {"a": ([0.0], [1.0])}, "x", "y", x_log=True)
    assert list(tmp_path.iterdir()) == []
