"""Pictures of predictions: palette colouring, side-by-side panels, mp4 writing, line plots.

Images are OpenCV's (H, W, 3) uint8 BGR throughout; palettes are the data sets' (N, 3) RGB
tables (`dataset.palette`). Plots are drawn with OpenCV so that no plotting library is
needed.
"""
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from accel.utils.segmath import colorize

logger = logging.getLogger(__name__)

# A codec that OpenCV's bundled FFmpeg writes without extra libraries (H.264 is often
# missing from pip wheels); 'mp4v' is MPEG-4 part 2 in an .mp4 container.
MP4_FOURCC = "mp4v"
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_GREY = (128, 128, 128)


def color_labels(pred: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) uint8 class map -> (H, W, 3) uint8 BGR picture (255 = ignore is black)."""
    return colorize(np.ascontiguousarray(pred, dtype=np.uint8), palette, bgr=True)


def save_image(path: str, image: np.ndarray) -> str:
    """Write an image with cv2.imwrite, creating the folder; raise naming the file on failure."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, image):
        raise OSError(f"could not write image {path} (shape {image.shape}, dtype {image.dtype})")
    return path


def _fit_height(image: np.ndarray, height: int, nearest: bool) -> np.ndarray:
    if image.shape[0] == height:
        return image
    width = max(1, int(round(image.shape[1] * height / image.shape[0])))
    return cv2.resize(image, (width, height),
                      interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def _fitted_text(img: np.ndarray, text: str, x: int, y: int, max_width: int,
                 scale: float, colour=(255, 255, 255)) -> None:
    """putText, shrinking the font until the text fits in `max_width` pixels."""
    width = cv2.getTextSize(text, _FONT, scale, 1)[0][0]
    if width > max_width > 0:
        scale *= max_width / width
    cv2.putText(img, text, (x, y), _FONT, max(scale, 0.25), colour, 1, cv2.LINE_AA)


def blank_tile(height: int, width: int, text: str = "") -> np.ndarray:
    """A grey tile with centred text, for a panel slot that has nothing to show."""
    tile = np.full((height, width, 3), 64, dtype=np.uint8)
    if text:
        scale = max(0.3, height / 400.0)
        (tw, th), _ = cv2.getTextSize(text, _FONT, scale, 1)
        cv2.putText(tile, text, ((width - tw) // 2, (height + th) // 2), _FONT, scale,
                    (200, 200, 200), 1, cv2.LINE_AA)
    return tile


def make_panel(tiles: Sequence[Tuple[str, Union[np.ndarray, str, None]]],
               tile_height: Optional[int] = None, title_height: Optional[int] = None
               ) -> np.ndarray:
    """Put (title, BGR image) tiles side by side, each with its title above it.

    Every tile is scaled to `tile_height` (default: the first image's height) keeping its
    aspect ratio; a text (or None: 'n/a') tile is a grey box the width of the first image.
    """
    images = [img for _, img in tiles if isinstance(img, np.ndarray)]
    if not images:
        raise ValueError("make_panel: every tile is empty")
    height = int(tile_height or images[0].shape[0])
    ref_width = _fit_height(images[0], height, True).shape[1]
    bar = int(title_height or max(14, height // 12))
    columns = []
    for title, img in tiles:
        body = (_fit_height(img, height, nearest=True) if isinstance(img, np.ndarray)
                else blank_tile(height, ref_width, img or "n/a"))
        head = np.zeros((bar, body.shape[1], 3), dtype=np.uint8)
        _fitted_text(head, title, 3, bar - max(3, bar // 4), body.shape[1] - 6, bar / 30.0)
        columns.append(np.vstack([head, body]))
    sep = np.full((height + bar, 2, 3), 255, dtype=np.uint8)
    out = [columns[0]]
    for col in columns[1:]:
        out += [sep, col]
    return np.hstack(out)


def legend(class_names: Sequence[str], palette: np.ndarray, width: int,
           row_height: int = 16) -> np.ndarray:
    """A strip of colour swatches with class names, wrapped to `width` pixels (BGR)."""
    cell = max(90, row_height * 7)
    per_row = max(1, width // cell)
    rows = (len(class_names) + per_row - 1) // per_row
    out = np.zeros((rows * row_height, width, 3), dtype=np.uint8)
    for i, name in enumerate(class_names):
        y, x = (i // per_row) * row_height, (i % per_row) * cell
        r, g, b = (int(c) for c in palette[i])
        cv2.rectangle(out, (x + 2, y + 2), (x + row_height - 2, y + row_height - 2), (b, g, r), -1)
        cv2.putText(out, name, (x + row_height + 2, y + row_height - 4), _FONT,
                    row_height / 40.0, (255, 255, 255), 1, cv2.LINE_AA)
    return out


class Mp4Writer:
    """Writes BGR frames to an .mp4 (codec `MP4_FOURCC`); opened on the first frame.

    Frames go to a hidden temporary file in the same folder that replaces `path` on
    `close()`, so an interrupted run never leaves a truncated video under the final name.
    Later frames of another size are resized to the first frame's size.
    """

    def __init__(self, path: str, fps: float = 15.0):
        if not path.lower().endswith(".mp4"):
            raise ValueError(f"video output {path}: expected a .mp4 file name")
        if fps <= 0:
            raise ValueError(f"video output {path}: fps must be > 0, got {fps}")
        self.path, self.fps = path, float(fps)
        self.frames = 0
        self._size: Optional[Tuple[int, int]] = None
        self._writer = None
        folder, name = os.path.split(os.path.abspath(path))
        # OpenCV picks the container from the extension, so the temporary name ends in .mp4.
        self._tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp.mp4")

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 BGR frame."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"video {self.path}: expected (H, W, 3) uint8 BGR frames, got "
                             f"shape {frame.shape} dtype {frame.dtype}")
        if self._writer is None:
            self._open(frame.shape[1], frame.shape[0])
        if (frame.shape[1], frame.shape[0]) != self._size:
            frame = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(np.ascontiguousarray(frame))
        self.frames += 1

    def _open(self, width: int, height: int) -> None:
        # mp4v wants even sizes; odd ones are resized up by one pixel.
        self._size = (width + width % 2, height + height % 2)
        os.makedirs(os.path.dirname(self._tmp), exist_ok=True)
        self._writer = cv2.VideoWriter(self._tmp, cv2.VideoWriter_fourcc(*MP4_FOURCC),
                                       self.fps, self._size)
        if not self._writer.isOpened():
            self.abort()
            raise OSError(f"OpenCV could not open a {MP4_FOURCC} video writer for {self.path} "
                          f"({self._size[0]}x{self._size[1]} at {self.fps:g} fps)")

    def abort(self) -> None:
        """Stop without producing the file (the temporary file is removed)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if os.path.exists(self._tmp):
            os.remove(self._tmp)

    def close(self) -> Optional[str]:
        """Finish the file; returns its path, or None when no frame was written."""
        if self._writer is None:
            return None
        self._writer.release()
        self._writer = None
        os.replace(self._tmp, self.path)
        logger.info("wrote %s (%d frames, %dx%d, %g fps)", self.path, self.frames,
                    self._size[0], self._size[1], self.fps)
        return self.path

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class PredictionWriter:
    """The demo's pictures of a frame: coloured map, side-by-side panel, and a video frame.

    Panel: input | [DFF | update branch] | <method> | [ground truth]; the branch columns
    when `branches` (score-fusion Accel), the ground truth when the frame has a label.
    On a keyframe the DFF column shows the keyframe network's output (no warping yet) and
    the update column says so. Files: maps/<name>.png, panels/<name>.png, and `video`.
    Each call returns the picture it drew (`pictures`: draw one even when nothing is written,
    for a live view).
    """

    def __init__(self, out_dir: str, palette: np.ndarray, class_names: Sequence[str],
                 method: str, branches: bool = False, save_maps: bool = True,
                 save_panels: bool = False, video: Optional[str] = None, fps: float = 15.0,
                 tile_height: Optional[int] = None, pictures: bool = False):
        """`tile_height` default: the frame's height, within 192..360 pixels."""
        self.out_dir, self.palette, self.class_names = out_dir, palette, list(class_names)
        self.method, self.branches = method, branches
        self.save_maps, self.save_panels, self.pictures = save_maps, save_panels, pictures
        self.tile_height = tile_height
        self.video = Mp4Writer(video, fps) if video else None
        self.maps = self.panels = 0
        self._legend: Optional[np.ndarray] = None

    def __call__(self, name: str, image: np.ndarray, pred: np.ndarray,
                 extras: Dict[str, np.ndarray], label: Optional[np.ndarray],
                 is_key: bool) -> Optional[np.ndarray]:
        """Write the pictures of one frame (arrays share one size; see tester.Sink); returns
        the panel drawn, or None when none is."""
        colour = color_labels(pred, self.palette)
        if self.save_maps:
            save_image(os.path.join(self.out_dir, "maps", name + ".png"), colour)
            self.maps += 1
        if not (self.save_panels or self.video or self.pictures):
            return None
        tiles: List[Tuple[str, Union[np.ndarray, str, None]]] = [("input", image)]
        if self.branches:
            dff = extras.get("dff")
            update = extras.get("update")
            tiles += [("DFF", color_labels(dff, self.palette) if dff is not None
                       else colour if is_key else None),
                      ("update branch", color_labels(update, self.palette)
                       if update is not None else "keyframe" if is_key else None)]
        tiles.append((self.method + (" (key)" if is_key else ""), colour))
        if label is not None:
            tiles.append(("ground truth", color_labels(label, self.palette)))
        # Small frames are drawn larger so the titles stay legible; large ones smaller.
        panel = make_panel(tiles, self.tile_height or min(max(image.shape[0], 192), 360))
        if self._legend is None or self._legend.shape[1] != panel.shape[1]:
            self._legend = legend(self.class_names, self.palette, panel.shape[1])
        panel = np.vstack([panel, self._legend])
        if self.save_panels:
            save_image(os.path.join(self.out_dir, "panels", name + ".png"), panel)
            self.panels += 1
        if self.video is not None:
            self.video.write(panel)
        return panel

    def close(self) -> Dict[str, object]:
        """Finish the video; returns {'maps', 'panels', 'video', 'video_frames'}."""
        path = self.video.close() if self.video is not None else None
        return {"maps": self.maps, "panels": self.panels, "video": path,
                "video_frames": self.video.frames if self.video is not None else 0}

    def abort(self) -> None:
        """Drop the unfinished video."""
        if self.video is not None:
            self.video.abort()
