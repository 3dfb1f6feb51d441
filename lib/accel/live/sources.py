"""Live sources: a camera index, a device path or a network stream read through OpenCV, and a
file or frame folder paced at its own rate (a stand-in for a camera, `--realtime`).

A source gives `read() -> (H, W, 3) uint8 BGR frame, or None at its end`, `fps` (what it
announces; 0 when unknown; FFmpeg guesses 25 for an MJPEG stream, so the live loop measures
the rate itself) and `close()`. Network streams open and read with a timeout (OpenCV's
FFmpeg backend); a source that cannot be opened is a one-line `SourceError`.
"""
import logging
import os
import time
from typing import Iterable, Iterator, Optional
from urllib.parse import urlsplit

import cv2
import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["STREAM_SCHEMES", "SourceError", "CaptureSource", "PacedFrames", "is_live_source",
           "describe_source"]

# URL schemes read as live streams (OpenCV's FFmpeg backend opens them).
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt")


class SourceError(OSError):
    """A live source that cannot be opened (one line naming it)."""


def is_live_source(spec: str) -> bool:
    """A camera index ('0'), a device path ('/dev/video0') or a stream URL ('rtsp://...')."""
    spec = str(spec)
    return (spec.isdigit() or spec.startswith("/dev/")
            or urlsplit(spec).scheme.lower() in STREAM_SCHEMES)


def describe_source(spec: str) -> str:
    """'camera 0', 'device /dev/video0' or 'stream rtsp://...'."""
    spec = str(spec)
    if spec.isdigit():
        return f"camera {spec}"
    return f"device {spec}" if spec.startswith("/dev/") else f"stream {spec}"


class CaptureSource:
    """A camera, device or stream URL read by cv2.VideoCapture.

    timeout_s: for streams, FFmpeg's open and read timeouts (a read that waits longer ends
    the stream); cameras and devices use their driver's own.
    """

    def __init__(self, spec: str, timeout_s: float = 10.0):
        self.spec, self.name = str(spec), describe_source(spec)
        if self.spec.isdigit():
            cap = cv2.VideoCapture(int(self.spec))
        elif self.spec.startswith("/dev/"):
            if not os.path.exists(self.spec):
                raise SourceError(f"--video {self.spec}: no such device")
            cap = cv2.VideoCapture(self.spec)
        else:
            ms = int(max(1.0, timeout_s * 1000))
            cap = cv2.VideoCapture(self.spec, cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms,
                                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        if not cap.isOpened():
            cap.release()
            hint = ("is the camera connected and free?" if not urlsplit(self.spec).scheme
                    else "is the server up and the URL a stream OpenCV's FFmpeg reads "
                         "(RTSP, HTTP MJPEG, UDP)?")
            raise SourceError(f"--video {self.spec}: could not open the {self.name}; {hint}")
        self._cap = cap
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        logger.info("%s opened (%s backend%s)", self.name, cap.getBackendName(),
                    f", announces {self.fps:g} fps" if self.fps > 0 else "")

    def read(self) -> Optional[np.ndarray]:
        """The next frame, or None when the source ends, fails or times out."""
        ok, frame = self._cap.read()
        return frame if ok else None

    def close(self) -> None:
        """Release the device or connection."""
        self._cap.release()


class PacedFrames:
    """Frames of an iterable (a VideoFrames file or folder) handed out no faster than `fps`,
    as a camera would: frame i is ready at start + i / fps."""

    def __init__(self, frames: Iterable[np.ndarray], fps: float, name: str = "file"):
        if fps <= 0:
            raise ValueError(f"{name}: pacing needs a frame rate > 0, got {fps} (give --fps)")
        self.fps, self.name = float(fps), name
        self._frames: Iterator[np.ndarray] = iter(frames)
        self._start: Optional[float] = None
        self._count = 0

    def read(self) -> Optional[np.ndarray]:
        """The next frame at its time, or None after the last one."""
        now = time.monotonic()
        if self._start is None:
            self._start = now
        delay = self._start + self._count / self.fps - now
        if delay > 0:
            time.sleep(delay)
        frame = next(self._frames, None)
        self._count += frame is not None
        return frame

    def close(self) -> None:
        """Stop reading (a generator's file is closed)."""
        close = getattr(self._frames, "close", None)
        if close is not None:
            close()
