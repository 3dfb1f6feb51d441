"""The demos' checks before anything runs (accel.cli.checks, accel.cli.limits): sizes
against memory, keyframe flags the policy does not use, parameters the network does not
use, one-frame sources, missing labels (issue #25)."""
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from accel.cli.data import demo_data, open_dataset
from accel.cli.demo import accel_parser
from accel.cli.keyframes import keyframe_policy
from accel.dataset import VideoFrames
from accel.utils.checkpoint import CheckpointError
from deeplab import demo as deeplab_demo

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "camvid"
CFG = ROOT / "experiments" / "deeplab" / "cfgs" / "camvid_protocol_deeplab_18.yaml"
SMALL = ["--cfg", str(CFG), "--data-root", str(SAMPLE), "--stride", "32", "--cpu", "-e", "1",
         "--no-video"]
GIB = 2 ** 30


def _demo(model, out, *extra):
    return deeplab_demo.main(SMALL + ["--model", model, "--output", str(out), *extra])


def test_frames_too_large_for_the_memory_are_refused_with_the_numbers(deeplab18, tmp_path,
                                                                      monkeypatch):
    """#25.6: --scales whose frames need more memory than is available, or a tensor MXNet
    cannot index, and a --tile-height whose panels cannot fit, are refused before anything
    is allocated, with the estimate and the limit."""
    import accel.cli.limits as limits

    monkeypatch.setattr(limits, "available_memory", lambda: GIB)
    out = tmp_path / "big"
    with pytest.raises(ValueError, match=r"--scales 2000 4000: network input frames of "
                                         r"2016x2688 need about [0-9.]+ GiB of memory .* more "
                                         r"than the 1.0 GiB available"):
        _demo(deeplab18["good"], out, "--scales", "2000", "4000")
    with pytest.raises(ValueError, match=r"--tile-height 8000: panels of tiles 8000x10625 .* "
                                         r"more than the 1.0 GiB available"):
        _demo(deeplab18["good"], out, "--scales", "64", "96", "--tile-height", "8000",
              "--panels")
    assert not out.exists()
    monkeypatch.setattr(limits, "available_memory", lambda: 1000 * GIB)
    with pytest.raises(ValueError, match=r"more than the 2,147,483,647 MXNet can index"):
        limits.check_frame_memory((8000, 10688), "deeplab", 11, "--scales 8000 12000")


@pytest.mark.parametrize("flags", [
    ["--min-gap", "2"], ["--max-gap", "5"], ["--keyframe-rate", "0.2"],
    ["--keyframe-policy", "always", "--threshold", "0.5"],
    ["--keyframe-policy", "always", "--max-gap", "4"],
    ["--calibration-pairs", "10"],
    ["--keyframe-policy", "flow", "--threshold", "0.5", "--calibration-split", "val"],
    ["--keyframe-policy", "flow", "--threshold", "0.5", "--min-gap", "5", "--max-gap", "3"]])
def test_keyframe_flags_the_policy_does_not_use_are_refused(flags):
    """#25.10: --min-gap/--max-gap with the fixed policy, --threshold with always, budget
    mode's flags without budget mode were silently ignored."""
    args = accel_parser("demo").parse_args(flags)
    with pytest.raises(ValueError, match=flags[-2]):
        keyframe_policy(args, 3)


def test_deeplab_demo_allow_extra_params_decides(deeplab18, tmp_path, caplog):
    """#25.12: deeplab/demo.py --allow-extra-params had no effect (it always warned): a
    checkpoint with a parameter the network does not use is an error naming it, and a
    warning with the flag."""
    with pytest.raises(CheckpointError, match="stray_conv_weight.*--allow-extra-params"):
        _demo(deeplab18["extra"], tmp_path / "no", "--scales", "64", "96")
    assert not (tmp_path / "no").exists()
    with caplog.at_level(logging.WARNING):
        res = _demo(deeplab18["extra"], tmp_path / "yes", "--scales", "64", "96",
                    "--allow-extra-params")
    assert res["frames"] == 1 and "stray_conv_weight" in caplog.text


def test_a_single_image_is_a_one_frame_video(tmp_path):
    """#25.16: --video on a one-frame source said `__len__() should return >= 0`."""
    image = tmp_path / "frame.png"
    shutil.copy(sorted((SAMPLE / "val").glob("*.png"))[0], image)
    video = VideoFrames(str(image))
    assert len(video) == 1
    frames = list(video)
    assert len(frames) == 1 and frames[0].shape == cv2.imread(str(image)).shape


def test_adaptive_streams_of_one_frame_are_a_clear_error():
    """#25.16: the adaptive comparison on a split of one-frame streams: a clear error, not
    an IndexError."""
    from accel.keyframes.comparison import warm_up
    from accel.core.tester import LoadedFrame

    frame = LoadedFrame(np.zeros((2, 2, 3), np.uint8), np.zeros((1, 3, 2, 2), np.float32),
                        None)
    with pytest.raises(ValueError, match="no stream of 2 or more frames"):
        warm_up(None, [[frame], [frame]])


def test_a_missing_label_names_a_flag_the_demo_has(tmp_path):
    """#25.18: the hint for a missing label suggested --skip-missing, which the demo
    rejected; now the demo has it and it skips the frame."""
    names = sorted(p.name for p in (SAMPLE / "val").glob("*.png"))[:4]
    for sub in ("val", "valannot"):
        (tmp_path / sub).mkdir()
        for n in names:
            if not (sub == "valannot" and n == names[2]):
                shutil.copy(SAMPLE / sub / n, tmp_path / sub / n)
    args = accel_parser("demo").parse_args(["--data-root", str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="--skip-missing"):
        open_dataset(demo_data(args))
    args = accel_parser("demo").parse_args(["--data-root", str(tmp_path), "--skip-missing"])
    assert len(open_dataset(demo_data(args)).items) == 3


@pytest.mark.parametrize("flags", [["--save-frames"], ["--allow-partial"],
                                   ["--fps", "10"], ["--tile-height", "100"]])
def test_output_flags_that_would_do_nothing_are_refused(deeplab18, tmp_path, flags):
    """#25.10 (outputs): --save-frames and --allow-partial without --video, --fps and
    --tile-height without a video or panels to draw were silently ignored."""
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=f"{flags[0]}.* only"):
        _demo(deeplab18["good"], out, "--scales", "64", "96", *flags)
    assert not out.exists()


def test_the_memory_available_honours_an_address_space_limit():
    """#25.6: `ulimit -v` (RLIMIT_AS) bounds what a run can allocate, as the machine's free
    memory does: the refusals compare with the least of them."""
    import subprocess
    import sys

    code = ("import resource\n"
            "resource.setrlimit(resource.RLIMIT_AS, (3 * 2 ** 30, resource.RLIM_INFINITY))\n"
            "from accel.utils.memory import available_memory\n"
            "print(available_memory())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert 0 <= int(proc.stdout) < 3 * GIB
