"""Data sets (Cityscapes, CamVid, plain video), training samples, test snippets, the loader."""
import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label

from accel.dataset import CamVidVideo, CityscapesVideo, PrefetchLoader, SegNetVideo, \
    VideoFrames, config_scales, config_split, dataset_from_config
from accel.dataset.camvid import parse_frame_name
from accel.core.tester import prepare_frame
from accel.utils.image import read_image, read_label

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data" / "camvid"
SHARED = Path(os.environ.get("ACCEL_SHARED_DIR", REPO / ".." / "shared"))
CS_SAMPLE = SHARED / "data" / "cityscapes_sample"
MEANS_BGR = (103.06, 115.90, 123.15)
H, W = 48, 64


# --------------------------------------------------------------------------- fixtures
def _frame_tensor(ds, path: str) -> np.ndarray:
    """A frame as the test runners feed it (accel.core.tester.prepare_frame)."""
    return prepare_frame(read_image(path), ds.pixel_means, ds.scales, ds.stride).data


def _frame_image(frame: int) -> np.ndarray:
    """Frame `frame`: blue = frame number, green = x, red = y (so crops and flips are visible)."""
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = frame
    img[..., 1] = np.arange(W)[None, :]
    img[..., 2] = np.arange(H)[:, None]
    return img


def _label_ids(rng) -> np.ndarray:
    ids = rng.integers(0, 34, size=(H, W)).astype(np.uint8)
    ids[:, :4] = 7  # 'road' in the first columns, so every crop has a known class
    return ids


def make_cityscapes(root: Path, split="val", snippets=(("aachen", "000000", 19),
                    ("aachen", "000001", 49)), first=0, kinds=("labelIds", "labelTrainIds")):
    """A tiny tree with official names: sequence frames `first`..label frame, and labels."""
    rng = np.random.default_rng(0)
    to_train = np.full(256, 255, np.uint8)
    for i, lab in id2label.items():
        if i >= 0 and 0 <= lab.trainId < 255:
            to_train[i] = lab.trainId
    for city, seq, label_frame in snippets:
        seq_dir = root / "leftImg8bit_sequence" / split / city
        gt_dir = root / "gtFine" / split / city
        seq_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        for f in range(label_frame - 19 + first, label_frame + 1):
            cv2.imwrite(str(seq_dir / f"{city}_{seq}_{f:06d}_leftImg8bit.png"), _frame_image(f))
        ids = _label_ids(rng)
        stem = f"{city}_{seq}_{label_frame:06d}_gtFine_"
        if "labelIds" in kinds:
            cv2.imwrite(str(gt_dir / (stem + "labelIds.png")), ids)
        if "labelTrainIds" in kinds:
            cv2.imwrite(str(gt_dir / (stem + "labelTrainIds.png")), to_train[ids])
        # files that must not be mistaken for labels
        cv2.imwrite(str(gt_dir / (stem + "color.png")), np.zeros((H, W, 3), np.uint8))
    return root


@pytest.fixture
def cs_root(tmp_path):
    return make_cityscapes(tmp_path / "cityscapes")


def _frame_of(tensor: np.ndarray) -> float:
    """Frame number encoded in the blue channel of a preprocessed (3, h, w) tensor."""
    return int(round(float(tensor[2, 0, 0]) + MEANS_BGR[0]))


def _x0_y0(tensor: np.ndarray):
    return (int(round(float(tensor[1, 0, 0]) + MEANS_BGR[1])),
            int(round(float(tensor[0, 0, 0]) + MEANS_BGR[2])))


# ------------------------------------------------------------------------ Cityscapes
def test_cityscapes_training_sample_frames_crop_and_label(cs_root):
    ds = CityscapesVideo(str(cs_root), "val", key_interval=5, pixel_means=MEANS_BGR,
                         scales=(H, W), crop_size=(32, 40), seed=3)
    assert len(ds) == 2 and ds.num_classes == 19
    s = ds[1]
    assert s["data"].shape == (1, 3, 32, 40) and s["data_ref"].shape == (4, 3, 32, 40)
    assert s["label"].shape == (1, 1, 32, 40) and s["eq_flag"].tolist() == [0.0]
    assert s["name"] == "aachen_000001_000049"
    # reference frames f-4 .. f-1, keyframe first
    assert [_frame_of(t) for t in s["data_ref"]] == [45, 46, 47, 48]
    assert _frame_of(s["data"][0]) == 49
    # one crop window for every frame and the label
    x0, y0 = _x0_y0(s["data"][0])
    assert all(_x0_y0(t) == (x0, y0) for t in s["data_ref"])
    ids = read_label(str(cs_root / "gtFine/val/aachen/aachen_000001_000049_gtFine_labelIds.png"))
    crop = ids[int(y0):int(y0) + 32, int(x0):int(x0) + 40]
    expected = np.array([[id2label[i].trainId for i in row] for row in crop])
    expected[(expected < 0) | (expected > 18)] = 255
    np.testing.assert_array_equal(s["label"][0, 0], expected)


