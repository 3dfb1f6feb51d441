"""The demos' live input: its flags (`add_live_arguments`), whether a command line asks for
it (`live_requested`), and `live_demo`, which opens the source and the outputs from the
flags and runs accel.live.loop.run_live (docs/live.md).

`--video` takes a camera index, a device path or a stream URL (real time by default), or a
file / frame folder (`--realtime`: paced at its frame rate, as a camera would send it).
"""
import argparse
import logging
import os
from typing import Any, Dict

from accel.cli.flags import number, positive_float, positive_int
from accel.core.tester import prepare_frame
from accel.core.timing import format_ms, timing_table
from accel.dataset import VideoFrames
from accel.live.loop import LiveOptions, run_live
from accel.live.outputs import LiveOutputs, check_show
from accel.live.server import MjpegServer
from accel.live.sources import CaptureSource, PacedFrames, is_live_source
from accel.utils.io import write_json, write_text
from accel.utils.visualize import PredictionWriter

logger = logging.getLogger("accel.live")

__all__ = ["add_live_arguments", "live_requested", "live_demo"]

# Flags of the live group and their defaults: set without live input, they are an error.
LIVE_ONLY = {"queue_size": 1, "read_timeout": 10.0, "max_gap_seconds": None, "duration": None,
             "max_frames": None, "show": False, "serve": None, "bind": "127.0.0.1"}


def add_live_arguments(parser: argparse.ArgumentParser) -> None:
    """Live input: real time, keyframes in time, bounds of a run, the window and browser view."""
    live = parser.add_argument_group("live input (--video CAMERA | DEVICE | URL; docs/live.md)")
    live.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=None,
                      help="segment the newest frame whenever the network is free, skipping "
                           "the frames that came meanwhile (default: on for a camera, device "
                           "or URL; off for a file, which --realtime paces at its frame rate)")
    live.add_argument("--queue-size", type=positive_int, default=1, metavar="N",
                      help="frames the reader keeps for the network (default 1: the newest)")
    live.add_argument("--read-timeout", type=positive_float, default=10.0,
                      metavar="SECONDS", help="a source that sends nothing for this long "
                                              "ends the run (default 10)")
    live.add_argument("--max-gap-seconds", type=positive_float, default=None,
                      metavar="SECONDS", help="at most this long from one keyframe to the "
                                              "next (capture time)")
    live.add_argument("--duration", type=positive_float, default=None, metavar="SECONDS",
                      help="end the run this long after the first map (the network's "
                           "set-up on the first frame excluded)")
    live.add_argument("--max-frames", type=positive_int, default=None, metavar="N",
                      help="end the run after N frames of the source")
    live.add_argument("--show", action="store_true",
                      help="show the segmentation in a window (needs a display)")
    live.add_argument("--serve", type=number(int, 0, 65535), default=None, metavar="PORT",
                      help="serve the segmentation as an MJPEG stream for a browser at "
                           "http://127.0.0.1:PORT/")
    live.add_argument("--bind", default="127.0.0.1", metavar="ADDRESS",
                      help="address --serve listens on (default 127.0.0.1: this machine "
                           "only; 0.0.0.0 opens it to the network)")


def live_requested(args: argparse.Namespace) -> bool:
    """Whether the demo runs live: --video names a camera, device or URL, or --realtime is
    given. Live flags without live input are refused, naming the flag."""
    video = getattr(args, "video", None)
    if getattr(args, "realtime", None) and not video:
        raise ValueError("--realtime needs --video (a camera index, device, stream URL or "
                         "file)")
    live = bool(video) and (is_live_source(video) or bool(getattr(args, "realtime", None)))
    if not live:
        for name, default in LIVE_ONLY.items():
            if getattr(args, name, default) != default:
                raise ValueError(f"--{name.replace('_', '-')} is for live input: --video with "
                                 f"a camera index, device or stream URL, or --realtime")
    return live


def _open_source(args: argparse.Namespace, data):
    """The source of --video: a capture (camera, device, URL) or a file / folder, paced."""
    if is_live_source(args.video):
        return CaptureSource(args.video, args.read_timeout)
    frames = VideoFrames(args.video, allow_partial=args.allow_partial)
    fps = args.fps or (frames.fps if frames.fps > 0 else data.fps)
    logger.info("%s paced at %g fps (--realtime)", args.video, fps)
    return PacedFrames(frames, fps, args.video)


