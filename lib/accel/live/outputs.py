"""What a live run shows and keeps while it runs: the picture of each segmented frame (drawn
by accel.utils.visualize.PredictionWriter: input | prediction, with a legend), an mp4 at the
source's rate in which a skipped frame repeats the last picture (as a viewer saw it), the
newest picture for a window (`--show`) and for the browser view (`--serve`).

The mp4's rate is the source's, measured by the reader (an MJPEG stream announces none):
pictures wait in memory until it is known (the first second or so), then go to the file.
"""
import logging
import os
import re
import sys
from typing import Dict, List, Mapping, Optional, Tuple

import cv2
import numpy as np

from accel.utils.visualize import Mp4Writer, PredictionWriter

logger = logging.getLogger(__name__)

__all__ = ["LiveOutputs", "display_problem", "check_show", "Window"]


def display_problem(env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """Why a window cannot open here (no display, or an OpenCV without GUI), else None."""
    env = os.environ if env is None else env
    if sys.platform.startswith("linux") and not (env.get("DISPLAY")
                                                 or env.get("WAYLAND_DISPLAY")):
        return "no display here (DISPLAY is not set)"
    gui = re.search(r"GUI:\s*(\S+)", cv2.getBuildInformation())
    if gui is not None and gui.group(1).upper() == "NONE":
        return "this OpenCV has no GUI backend (a headless build)"
    return None


def check_show(env: Optional[Mapping[str, str]] = None) -> None:
    """Raise ValueError, on one line, when `--show` cannot open a window."""
    problem = display_problem(env)
    if problem is not None:
        raise ValueError(f"--show: {problem}; watch the run in a browser with --serve PORT "
                         f"instead")


class Window:
    """`--show`: the newest picture in an OpenCV window; q or Esc asks to stop."""

    title = "Accel live (q: stop)"

    def __init__(self):
        check_show()
        self._shown: Optional[np.ndarray] = None

    def update(self, picture: Optional[np.ndarray]) -> bool:
        """Show `picture` if it is new; False when the user asked to stop."""
        if picture is not None and picture is not self._shown:
            cv2.imshow(self.title, picture)
            self._shown = picture
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        """Close the window."""
        cv2.destroyWindow(self.title)


class LiveOutputs:
    """The pictures of a live run (see the module docstring). `frame` and `skipped` run on
    the writer thread, in the order of the source's frames.

    draw: a PredictionWriter without video (its maps with --save-frames), `pictures=True`.
    video: the mp4 path, or None. fps: its rate (None: the source's, `set_rate`).
    server: an MjpegServer to publish to, or None.
    """

    def __init__(self, draw: PredictionWriter, video: Optional[str],
                 fps: Optional[float] = None, server=None):
        self.draw, self.video, self.fps, self.server = draw, video, fps, server
        self.latest: Optional[np.ndarray] = None   # the newest picture (for a window)
        self.video_frames = 0
        self._mp4: Optional[Mp4Writer] = None
        self._pending: List[Tuple[np.ndarray, int]] = []   # (picture, times), rate unknown
        self._lead = 0                                     # frames before the first picture
        if video is not None and fps is not None:
            self.set_rate(fps)

    def set_rate(self, fps: float) -> None:
        """The mp4's frame rate (once; --fps wins): opens it, writes what waited."""
        if self.video is None or self._mp4 is not None:
            return
        self.fps = float(self.fps or fps)
        self._mp4 = Mp4Writer(self.video, self.fps)
        pending, self._pending = self._pending, []
        for picture, times in pending:
            self._write(picture, times)

    def _write(self, picture: np.ndarray, times: int) -> None:
        if self.video is None or times <= 0:
            return
        if self._mp4 is None:
            self._pending.append((picture, times))
        else:
            for _ in range(times):
                self._mp4.write(picture)

    def skipped(self, count: int) -> None:
        """`count` frames of the source not segmented: the last picture stays on screen."""
        if self.latest is None:
            self._lead += count
        else:
            self._write(self.latest, count)
        self.video_frames += count

    def frame(self, name: str, image: np.ndarray, pred: np.ndarray,
              extras: Dict[str, np.ndarray], is_key: bool) -> None:
        """A segmented frame: draw it, write it, publish it."""
        picture = self.draw(name, image, pred, extras, None, is_key)
        self._write(picture, 1 + self._lead)
        self._lead = 0
        self.video_frames += 1
        self.latest = picture
        if self.server is not None:
            self.server.publish(picture)

    def close(self, fallback_fps: float) -> Dict[str, object]:
        """Finish the mp4 (at `fallback_fps` when the rate was never known); returns
        {'maps', 'video', 'video_frames', 'video_fps'}."""
        if self.video is not None and self._mp4 is None and self._pending:
            self.set_rate(fallback_fps)
        path = self._mp4.close() if self._mp4 is not None else None
        out = self.draw.close()
        out.pop("panels", None)
        out.update(video=path, video_frames=self.video_frames if path else 0,
                   video_fps=self.fps if path else None)
        return out