def test_cityscapes_label_ids_give_same_sample_as_train_ids(tmp_path):
    a = make_cityscapes(tmp_path / "a", kinds=("labelIds",))
    b = make_cityscapes(tmp_path / "b", kinds=("labelTrainIds",))
    sa = CityscapesVideo(str(a), "val", key_interval=3, scales=(H, W))[0]
    sb = CityscapesVideo(str(b), "val", key_interval=3, scales=(H, W))[0]
    np.testing.assert_array_equal(sa["label"], sb["label"])
    assert (sa["label"][0, 0, :, :4] == 0).all()  # 'road' -> train id 0


def test_cityscapes_flip_same_for_all(cs_root):
    ds = CityscapesVideo(str(cs_root), "val", key_interval=3, scales=(H, W), flip=True)
    flips = []
    for i in range(12):
        s = ds.sample(0, np.random.default_rng(i))
        flipped = _x0_y0(s["data"][0])[0] == W - 1
        flips.append(flipped)
        for t in s["data_ref"]:
            assert (_x0_y0(t)[0] == W - 1) == flipped
        assert ((s["label"][0, 0, :, -4:] == 0).all()) == flipped
    assert any(flips) and not all(flips)


def test_cityscapes_random_key_distance(cs_root):
    ds = CityscapesVideo(str(cs_root), "val", key_interval=5, scales=(H, W),
                         random_key_distance=True)
    seen = set()
    for i in range(40):
        s = ds.sample(0, np.random.default_rng(i))
        frames = [_frame_of(t) for t in s["data_ref"]]
        d = 19 - frames[0]
        seen.add(d)
        assert s["eq_flag"][0] == (1.0 if d == 0 else 0.0)
        # keyframe repeated in front, then consecutive frames up to f-1
        assert frames == ([19 - d] * (5 - d) + list(range(20 - d, 19)) if d else [19] * 4)
    assert seen == {0, 1, 2, 3, 4}


def test_cityscapes_test_snippets(cs_root):
    ds = CityscapesVideo(str(cs_root), "val", key_interval=5, scales=(H, W))
    worst = ds.test_snippets(5)
    assert len(worst) == 2
    assert [Path(p).name for p in worst[0].frames] == \
        [f"aachen_000000_{f:06d}_leftImg8bit.png" for f in range(15, 20)]
    assert worst[0].label_index == 4
    avg = ds.test_snippets(5, avg=True)
    assert sorted(len(s.frames) for s in avg[:5]) == [1, 2, 3, 4, 5]
    assert all(Path(s.frames[s.label_index]).name.startswith("aachen_000000_000019") for s in avg[:5])
    t = _frame_tensor(ds, worst[0].frames[0])
    assert t.shape == (1, 3, H, W)


def test_cityscapes_prefers_train_ids_and_ignores_other_files(cs_root, caplog):
    ds = CityscapesVideo(str(cs_root), "val", key_interval=2, scales=(H, W))
    assert all(it.label.endswith("_gtFine_labelTrainIds.png") for it in ds.items)
    ds = CityscapesVideo(str(cs_root), "val", key_interval=2, scales=(H, W),
                         label_kinds=("labelIds",))
    assert all(it.label.endswith("_gtFine_labelIds.png") for it in ds.items)
    with pytest.raises(ValueError, match="unknown Cityscapes label kinds"):
        CityscapesVideo(str(cs_root), "val", label_kinds=("color",))
    with pytest.raises(ValueError, match="needs 20 frames"):
        CityscapesVideo(str(cs_root), "val", key_interval=21)


