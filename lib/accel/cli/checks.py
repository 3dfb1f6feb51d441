"""The demos' checks before anything runs (issue #25): output flags that would do nothing,
frame and panel sizes against the memory available, parameters a frame-by-frame DeepLab
does not use, and the demo's output folder (accel.utils.outputs). The keyframe flags are
checked where they are defined (accel.cli.keyframes).

Each refusal is a ValueError (or CheckpointError) on one line naming the flag or file, the
value and what is allowed; accel.cli.run prints it and exits 1.
"""
import argparse
import logging
from typing import Any, Dict, Mapping, Optional, Tuple

import cv2

from accel.cli.limits import check_frame_memory, check_panel_memory, network_frame_size
from accel.utils.checkpoint import CheckpointError
from accel.utils.outputs import RunOutput

__all__ = ["DEMO_OUTPUTS", "demo_output", "check_output_flags", "source_image_size",
           "check_demo_sizes", "frame_network_params"]

logger = logging.getLogger("accel.demo")

# What a demo writes into --output (a re-run replaces the files of these names that the
# previous run recorded, and nothing else).
DEMO_OUTPUTS = ("metrics.json", "results.md", "timing.md", "video.mp4", "maps", "panels")


def demo_output(out_dir: str, overwrite: bool = False) -> RunOutput:
    """The demo's --output folder (metrics.json is its summary, written last)."""
    return RunOutput(out_dir, "the demo", DEMO_OUTPUTS, overwrite=overwrite,
                     legacy=("method", "interval", "outputs"), results="metrics.json")


def check_output_flags(args: argparse.Namespace) -> None:
    """Refuse output flags that would do nothing with the others given."""
    unused = []
    if not getattr(args, "video", None):
        unused += [(f, "with --video") for f in ("save_frames", "allow_partial")
                   if getattr(args, f, False)]
    if getattr(args, "no_video", False):
        if getattr(args, "fps", None) is not None:
            unused.append(("fps", "for the mp4 (drop --no-video)"))
        if getattr(args, "tile_height", None) is not None and not getattr(args, "panels", False):
            unused.append(("tile_height", "for panels or the mp4 (--panels, or drop "
                                          "--no-video)"))
    if unused:
        raise ValueError("; ".join(f"--{f.replace('_', '-')}: only used {why}"
                                   for f, why in unused))


def source_image_size(video=None, frame_path: Optional[str] = None) -> Optional[Tuple[int, int]]:
    """(height, width) of a source's first image: a VideoFrames (folder or file), or a frame
    file; None when it cannot be read cheaply (the run then reports it itself)."""
    if video is not None and getattr(video, "frames", None):
        frame_path = video.frames[0]
    elif video is not None:
        cap = cv2.VideoCapture(video.path)
        try:
            h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        finally:
            cap.release()
        return (h, w) if h > 0 and w > 0 else None
    if frame_path is None:
        return None
    image = cv2.imread(frame_path, cv2.IMREAD_UNCHANGED)
    return None if image is None else tuple(image.shape[:2])


def check_demo_sizes(args: argparse.Namespace, data, image_hw: Optional[Tuple[int, int]],
                     kind: str) -> None:
    """Refuse frame sizes (--scales/--stride or the config's SCALES) and --tile-height whose
    memory the machine does not have (accel.cli.limits); `kind`: 'accel',
    'accel-reference' or 'deeplab'."""
    if image_hw is None:
        return
    frame = network_frame_size(image_hw, data.scales, data.stride)
    flag = (f"--scales {args.scales[0]} {args.scales[1]}" if getattr(args, "scales", None)
            else f"SCALES {list(data.scales)} (frames of {image_hw[0]}x{image_hw[1]})")
    check_frame_memory(frame, kind, data.num_classes, flag)
    if getattr(args, "tile_height", None):  # panels show the frame without its padding
        check_panel_memory(args.tile_height, network_frame_size(image_hw, data.scales, 0),
                           f"--tile-height {args.tile_height}")


def frame_network_params(symbol_name: str, num_classes: int, arg_params: Mapping[str, Any],
                         aux_params: Mapping[str, Any], source: str, allow_extra: bool,
                         method: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The checkpoint's parameters that the frame-by-frame DeepLab `symbol_name` uses (its
    graph up to the scores, as accel.core.inference.FrameSegmenter binds it). Others are
    an error naming them, unless `allow_extra` (--allow-extra-params): then one warning,
    and they are left out."""
    from accel.symbols.deeplab import SCORES, deeplab_symbol

    symbol = deeplab_symbol(symbol_name, num_classes).get_internals()[SCORES]
    args_used, aux_used = set(symbol.list_arguments()), set(symbol.list_auxiliary_states())
    extra = sorted(n for n in arg_params if n not in args_used)
    extra += sorted("aux:" + n for n in aux_params if n not in aux_used)
    if extra and not allow_extra:
        raise CheckpointError(f"{source} holds {len(extra)} parameter(s) that {method} does "
                              f"not use: {', '.join(extra)}; is it a checkpoint of another "
                              f"network? (accept them with --allow-extra-params)")
    if extra:
        logger.warning("%s: %d parameter(s) not used by %s (ignored, --allow-extra-params): "
                       "%s", source, len(extra), method, ", ".join(extra))
    return ({k: v for k, v in arg_params.items() if k in args_used},
            {k: v for k, v in aux_params.items() if k in aux_used})
