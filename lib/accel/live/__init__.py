"""Live input: segment a camera or network stream in real time (docs/live.md).

A frame's way: `sources` opens the camera, device or URL (or paces a file); the `reader`
thread keeps the newest frame; the `loop` takes it when the segmenter is free, and the
`schedule` decides keyframes on the real gap since the last one (frames of the source and
seconds); `outputs` draws the map, writes the mp4 at the source's rate and feeds the window
and the browser view (`server`). The demos' live flags and wiring are accel.cli.live.
"""
from accel.live.loop import LiveOptions, run_live

__all__ = ["LiveOptions", "run_live"]
