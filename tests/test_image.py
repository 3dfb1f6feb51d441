"""Image/label reading and the original's preprocessing (accel.utils.image)."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from accel.utils import image as im

REPO = Path(__file__).resolve().parents[1]
SAMPLE_FRAME = REPO / "sample_data" / "camvid" / "val" / "0016E5_07959.png"
SAMPLE_LABEL = REPO / "sample_data" / "camvid" / "valannot" / "0016E5_07959.png"
MEANS_BGR = [103.06, 115.90, 123.15]


def test_read_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(FileNotFoundError, match="nope.png"):
        im.read_image(str(missing))
    with pytest.raises(FileNotFoundError, match="nope.png"):
        im.read_label(str(missing))
    corrupt = tmp_path / "corrupt.png"
    data = SAMPLE_FRAME.read_bytes()
    corrupt.write_bytes(data[:len(data) // 2])  # a real PNG cut off halfway
    with pytest.raises(ValueError, match="corrupt.png"):
        im.read_image(str(corrupt))
    with pytest.raises(ValueError, match="corrupt.png"):
        im.read_label(str(corrupt))
    colour = tmp_path / "colour.png"
    cv2.imwrite(str(colour), np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="colour.png.*single-channel"):
        im.read_label(str(colour))


def test_compute_scale_short_side_and_cap():
    assert im.compute_scale(1024, 2048, 1024, 2048) == 1.0
    assert im.compute_scale(360, 480, 720, 2000) == pytest.approx(2.0)
    # short side to 720 would make the long side 960 > 700: the cap wins
    assert im.compute_scale(360, 480, 720, 700) == pytest.approx(700 / 480)
    assert im.scaled_size(360, 480, [720, 700]) == (525, 700, pytest.approx(700 / 480))
    with pytest.raises(ValueError, match="SCALES"):
        im.scaled_size(360, 480, [720])


def test_image_to_tensor_rgb_minus_means():
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[..., 0], bgr[..., 1], bgr[..., 2] = 10, 20, 30  # B, G, R
    t = im.image_to_tensor(bgr, MEANS_BGR)
    assert t.shape == (1, 3, 2, 3) and t.dtype == np.float32
    np.testing.assert_allclose(t[0, :, 1, 2], [30 - 123.15, 20 - 115.90, 10 - 103.06], rtol=1e-6)


def test_pad_to_stride():
    t = np.ones((1, 3, 361, 481), np.float32)
    p = im.pad_to_stride(t, 16, 0.0)
    assert p.shape == (1, 3, 368, 496)
    assert (p[..., :361, :481] == 1).all() and (p[..., 361:, :] == 0).all() and \
        (p[..., 481:] == 0).all()
    assert im.pad_to_stride(t, 0) is t
    lab = im.pad_to_stride(np.zeros((1, 1, 5, 5), np.float32), 4, 255)
    assert lab.shape == (1, 1, 8, 8) and (lab[..., 5:, :] == 255).all()


def test_preprocess_real_frame_and_label():
    """The steps as the runners compose them: accel.core.tester.prepare_frame for frames,
    the data sets' resize / tensor / pad for labels."""
    from accel.core.tester import prepare_frame
    from accel.utils.segmath import IGNORE_LABEL

    img = im.read_image(str(SAMPLE_FRAME))
    assert im.scaled_size(*img.shape[:2], [720, 1000])[2] == pytest.approx(2.0)
    t = prepare_frame(img, MEANS_BGR, [720, 1000], 32).data
    assert t.shape == (1, 3, 736, 960)  # 720 padded to a multiple of 32
    assert (t[..., 720:, :] == 0).all()
    big = cv2.resize(img, (960, 720), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(t[0, 0, :720], big[..., 2].astype(np.float32) - 123.15, atol=1e-4)

    label = im.read_label(str(SAMPLE_LABEL))
    h, w, _ = im.scaled_size(*label.shape, [720, 1000])
    lt = im.pad_to_stride(im.label_to_tensor(im.resize_label(label, (h, w))), 32, IGNORE_LABEL)
    assert lt.shape == (1, 1, 736, 960) and lt.dtype == np.float32
    assert (lt[..., 720:, :] == 255).all()
    # nearest neighbour: no new label values appear, and 2x upsampling repeats pixels
    assert set(np.unique(lt[..., :720, :])) <= set(np.unique(label).astype(np.float32))
    np.testing.assert_array_equal(lt[0, 0, :720:2, ::2], label)