def test_cityscapes_missing_frame_is_an_error_or_skipped(tmp_path, caplog):
    root = make_cityscapes(tmp_path / "cs", first=17)  # frames 17..19 only
    with pytest.raises(FileNotFoundError, match="aachen_000000_000016_leftImg8bit.png"):
        CityscapesVideo(str(root), "val", key_interval=4, scales=(H, W))
    (root / "leftImg8bit_sequence/val/aachen/aachen_000001_000048_leftImg8bit.png").unlink()
    with caplog.at_level(logging.WARNING):
        ds = CityscapesVideo(str(root), "val", key_interval=3, scales=(H, W), skip_missing=True)
    assert [it.name for it in ds.items] == ["aachen_000000_000019"]
    assert "skipping aachen_000001_000049" in caplog.text
    assert "aachen_000001_000048_leftImg8bit.png" in caplog.text
    with pytest.raises(ValueError, match="no usable labelled frames"):
        CityscapesVideo(str(root), "val", key_interval=4, scales=(H, W), skip_missing=True)
    with pytest.raises(FileNotFoundError, match="gtFine"):
        CityscapesVideo(str(tmp_path / "empty"), "val")


def test_cityscapes_bad_label_values_sizes_and_corrupt_frames(cs_root):
    gt = cs_root / "gtFine/val/aachen/aachen_000000_000019_gtFine_labelTrainIds.png"
    lab = read_label(str(gt))
    lab[3, 3] = 19  # not a train id and not 255
    cv2.imwrite(str(gt), lab)
    ds = CityscapesVideo(str(cs_root), "val", key_interval=2, scales=(H, W))
    with pytest.raises(ValueError, match=r"labelTrainIds.png: values \[19\]"):
        ds[0]
    cv2.imwrite(str(gt), np.zeros((H, W + 2), np.uint8))
    with pytest.raises(ValueError, match=r"aachen_000000_000019_gtFine_labelTrainIds.png is 66x48"):
        ds[0]
    cv2.imwrite(str(gt), np.zeros((H, W), np.uint8))
    ref = cs_root / "leftImg8bit_sequence/val/aachen/aachen_000000_000018_leftImg8bit.png"
    cv2.imwrite(str(ref), np.zeros((H + 1, W, 3), np.uint8))
    with pytest.raises(ValueError, match="aachen_000000_000018_leftImg8bit.png is 64x49"):
        ds[0]
    ref.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="aachen_000000_000018_leftImg8bit.png"):
        ds[0]
    ds[1]  # the other sample is untouched


@pytest.mark.skipif(not CS_SAMPLE.is_dir(), reason=f"shared Cityscapes sample absent ({CS_SAMPLE})")
def test_real_cityscapes_sample():
    with pytest.raises(FileNotFoundError, match="lindau_000001_0000"):
        CityscapesVideo(str(CS_SAMPLE), "val", key_interval=5,
                        label_kinds=("labelTrainIds_fromColor",))
    ds = CityscapesVideo(str(CS_SAMPLE), "val", key_interval=5, skip_missing=True,
                         label_kinds=("labelTrainIds_fromColor",), crop_size=(512, 1024), seed=1)
    assert [it.name for it in ds.items] == ["lindau_000000_000019"]
    s = ds[0]
    assert s["data"].shape == (1, 3, 512, 1024) and s["data_ref"].shape == (4, 3, 512, 1024)
    labels = set(np.unique(s["label"]).tolist())
    assert labels <= set(range(19)) | {255} and len(labels) > 3
    # consecutive real frames differ a little, not a lot (same clip, 17 Hz)
    diff = np.abs(s["data_ref"][-1] - s["data"][0]).mean()
    assert 0.5 < diff < 40
    snippets = ds.test_snippets(10)
    assert len(snippets) == 1 and len(snippets[0].frames) == 10


# -------------------------------------------------------------------------- CamVid
def test_camvid_sample_clip_references_and_void(caplog):
    with caplog.at_level(logging.INFO):
        ds = CamVidVideo(str(SAMPLE), "val", key_interval=3, scales=(360, 480))
    assert "sequence 0016E5: 12 labelled frames, labelled every 2 raw frames (15 Hz" in caplog.text
    assert len(ds.all_items) == 12 and len(ds) == 10 and ds.num_classes == 11
    s = ds[0]
    assert s["name"] == "0016E5_07963"
    assert s["data"].shape == (1, 3, 360, 480) and s["data_ref"].shape == (2, 3, 360, 480)
    for t, name in zip(s["data_ref"], ["0016E5_07959", "0016E5_07961"]):
        expect = _frame_tensor(ds, str(SAMPLE / "val" / f"{name}.png"))
        np.testing.assert_array_equal(t, expect[0])
    raw = read_label(str(SAMPLE / "valannot" / "0016E5_07963.png"))
    lab = s["label"][0, 0]
    assert (lab[raw == 11] == 255).all() and (lab[raw < 11] == raw[raw < 11]).all()


