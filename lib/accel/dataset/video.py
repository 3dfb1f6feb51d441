"""Plain video without labels: a video file read by OpenCV, or a folder of frame images.

A video file that decodes fewer frames than its container announces is truncated or
corrupt: iterating it ends with TruncatedVideoError naming both counts, unless
`allow_partial` (then a warning), so a cut-off download is never taken for a short video.
"""
import logging
import os
import re
from typing import Iterator, List, Optional

import cv2
import numpy as np

from accel.utils.image import read_image

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff")


class TruncatedVideoError(ValueError):
    """A video file decodes fewer frames than its container announces."""


def _natural_key(name: str):
    """Sort frame_2 before frame_10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def list_frames(folder: str) -> List[str]:
    """Image files of a folder in natural order; raise naming the folder if there are none."""
    names = [n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS)]
    if not names:
        raise FileNotFoundError(f"no frame images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return [os.path.join(folder, n) for n in sorted(names, key=_natural_key)]


class VideoFrames:
    """Iterate the frames of a video file or frame folder as (H, W, 3) uint8 BGR images."""

    def __init__(self, path: str, max_frames: Optional[int] = None, allow_partial: bool = False):
        if not os.path.exists(path):
            raise FileNotFoundError(f"video not found: {path}")
        self.path = path
        self.max_frames = max_frames
        self.allow_partial = bool(allow_partial)
        self.decoded: Optional[int] = None  # frames the last full iteration decoded
        self.frames = list_frames(path) if os.path.isdir(path) else None
        if self.frames is None and path.lower().endswith(IMAGE_EXTENSIONS):
            self.frames = [path]           # one image: a video of one frame
        self.fps = 0.0
        if self.frames is None:
            cap = cv2.VideoCapture(path)
            try:
                ok, _ = cap.read() if cap.isOpened() else (False, None)
                if not ok:
                    raise ValueError(f"video file unreadable (OpenCV could not open or decode "
                                     f"it): {path}")
                self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
                # Some containers and streams do not know their length (-1 or 0).
                self._count = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
            finally:
                cap.release()
        logger.info("video %s: %s frames%s", path, len(self) if self.frames is not None
                    else f"~{self._count}", f" at {self.fps:g} fps" if self.fps else "")

    def __len__(self) -> int:
        """Frame count (for a video file, OpenCV's container estimate)."""
        n = len(self.frames) if self.frames is not None else self._count
        return n if self.max_frames is None else min(n, self.max_frames)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.frames is not None:
            for path in self.frames[:self.max_frames]:
                yield read_image(path)
            return
        cap = cv2.VideoCapture(self.path)
        try:
            n = 0
            while self.max_frames is None or n < self.max_frames:
                ok, frame = cap.read()
                if not ok:
                    break
                n += 1
                yield frame
        finally:
            cap.release()
        self.decoded = n
        wanted = self._count if self.max_frames is None else min(self._count, self.max_frames)
        if n < wanted:
            message = (f"video {self.path}: the container announces {self._count} frames but "
                       f"only {n} decode (truncated or corrupt file)")
            if not self.allow_partial:
                raise TruncatedVideoError(message + "; pass --allow-partial to accept the "
                                          f"{n} frames")
            logger.warning("%s; going on with %d frames (--allow-partial)", message, n)
