"""Live input (accel.live) without a camera: the bundled clip served as an MJPEG stream on
127.0.0.1 at a fixed rate (tests/stream_helpers.py). Frames received, frames skipped by a
slow model with one mp4 frame per source frame, keyframes on the real gap, clean ends (the
server stops, a read timeout, SIGTERM of the real demo), the browser view, and --show
refused without a display. Loopback addresses only; each test bounded to seconds."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import cv2

from accel.core.inference import FrameObservation, FrameResult
from accel.keyframes.policies import FixedInterval, FlowMagnitude
from accel.core.tester import prepare_frame
from accel.dataset.camvid import CAMVID_CLASSES, CAMVID_PALETTE
from accel.cli.live import live_requested
from accel.live import LiveOptions, run_live
from accel.live.outputs import LiveOutputs, check_show
from accel.live.schedule import RealGapSchedule
from accel.live.server import MjpegServer
from accel.live.sources import CaptureSource, PacedFrames, SourceError, is_live_source
from accel.utils.visualize import PredictionWriter
from stream_helpers import ClipServer, clip_jpegs
from video_helpers import count_video_frames

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "sample_data" / "camvid" / "val"
FPS = 15.0


@pytest.fixture(scope="module")
def clip():
    return clip_jpegs(str(CLIP))


class FakeSegmenter:
    """The segmenter interface of accel.core.inference (reset, step(data, is_key), interval,
    policy) taking `seconds` per frame; like VideoSegmenter it shows its policy each frame
    (flow of ones on non-key frames). `calls`: (data[0, 0, 0, 0], is_key) per frame."""

    def __init__(self, seconds: float = 0.0, interval: int = 1, policy=None):
        self.seconds, self.interval, self.policy = seconds, interval, policy
        self.calls = []
        self.index = self.age = 0

    def reset(self):
        self.index = self.age = 0
        if self.policy is not None:
            self.policy.reset()

    def step(self, data, is_key=None):
        t0 = time.perf_counter()
        time.sleep(self.seconds)
        is_key = self.index % self.interval == 0 if is_key is None else is_key
        self.calls.append((float(data[0, 0, 0, 0]), is_key))
        self.age = 0 if is_key else self.age + 1
        obs = FrameObservation(self.index, is_key, self.age,
                               flow=None if is_key else np.ones((2, 2, 2), np.float32))
        if self.policy is not None:
            self.policy.next_is_key(obs)
        self.index += 1
        return FrameResult(np.zeros(data.shape[2:], np.uint8), is_key,
                           time.perf_counter() - t0, {}, obs)


def _prepare(image):
    return prepare_frame(image, (0.0, 0.0, 0.0), (64, 96), 32)


def _outputs(folder: Path, server=None) -> LiveOutputs:
    draw = PredictionWriter(str(folder), CAMVID_PALETTE, CAMVID_CLASSES, "fake",
                            save_maps=False, pictures=True)
    return LiveOutputs(draw, str(folder / "video.mp4"), None, server)


def _run(source, segmenter, folder: Path, server=None, stop=None, **options):
    outputs = _outputs(folder, server)
    return run_live(source, segmenter, _prepare, outputs, LiveOptions(**options), stop=stop,
                    metrics_path=str(folder / "metrics.json"), info={"test": True})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_stream_is_received_whole_and_ends_cleanly_when_the_server_stops(clip, tmp_path):
    with ClipServer(clip, FPS, count=30) as server:
        res = _run(CaptureSource(server.url, 5.0), FakeSegmenter(), tmp_path)
    assert res["frames_seen"] == 30 == server.sent
    assert res["frames_processed"] + res["frames_skipped"] == 30
    assert res["end"] == "the source ended" and res["complete"]
    assert res["source_fps"] == pytest.approx(FPS, rel=0.1)
    assert res["outputs"]["video_fps"] == pytest.approx(FPS, rel=0.05)
    assert count_video_frames(str(tmp_path / "video.mp4")) == 30
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["complete"] and saved["frames_seen"] == 30 and saved["test"]


def test_a_slower_model_skips_frames_and_the_mp4_keeps_one_frame_per_source_frame(clip,
                                                                                 tmp_path):
    """A model taking 0.2 s per frame on a 15 fps stream: about 2 of 3 frames skipped, the
    queue never above 1 frame, the frame taken at most about one source frame old, and
    the mp4 still one frame per frame of the source (skipped ones repeat the last map)."""
    with ClipServer(clip, FPS, count=45) as server:
        res = _run(CaptureSource(server.url, 5.0), FakeSegmenter(0.2), tmp_path)
    assert res["frames_seen"] == 45
    assert res["frames_skipped"] >= 15 and res["frames_processed"] >= 5
    assert res["queue"] == {"size": 1, "max": 1, "dropping": True}
    assert res["wait"]["max"] < 2 / FPS + 0.1            # the newest frame, not a backlog
    assert res["latency"]["p99"] < 0.2 + 2 / FPS + 0.3   # network + a frame (+ a busy machine)
    assert count_video_frames(str(tmp_path / "video.mp4")) == 45


def test_keyframes_follow_the_real_gap_in_source_frames(tmp_path):
    """Fixed interval 4 on a 30 fps source with a model taking 0.09 s: a keyframe when 4 or
    more source frames have passed since the last one, however few were segmented."""
    frames = [np.full((64, 96, 3), i, np.uint8) for i in range(45)]   # pixel value = index
    seg = FakeSegmenter(0.09, interval=4)
    res = _run(PacedFrames(frames, 30.0), seg, tmp_path)
    taken = [(int(round(v)), k) for v, k in seg.calls]
    assert res["frames_skipped"] > 0 and taken[0][1]
    last_key = taken[0][0]
    for index, is_key in taken[1:]:
        assert is_key == (index - last_key >= 4), (index, last_key, taken)
        last_key = index if is_key else last_key
    keys = [i for i, (_, k) in enumerate(taken) if k]
    assert min(np.diff(keys)) < 4            # fewer segmented frames than the interval
    assert res["schedule"]["source_gap_max"] >= 4


class FrameByFrame(FakeSegmenter):
    """Like FrameSegmenter (deeplab/demo.py): every frame a keyframe, `step(data)` only."""

    def step(self, data):
        return super().step(data)


def test_a_frame_by_frame_network_runs_live_with_every_frame_a_keyframe(tmp_path):
    frames = [np.full((64, 96, 3), i, np.uint8) for i in range(12)]
    res = _run(PacedFrames(frames, 30.0), FrameByFrame(0.05), tmp_path)
    assert res["keyframes"] == res["frames_processed"] >= 4
    assert res["outputs"]["video_frames"] == 12 == res["frames_seen"]


def test_max_frames_and_duration_bound_a_run(tmp_path):
    frames = [np.full((64, 96, 3), i, np.uint8) for i in range(90)]
    res = _run(PacedFrames(frames, 30.0), FakeSegmenter(0.02), tmp_path / "n", max_frames=8)
    assert res["end"] == "--max-frames 8 reached" and res["frames_seen"] == 8
    assert count_video_frames(str(tmp_path / "n" / "video.mp4")) == 8
    res = _run(PacedFrames(frames, 30.0), FakeSegmenter(0.02), tmp_path / "d", duration_s=0.5)
    assert res["end"] == "--duration 0.5 s reached" and res["complete"]
    assert 0.5 <= res["duration_s"] < 1.5 and 10 <= res["frames_seen"] < 90


def test_the_schedule_bounds_seconds_and_counts_policy_gaps_in_source_frames():
    seconds = RealGapSchedule(FakeSegmenter(interval=100), max_gap_seconds=1.0)
    # Frames taken every 0.3 s: the one at 0.9 s is a keyframe, as the next would pass 1 s.
    assert [seconds.decide(i, 0.1 * i) for i in (0, 3, 6, 9, 12, 15, 18)] == \
        [True, False, False, True, False, False, True]

    def flags(policy, indices):
        seg = FakeSegmenter(policy=policy)
        out = []
        with RealGapSchedule(seg) as schedule:
            for i in indices:
                out.append(schedule.decide(i, i / FPS))
                seg.step(np.zeros((1, 3, 2, 2), np.float32), is_key=out[-1])
        assert seg.policy is policy     # restored after the run
        return out
    # min_gap 6 source frames, every flow above threshold 0, frames taken 4 apart: after
    # the frame at gap 4 the next is at least 5 (too early), after the one at 8 it is due;
    # a keyframe every 3rd segmented frame (counted in segmented frames, every 6th).
    assert flags(FlowMagnitude(0.0, min_gap=6), [0, 4, 8, 12, 16, 20, 24]) == \
        [True, False, False, True, False, False, True]
    # max_gap 6 with a threshold never reached: the gap when the frame is taken decides.
    assert flags(FlowMagnitude(1e9, max_gap=6), [0, 5, 7, 9, 13]) == \
        [True, False, True, False, True]
    # The fixed interval as a policy object keys as the schedule's own rule: 4+ source frames.
    plain = RealGapSchedule(FakeSegmenter(interval=4))
    assert flags(FixedInterval(4), [0, 3, 6, 9, 12]) == [True, False, True, False, True] == \
        [plain.decide(i, i / FPS) for i in [0, 3, 6, 9, 12]]
    # Without source gaps (a file, every frame segmented), a policy counts its own frames.
    policy, flow = FlowMagnitude(1e9, max_gap=3), np.ones((2, 2, 2), np.float32)
    assert policy.next_is_key(FrameObservation(1, False, 1, flow)) is False
    assert policy.next_is_key(FrameObservation(2, False, 2, flow)) is True


def test_a_source_that_stops_sending_ends_at_the_read_timeout(clip, tmp_path):
    with ClipServer(clip, FPS, count=5, stall=True) as server:
        t0 = time.monotonic()
        res = _run(CaptureSource(server.url, 1.0), FakeSegmenter(), tmp_path, read_timeout_s=1.0)
        assert time.monotonic() - t0 < 6
    assert "read timeout" in res["end"] and res["complete"]
    assert res["frames_seen"] == 5
    assert count_video_frames(str(tmp_path / "video.mp4")) == 5


def test_sources_that_cannot_open_and_flags_without_live_input_are_one_line_errors():
    assert all(map(is_live_source, ["0", "/dev/video0", "rtsp://cam/1", "http://h:8/s.mjpg",
                                    "udp://127.0.0.1:5000"]))
    assert not any(map(is_live_source, ["clip.mp4", "frames/", str(CLIP)]))
    url = f"http://127.0.0.1:{_free_port()}/stream.mjpg"
    with pytest.raises(SourceError, match="could not open the stream") as err:
        CaptureSource(url, 2.0)
    assert url in str(err.value) and "\n" not in str(err.value)
    from accel.cli.demo import accel_parser
    parse = accel_parser("").parse_args
    assert live_requested(parse(["--video", url])) and live_requested(
        parse(["--video", "clip.mp4", "--realtime"]))
    assert not live_requested(parse(["--video", "clip.mp4"]))
    with pytest.raises(ValueError, match="--serve is for live input"):
        live_requested(parse(["--video", "clip.mp4", "--serve", "8080"]))
    with pytest.raises(ValueError, match="--realtime needs --video"):
        live_requested(parse(["--realtime"]))


def test_show_is_refused_without_a_display(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match=r"--show: no display here \(DISPLAY is not set\)"):
        check_show({})
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    from accel.cli.demo import accel_parser
    from accel.cli.live import live_demo
    args = accel_parser("").parse_args(["--video", "0", "--show"])
    opened = []
    with pytest.raises(ValueError, match="--serve PORT instead"):   # before any camera opens
        live_demo(args, None, None, 1, "m", False, str(tmp_path), {}, opened.append)
    assert not opened


def test_show_draws_each_picture_in_a_window_and_q_stops_the_run(monkeypatch, tmp_path):
    """Where a display exists (faked here: this OpenCV has no GUI): the newest picture is
    shown, and q ends the run cleanly."""
    import accel.live.outputs as outputs
    shown = []
    monkeypatch.setattr(outputs, "display_problem", lambda env=None: None)
    monkeypatch.setattr(cv2, "imshow", lambda title, picture: shown.append(picture))
    monkeypatch.setattr(cv2, "waitKey", lambda ms: ord("q") if len(shown) >= 3 else -1)
    monkeypatch.setattr(cv2, "destroyWindow", lambda title: None)
    frames = [np.full((64, 96, 3), i, np.uint8) for i in range(60)]
    res = _run(PacedFrames(frames, 30.0), FakeSegmenter(0.02), tmp_path, show=True)
    assert res["end"] == "stopped (window closed)" and res["complete"]
    assert len(shown) == 3 and len({id(p) for p in shown}) == 3   # each picture once
    assert res["frames_seen"] < 60


def _read_part(stream):
    """One JPEG of a multipart/x-mixed-replace stream."""
    length = None
    while True:
        line = stream.readline()
        assert line, "stream closed"
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
        elif line in (b"\r\n", b"\n") and length is not None:
            return stream.read(length)


def test_serve_delivers_jpeg_frames_to_a_browser(clip, tmp_path):
    view = MjpegServer(0)   # 127.0.0.1, any free port
    assert view.bind == "127.0.0.1"
    stop = threading.Event()
    with ClipServer(clip, FPS, count=150) as server:
        run = threading.Thread(target=_run, args=(CaptureSource(server.url, 5.0),
                                                  FakeSegmenter(), tmp_path, view, stop))
        run.start()
        try:
            page = urllib.request.urlopen(view.url, timeout=5).read().decode()
            assert "/stream.mjpg" in page
            with urllib.request.urlopen(view.url + "stream.mjpg", timeout=5) as stream:
                assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
                pictures = [cv2.imdecode(np.frombuffer(_read_part(stream), np.uint8),
                                         cv2.IMREAD_COLOR) for _ in range(3)]
        finally:
            stop.set()
            run.join(10)
            view.close()
    assert not run.is_alive()
    assert all(p is not None and p.ndim == 3 and p.shape[0] >= 64 for p in pictures)
    assert json.loads((tmp_path / "metrics.json").read_text())["end"] == "stopped"


@pytest.fixture(scope="module")
def accel18_prefix(tmp_path_factory):
    from accel.core.initializer import initialize_network
    from accel.utils.checkpoint import save_checkpoint
    from dff_deeplab.symbol import AccelNetwork
    prefix = str(tmp_path_factory.mktemp("model") / "accel-18")
    save_checkpoint(prefix, 0, *initialize_network(AccelNetwork("18", 11), (1, 3, 64, 96)))
    return prefix


@pytest.mark.slow
def test_sigterm_ends_the_live_demo_cleanly(clip, accel18_prefix, tmp_path):
    """The real demo on the stream: SIGTERM once it segments; it ends within seconds with a
    finished mp4 of one frame per source frame and metrics.json marked complete."""
    out = tmp_path / "live"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "lib"), str(ROOT)]))
    with ClipServer(clip, FPS) as server:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "dff_deeplab" / "demo.py"), "-v", "18", "-i", "3",
             "--model", accel18_prefix, "--video", server.url, "--scales", "64", "96",
             "--cpu", "--reference-path", "--output", str(out)],  # (quicker to set up)
            env=env, stderr=subprocess.PIPE, text=True)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
        reader.start()
        deadline = time.monotonic() + 25
        while not any("accel.live: live " in line for line in lines):
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "no live log line in 25 s:\n" + "".join(lines)
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        rc = proc.wait(timeout=15)
        took = time.monotonic() - t0
    reader.join(5)
    assert rc == 0, "".join(lines)
    assert took < 5, f"SIGTERM took {took:.1f} s"   # the loop's part: a frame, then < 1 s
    res = json.loads((out / "metrics.json").read_text())
    assert res["complete"] and res["end"] == "stopped (SIGTERM)"
    assert res["frames_processed"] >= 1 and res["method"] == "Accel-18"
    assert count_video_frames(str(out / "video.mp4")) == res["frames_seen"] == \
        res["outputs"]["video_frames"]
    assert "Latency, capture to map" in (out / "results.md").read_text()