def test_camvid_train_sample_and_snippets_clamp_at_start():
    ds = CamVidVideo(str(SAMPLE), "train", key_interval=5, scales=(360, 480),
                     crop_size=(352, 480), stride=16, flip=True)
    assert len(ds) == 4
    s = ds[3]
    assert s["data"].shape == (1, 3, 352, 480) and s["data_ref"].shape == (4, 3, 352, 480)
    snippets = CamVidVideo(str(SAMPLE), "val", key_interval=2).test_snippets(4)
    assert len(snippets) == 12
    assert [len(sn.frames) for sn in snippets[:5]] == [1, 2, 3, 4, 4]
    assert all(Path(sn.frames[sn.label_index]).name == Path(sn.item.image).name for sn in snippets)


def _camvid_copy(tmp_path, names):
    for sub in ("val", "valannot"):
        (tmp_path / sub).mkdir(parents=True)
        for n in names:
            shutil.copy(SAMPLE / sub / n, tmp_path / sub / n)
    return tmp_path


def test_camvid_gaps_split_segments(tmp_path):
    names = ["0016E5_07959.png", "0016E5_07961.png", "0016E5_07963.png", "0016E5_07979.png",
             "0016E5_07981.png"]
    ds = CamVidVideo(str(_camvid_copy(tmp_path, names)), "val", key_interval=2)
    assert [it.name for it in ds.items] == ["0016E5_07961", "0016E5_07963", "0016E5_07981"]
    assert [Path(p).name for p in ds.items[2].segment] == names[3:]


