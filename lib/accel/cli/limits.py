"""Sizes a run can afford: the memory a frame size or a panel size needs, refused with the
number and the limit before anything is allocated (issue #25.6).

The network's memory grows with the pixels of its (padded) input frame. The bytes per
pixel below are the growth of the peak resident memory of a demo on the CPU (batch 1,
frames of 256x384 to 768x1024, 11 classes, measured with /usr/bin/time on MXNet 1.9.1:
about 560, 800 and 380), rounded up; they are estimates, not bounds. The memory available
is the least of the machine's, the cgroup's and the address-space limit's
(accel.utils.memory). At 4000x5344 (--scales 4000 8000 on CamVid) the fast path's
non-key graph failed to allocate under a 15 GB address-space limit, beyond this estimate.
Separately, MXNet indexes a tensor with 32-bit integers: a buffer of 2^31 elements or more
crashes it, and the largest ones of a frame are the class scores at full resolution
(classes x H x W) and, where the official graphs upsample by deconvolution (kernel 32,
stride 16), its column buffer (classes x 32 x 32 x H/16 x W/16 = 4 classes x H x W).
"""
import logging
import math
from typing import Optional, Sequence, Tuple

from accel.utils import image as imutil
from accel.utils.memory import available_memory, format_bytes

__all__ = ["BYTES_PER_PIXEL", "INT32_ELEMENTS", "network_frame_size", "check_frame_memory",
           "check_panel_memory"]

logger = logging.getLogger(__name__)

# Peak memory growth per input pixel: 'accel' fast CPU path, 'accel-reference' (official
# graphs, --reference-path), 'deeplab' (frame by frame).
BYTES_PER_PIXEL = {"accel": 600, "accel-reference": 850, "deeplab": 400}
INT32_ELEMENTS = 2 ** 31 - 1
# A panel: up to 5 tiles of 3 bytes per pixel, held about 4 times over (tiles, the panel,
# the legend stacked under it, the video writer's copy).
PANEL_BYTES_PER_PIXEL = 5 * 3 * 4


def network_frame_size(image_hw: Tuple[int, int], scales: Sequence[int], stride: int
                       ) -> Tuple[int, int]:
    """(H, W) of the network input for an image of `image_hw`: resized by SCALES, padded to
    a multiple of `stride`."""
    h, w, _ = imutil.scaled_size(int(image_hw[0]), int(image_hw[1]), scales)
    if stride:
        h, w = int(math.ceil(h / stride) * stride), int(math.ceil(w / stride) * stride)
    return h, w


def check_frame_memory(frame_hw: Tuple[int, int], kind: str, num_classes: int, flag: str,
                       extra_bytes: int = 0, available: Optional[int] = None) -> int:
    """Refuse (ValueError) a network input of `frame_hw` that needs more memory than is
    available or a tensor MXNet cannot index; returns the estimate in bytes. `kind`: a key
    of BYTES_PER_PIXEL; `flag`: what set the size (e.g. '--scales 4000 8000');
    `extra_bytes`: memory the run needs beside the frame (e.g. a model not yet loaded)."""
    h, w = int(frame_hw[0]), int(frame_hw[1])
    pixels = h * w
    upsampled = num_classes * pixels * (4 if kind != "accel" else 1)
    if upsampled > INT32_ELEMENTS:
        raise ValueError(f"{flag}: network input frames of {h}x{w} make a buffer of "
                         f"{upsampled:,} elements (the class scores at full size), more than "
                         f"the {INT32_ELEMENTS:,} MXNet can index; use smaller --scales "
                         f"(at most about {int(INT32_ELEMENTS / (upsampled / pixels)):,} "
                         f"pixels per frame)")
    need = pixels * BYTES_PER_PIXEL[kind] + int(extra_bytes)
    available = _refuse_beyond(
        need, available, f"{flag}: network input frames of {h}x{w}",
        f" (about {BYTES_PER_PIXEL[kind]} bytes per pixel"
        f"{' plus the model' if extra_bytes else ''})", "use smaller --scales")
    logger.debug("frames %dx%d: about %s of memory for the network (%s available)", h, w,
                 format_bytes(need), format_bytes(available) if available else "unknown")
    return need


def check_panel_memory(tile_height: int, frame_hw: Tuple[int, int], flag: str,
                       available: Optional[int] = None) -> int:
    """Refuse (ValueError) panels whose tiles of `tile_height` rows (frames of `frame_hw`,
    width in proportion) need more memory than is available; returns the estimate."""
    h, w = int(frame_hw[0]), int(frame_hw[1])
    tile_w = max(1, int(round(w * tile_height / max(h, 1))))
    need = tile_height * tile_w * PANEL_BYTES_PER_PIXEL
    _refuse_beyond(need, available, f"{flag}: panels of tiles {tile_height}x{tile_w} (frames "
                   f"of {h}x{w})", "", "use a smaller --tile-height (default: the frame's "
                   "height within 192..360)")
    return need


def _refuse_beyond(need: int, available: Optional[int], what: str, detail: str,
                   advice: str) -> Optional[int]:
    """ValueError "<what> need about N of memory<detail>, more than the M available;
    <advice>" when `need` bytes exceed `available` (None: read now, accel.utils.memory);
    returns the memory available (None: unknown)."""
    available = available_memory() if available is None else available
    if available is not None and need > available:
        raise ValueError(f"{what} need about {format_bytes(need)} of memory{detail}, more "
                         f"than the {format_bytes(available)} available; {advice}")
    return available
