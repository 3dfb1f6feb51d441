"""Live input: segment a camera or network stream in real time (docs/live.md).

A frame's way: `sources` opens the camera, device or URL (or paces a file); the `reader`
thread keeps the newest frame; the `loop` takes it when the segmenter is free, and the
`schedule` decides keyframes on the real gap since the last one (frames of the source and
seconds); `outputs` draws the map, writes the mp4 at the source's rate and feeds the window
and the browser view (`server`). `demo` holds the demos' live flags and wiring.
"""
from accel.live.demo import add_live_arguments, live_demo, live_requested
from accel.live.loop import LiveOptions, run_live

__all__ = ["add_live_arguments", "live_demo", "live_requested", "LiveOptions", "run_live"]