def test_camvid_missing_frame_is_named_not_a_silent_split(tmp_path, caplog):
    # Issue #13.3: a missing frame split the segment silently (mIoU 36.18% -> 31.89%).
    names = [f"0016E5_{f:05d}.png" for f in range(7959, 7982, 2)]
    root = _camvid_copy(tmp_path, [n for n in names if n != "0016E5_07969.png"])
    with caplog.at_level(logging.WARNING):
        ds = CamVidVideo(str(root), "val", key_interval=2)
    assert "0016E5_07969.png missing from sequence 0016E5" in caplog.text
    assert "0016E5_07967.png is followed by 0016E5_07971.png" in caplog.text
    assert len(ds.items) == 9  # the segment is split at the gap
    with pytest.raises(FileNotFoundError, match=r"0016E5_07969.png missing.*--skip-missing"):
        CamVidVideo(str(root), "val", key_interval=2, strict_gaps=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        CamVidVideo(str(root), "val", key_interval=2, strict_gaps=True, skip_missing=True)
    assert "0016E5_07969.png missing" in caplog.text
    # A label file whose image is gone is named too.
    shutil.copy(SAMPLE / "valannot" / "0016E5_07969.png", root / "valannot")
    with pytest.raises(FileNotFoundError, match="without their image.*0016E5_07969.png"):
        CamVidVideo(str(root), "val", key_interval=2, strict_gaps=True)


def test_training_data_with_a_missing_frame_is_an_error_unless_skip_missing(tmp_path):
    # Issue #13.3: a missing training frame halved the samples silently.
    from accel.config import get_defaults

    for sub in ("train", "trainannot"):
        shutil.copytree(SAMPLE / sub, tmp_path / sub)
        (tmp_path / sub / "0016E5_07989.png").unlink()
    cfg = get_defaults()
    cfg.dataset.update(dataset="camvid", dataset_path=str(tmp_path), NUM_CLASSES=11,
                       image_set="train", test_image_set="train")
    cfg.SCALES = [[360, 480]]
    cfg.TRAIN.update(KEY_INTERVAL=3, CROP_HEIGHT=320, CROP_WIDTH=320)
    with pytest.raises(FileNotFoundError, match="0016E5_07989.png missing"):
        dataset_from_config(cfg)
    assert len(dataset_from_config(cfg, train=False).all_items) == 7  # a warning when testing
    cfg.dataset.skip_missing = True
    assert len(dataset_from_config(cfg)) == 3


def test_camvid_bad_inputs(tmp_path):
    root = _camvid_copy(tmp_path, ["0016E5_07959.png", "0016E5_07961.png"])
    lab = read_label(str(root / "valannot/0016E5_07961.png"))
    lab[0, 0] = 12
    cv2.imwrite(str(root / "valannot/0016E5_07961.png"), lab)
    ds = CamVidVideo(str(root), "val", key_interval=2)
    with pytest.raises(ValueError, match=r"valannot/0016E5_07961.png: values \[12\]"):
        ds[0]
    (root / "valannot/0016E5_07961.png").unlink()
    with pytest.raises(FileNotFoundError, match="valannot/0016E5_07961.png"):
        CamVidVideo(str(root), "val", key_interval=2)
    with pytest.raises(ValueError, match="no usable labelled frames"):
        CamVidVideo(str(root), "val", key_interval=2, skip_missing=True)
    (root / "val/notes.png").write_bytes(b"")
    with pytest.raises(ValueError, match="notes.png"):
        CamVidVideo(str(root), "val", key_interval=2)
    with pytest.raises(FileNotFoundError, match="testannot"):
        CamVidVideo(str(root), "test")


def test_parse_frame_names():
    assert parse_frame_name("0016E5_07959.png") == ("0016E5", 7959)
    assert parse_frame_name("0006R0_f01234.png") == ("0006R0", 1234)
    with pytest.raises(ValueError, match="Seq05VD.png"):
        parse_frame_name("Seq05VD.png")


def test_own_labelled_video_layout(tmp_path):
    """A user video in the SegNet layout with its own class count (see docs/data.md)."""
    for sub in ("train", "trainannot"):
        (tmp_path / sub).mkdir()
    for f in range(0, 12, 3):
        cv2.imwrite(str(tmp_path / "train" / f"street_{f:04d}.png"), _frame_image(f))
        cv2.imwrite(str(tmp_path / "trainannot" / f"street_{f:04d}.png"),
                    np.full((H, W), f % 4, np.uint8))
    ds = SegNetVideo(str(tmp_path), "train", key_interval=3, num_classes=4, scales=(H, W))
    s = ds[1]
    assert [_frame_of(t) for t in s["data_ref"]] == [3, 6] and _frame_of(s["data"][0]) == 9
    assert (s["label"] == 1).all()
    with pytest.raises(ValueError, match=r"values \[3\]"):
        SegNetVideo(str(tmp_path), "train", key_interval=2, num_classes=3, scales=(H, W))[0]
    # frames without labels in between: reference frames only, and the spacing becomes 1
    for f in (7, 8):
        cv2.imwrite(str(tmp_path / "train" / f"street_{f:04d}.png"), _frame_image(f))
    ds = SegNetVideo(str(tmp_path), "train", key_interval=3, num_classes=4, scales=(H, W))
    assert [it.name for it in ds.items] == ["street_0009"]
    assert [_frame_of(t) for t in ds[0]["data_ref"]] == [7, 8]


# ----------------------------------------------------------------------- plain video
def test_video_folder_and_file(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for f in (1, 2, 10):
        cv2.imwrite(str(folder / f"f{f}.png"), _frame_image(f))
    (folder / "notes.txt").write_text("not a frame")
    frames = list(VideoFrames(str(folder)))
    assert [int(fr[0, 0, 0]) for fr in frames] == [1, 2, 10]
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    for f in range(7):
        writer.write(_frame_image(f * 30))
    writer.release()
    video = VideoFrames(str(path))
    frames = list(video)
    assert len(frames) == 7 and frames[0].shape == (H, W, 3) and video.fps == 10.0
    assert abs(int(frames[3][H // 2, W // 2, 0]) - 90) < 10
    assert len(list(VideoFrames(str(path), max_frames=3))) == 3
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="broken.mp4"):
        VideoFrames(str(bad))
    with pytest.raises(FileNotFoundError, match="absent.mp4"):
        VideoFrames(str(tmp_path / "absent.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no frame images"):
        VideoFrames(str(tmp_path / "empty"))


def test_a_truncated_video_is_not_a_normal_end(tmp_path, caplog):
    # Issue #13.4: 99 of 200 frames written, exit 0.
    from accel.dataset.video import TruncatedVideoError

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    for f in range(40):
        writer.write(_frame_image(f * 5))
    writer.release()
    assert len(list(VideoFrames(str(path)))) == 40
    assert len(list(VideoFrames(str(path), max_frames=10))) == 10
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[:len(data) // 2])
    video = VideoFrames(str(cut))
    got = []
    with pytest.raises(TruncatedVideoError, match=r"cut.avi: the container announces 40 frames "
                                                  r"but only \d+ decode.*--allow-partial"):
        for frame in video:
            got.append(frame)
    assert 0 < len(got) < 40 and video.decoded == len(got)
    with caplog.at_level(logging.WARNING):
        assert len(list(VideoFrames(str(cut), allow_partial=True))) == len(got)
    assert f"announces 40 frames but only {len(got)} decode" in caplog.text


# ---------------------------------------------------------------------------- loader
def _names(batches):
    return [(s["name"], float(s["data"].sum())) for b in batches for s in b]


def test_loader_deterministic_and_resumable():
    ds = CamVidVideo(str(SAMPLE), "val", key_interval=2, scales=(180, 240), crop_size=(96, 128),
                     flip=True)
    full = PrefetchLoader(ds, batch_size=2, shuffle=True, seed=5, prefetch=2)
    assert len(full) == 5
    epoch0 = list(full)
    epoch1 = list(full)
    assert all(len(b) == 2 for b in epoch0)
    assert _names(epoch0) != _names(epoch1)  # new order and new crops each epoch
    again = PrefetchLoader(ds, batch_size=2, shuffle=True, seed=5)
    assert _names(list(again)) == _names(epoch0)

    part = PrefetchLoader(ds, batch_size=2, shuffle=True, seed=5, prefetch=3)
    it = iter(part)
    first = [next(it) for _ in range(3)]
    state = part.state_dict()
    assert state["epoch"] == 0 and state["index"] == 6
    it.close()
    resumed = PrefetchLoader(ds, batch_size=2, shuffle=True, seed=0)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert _names(first + rest) == _names(epoch0)
    assert _names(list(resumed)) == _names(epoch1)
    with pytest.raises(ValueError, match="num_samples"):
        PrefetchLoader(CamVidVideo(str(SAMPLE), "val", key_interval=3)).load_state_dict(state)


def test_loader_propagates_worker_errors(cs_root):
    ds = CityscapesVideo(str(cs_root), "val", key_interval=2, scales=(H, W))
    (cs_root / "leftImg8bit_sequence/val/aachen/aachen_000000_000019_leftImg8bit.png") \
        .write_bytes(b"broken")
    with pytest.raises(ValueError, match="aachen_000000_000019_leftImg8bit.png"):
        list(PrefetchLoader(ds, shuffle=False))


# ---------------------------------------------------------------------------- config
def test_dataset_from_config():
    from accel.config import get_defaults
    cfg = get_defaults()
    cfg.dataset.update(dataset="CamVid", dataset_path=str(SAMPLE), NUM_CLASSES=11,
                       image_set="train", test_image_set="val")
    cfg.SCALES = [[360, 480]]
    cfg.network.IMAGE_STRIDE = 16
    cfg.TRAIN.update(KEY_INTERVAL=3, CROP_HEIGHT=320, CROP_WIDTH=320, FLIP=True)
    train = dataset_from_config(cfg)
    assert isinstance(train, CamVidVideo) and train.split == "train" and len(train) == 6
    assert train[0]["data"].shape == (1, 3, 320, 320) and train.flip
    test = dataset_from_config(cfg, train=False)
    assert test.split == "val" and test.crop_size is None and not test.flip
    assert _frame_tensor(test, test.items[0].image).shape == (1, 3, 368, 480)
    cfg.dataset.NUM_CLASSES = 19
    with pytest.raises(ValueError, match="NUM_CLASSES = 19"):
        dataset_from_config(cfg)
    cfg.dataset.dataset = "kitti"
    with pytest.raises(ValueError, match="'kitti'"):
        dataset_from_config(cfg)
    assert config_split("leftImg8bit_train+leftImg8bit_val") == "train+val"
    assert config_scales([[1024, 2048]]) == [1024, 2048] == config_scales([1024, 2048])