def live_demo(args: argparse.Namespace, data, segmenter, interval: int, method: str,
              branches: bool, out_dir: str, info: Dict[str, Any],
              output) -> Dict[str, Any]:
    """Run the demo on live input (flags of `add_live_arguments`); writes metrics.json,
    timing.md, results.md and video.mp4 into `out_dir`, through `output` (an
    accel.utils.outputs.RunOutput: locked, INCOMPLETE until the run ends, metrics.json
    last). `data`: accel.cli.data.DemoData; returns what metrics.json holds."""
    if args.num_ex:
        raise ValueError("-e/--num_ex counts frames to segment; bound a live run with "
                         "--max-frames N (frames of the source) or --duration SECONDS")
    if args.consistency:
        raise ValueError("--consistency compares consecutive frames of a file; a live run "
                         "skips frames (drop --consistency, or run on the file without "
                         "--realtime)")
    if args.show:
        check_show()
    realtime = args.realtime if args.realtime is not None else True
    source = _open_source(args, data)
    with output:
        output.start()   # the source is open and every flag checked
        results = _run(args, data, segmenter, interval, method, branches, out_dir, info,
                       realtime, source)
        table = timing_table(results["timing"])
        write_text(os.path.join(out_dir, "timing.md"), table)
        text = f"## {method}, live: {args.video}\n\n{summary(results)}\n\n{table}"
        write_text(os.path.join(out_dir, "results.md"), text)
        write_json(os.path.join(out_dir, "metrics.json"), results)   # last: the run is done
    logger.info("results in %s\n%s", out_dir, text)
    return results


def _run(args, data, segmenter, interval: int, method: str, branches: bool, out_dir: str,
         info: Dict[str, Any], realtime: bool, source) -> Dict[str, Any]:
    """The live loop with its outputs (mp4, window, MJPEG server) set up and closed."""
    server = None
    try:
        if args.serve is not None:
            server = MjpegServer(args.serve, args.bind)
        draw = PredictionWriter(out_dir, data.palette, data.class_names, method,
                                branches=branches and args.panels, save_maps=args.save_frames,
                                save_panels=args.panels, tile_height=args.tile_height,
                                pictures=True)
        outputs = LiveOutputs(draw, None if args.no_video else os.path.join(out_dir, "video.mp4"),
                              args.fps, server)
        options = LiveOptions(realtime=realtime, queue_size=args.queue_size,
                              read_timeout_s=args.read_timeout,
                              max_gap_seconds=args.max_gap_seconds, duration_s=args.duration,
                              max_frames=args.max_frames, threaded=not args.serial,
                              show=args.show, fallback_fps=source.fps or data.fps)
        info = dict(info, method=method, interval=interval, source=args.video,
                    scales=data.scales, stride=data.stride, realtime=realtime,
                    serve=server.url if server is not None else None)
        results = run_live(source, segmenter,
                           lambda image: prepare_frame(image, data.pixel_means, data.scales,
                                                       data.stride),
                           outputs, options, metrics_path=os.path.join(out_dir, "metrics.json"),
                           info=info)
    finally:
        if server is not None:
            server.close()
    return results


def summary(results: Dict[str, Any]) -> str:
    """A live run in three lines of Markdown: frames, latency, keyframes."""
    lat, sched = results["latency"], results["schedule"]

    def fps(value):
        return "-" if value is None else "%.1f" % value
    return ("Frames: %d from the source (%s fps), %d segmented (%s fps), %d skipped; end: %s.\n"
            "Latency, capture to map (ms): p50 %s, p99 %s, max %s; queue at most %d of %d.\n"
            "Keyframes: %d of %d segmented frames; gaps in source frames: mean %s, max %s."
            % (results["frames_seen"], fps(results["source_fps"]), results["frames_processed"],
               fps(results["processed_fps"]), results["frames_skipped"], results["end"],
               format_ms(lat["p50"]), format_ms(lat["p99"]), format_ms(lat["max"]),
               results["queue"]["max"], results["queue"]["size"], results["keyframes"],
               results["frames_processed"], fps(sched.get("source_gap_mean")),
               sched.get("source_gap_max") or "-"))
