"""The real-time loop: segment a live source as it sends, never falling behind.

A reader thread (accel.live.reader) keeps the newest frame; whenever the segmenter is free
the loop takes it, preprocesses it, asks the schedule (accel.live.schedule) whether it is a
keyframe on the real gap since the last one, runs `segmenter.step(data, is_key=...)`, and
hands the map to the writer thread (accel.utils.threads.BackgroundWorker), which draws it
and writes the mp4 at the source's rate, the last picture again for each skipped frame
(accel.live.outputs). Once a second a log line: source and processed fps, skipped frames,
keyframe rate, latency from capture to map (p50/p99).

The run ends at the source's end or read timeout, at --duration / --max-frames, on SIGINT or
SIGTERM (within a second: the frame in the network finishes, the mp4 is closed), or when a
`--show` window is closed. Whatever ends it, the mp4 is finished and metrics.json written;
`complete` is false only when an error stopped the loop (the error is then re-raised).
"""
import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np

from accel.core.timing import TimingRecorder, format_ms, schedule_stats, summarize
from accel.live.outputs import LiveOutputs, Window
from accel.live.reader import Captured, FrameReader, SourceEnded
from accel.live.schedule import RealGapSchedule
from accel.utils.io import write_json
from accel.utils.threads import BackgroundWorker

logger = logging.getLogger("accel.live")

__all__ = ["LiveOptions", "LiveStats", "run_live", "stop_on_signals"]


@dataclass
class LiveOptions:
    """How a live run reads its source and when it ends (the demo's live flags)."""

    realtime: bool = True                   # newest frame only; False: every frame, waited for
    queue_size: int = 1                     # frames the reader keeps
    read_timeout_s: float = 10.0            # no frame for this long ends the run
    max_gap_seconds: Optional[float] = None  # bound on the time from keyframe to keyframe
    duration_s: Optional[float] = None      # from the first map (graph set-up excluded)
    max_frames: Optional[int] = None        # frames of the source
    log_every_s: float = 1.0
    threaded: bool = True                   # draw and write on a background thread
    show: bool = False                      # an OpenCV window (needs a display)
    fallback_fps: float = 15.0              # the mp4's rate when the source's is never known


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[List[str]]:
    """While inside, SIGINT and SIGTERM set `stop` (their names are appended to the list
    yielded); a second signal interrupts at once. Only the main thread can take signals:
    elsewhere this does nothing."""
    received: List[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, _frame):
        if stop.is_set():
            raise KeyboardInterrupt
        received.append(signal.Signals(signum).name)
        stop.set()
        logger.info("%s: stopping (finishing the mp4 and metrics.json)", received[-1])

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class LiveStats:
    """Counts, latencies and the once-a-second log line of a live run."""

    def __init__(self, reader: FrameReader, timing: TimingRecorder):
        self.reader, self.timing = reader, timing
        self.start: Optional[float] = None   # the first map (graphs set up)
        self.latency: List[float] = []       # capture -> map, each segmented frame
        self.wait: List[float] = []          # capture -> taken by the segmenter
        self.flags: List[bool] = []
        self.keys: List[tuple] = []          # (source index, capture time) of keyframes
        self._mark = (0.0, 0, 0, 0)          # window: time, seen, processed, dropped

    def begin(self, now: float) -> None:
        """The first map is out: the run's clock starts (duration, rates, log lines)."""
        self.start = now
        self._mark = (now, self.reader.seen, len(self.flags), self.reader.dropped)

    def frame(self, frame: Captured, taken: float, done: float, is_key: bool,
              network_s: float, load_s: float) -> int:
        """Record a segmented frame; returns its index in the run."""
        self.latency.append(done - frame.time)
        self.wait.append(taken - frame.time)
        self.flags.append(bool(is_key))
        if is_key:
            self.keys.append((frame.index, frame.time))
        return self.timing.frame(is_key, network_s, load_s)

    def line(self, now: float) -> str:
        """Since the last line: source and processed fps, skipped frames, keyframe rate,
        latency p50/p99 (capture to map)."""
        t0, seen0, done0, dropped0 = self._mark
        dt = max(now - t0, 1e-9)
        seen, dropped, done = self.reader.seen, self.reader.dropped, len(self.flags)
        self._mark = (now, seen, done, dropped)
        keys = sum(self.flags[done0:])
        lat = summarize(self.latency[done0:])
        return ("live %.0f s: source %.1f fps, processed %.1f fps, skipped %d (total %d), "
                "keyframe rate %s, latency p50 %s p99 %s ms"
                % (now - self.start, (seen - seen0) / dt, (done - done0) / dt,
                   dropped - dropped0, dropped,
                   "%.2f" % (keys / (done - done0)) if done > done0 else "-",
                   format_ms(lat["p50"]), format_ms(lat["p99"])))

    def report(self, end: float) -> Dict[str, Any]:
        """metrics.json's counts, rates, latency and schedule (warm-up frames, as in the
        timing report, left out of latency and wait)."""
        seen, processed = self.reader.seen, len(self.flags)
        warm = {i for i, f in enumerate(self.timing.frames) if f[3]}
        steady = [i for i in range(processed) if i not in warm]
        gaps = np.diff([k[0] for k in self.keys])
        seconds = np.diff([k[1] for k in self.keys])
        schedule = schedule_stats(self.flags) if self.flags else {}
        schedule.update(source_gap_mean=float(gaps.mean()) if gaps.size else None,
                        source_gap_max=int(gaps.max()) if gaps.size else None,
                        seconds_gap_max=float(seconds.max()) if seconds.size else None)
        elapsed = end - self.start if self.start is not None else 0.0
        return {
            "frames_seen": seen, "frames_processed": processed,
            "frames_skipped": seen - processed, "keyframes": len(self.keys),
            "source_fps": self.reader.mean_fps(),
            "processed_fps": (processed - 1) / elapsed if elapsed > 0 else None,
            "duration_s": elapsed,       # from the first map to the end
            "queue": {"size": self.reader.size, "max": self.reader.queue_max,
                      "dropping": self.reader.drop},
            "latency": summarize(self.latency[i] for i in steady),
            "wait": summarize(self.wait[i] for i in steady),
            "latency_warmup_frames": processed - len(steady),
            "schedule": schedule,
            "timing": self.timing.report(),
        }


def _frame_job(outputs: LiveOutputs, timing: TimingRecorder, index: int, frame: Captured,
               loaded, result, skipped: int) -> Callable[[], None]:
    h, w = loaded.image.shape[:2]

    def job() -> None:
        t0 = time.perf_counter()
        if skipped:
            outputs.skipped(skipped)
        outputs.frame("frame_%06d" % frame.index, loaded.image, result.pred[:h, :w],
                      {k: v[:h, :w] for k, v in result.extras.items()}, result.is_key)
        timing.write(index, time.perf_counter() - t0)
    return job


def run_live(source, segmenter, prepare: Callable[[np.ndarray], Any], outputs: LiveOutputs,
             options: LiveOptions, stop: Optional[threading.Event] = None,
             metrics_path: Optional[str] = None,
             info: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Segment `source` in real time (module docstring); returns what metrics.json holds.

    source: accel.live.sources (read/fps/close); the reader thread closes it.
    segmenter: `reset()`, `step(data, is_key=None) -> FrameResult`, `interval`, `policy`.
    prepare: (H, W, 3) BGR frame -> accel.core.tester.LoadedFrame (its `.data` is stepped).
    stop: set it to end the run (SIGINT/SIGTERM set it in the main thread).
    metrics_path: where to write metrics.json (`info` merged in), whatever the end.
    """
    stop = stop or threading.Event()
    reader = FrameReader(source, options.queue_size, options.realtime, options.max_frames,
                         options.read_timeout_s)
    timing = TimingRecorder()
    window = Window() if options.show else None
    worker = BackgroundWorker(threaded=options.threaded)
    end, error, rate_set, last_index = "stopped", None, False, -1
    segmenter.reset()
    with stop_on_signals(stop) as received, \
            RealGapSchedule(segmenter, options.max_gap_seconds) as schedule:
        stats = LiveStats(reader.start(), timing)
        opened = next_log = time.monotonic()
        try:
            while True:
                now = time.monotonic()
                if stop.is_set():
                    end = f"stopped ({received[0]})" if received else "stopped"
                    break
                if stats.start is not None and options.duration_s is not None \
                        and now - stats.start >= options.duration_s:
                    end = f"--duration {options.duration_s:g} s reached"
                    break
                if stats.start is not None and now >= next_log:
                    logger.info(stats.line(now))
                    next_log = max(next_log + options.log_every_s, now)
                if not rate_set and reader.rate_known():
                    worker.submit(lambda fps=reader.rate() or options.fallback_fps:
                                  outputs.set_rate(fps))
                    rate_set = True
                if window is not None and not window.update(outputs.latest):
                    end = "stopped (window closed)"
                    break
                try:
                    frame = reader.get(timeout=0.1)
                except SourceEnded as ended:
                    end = str(ended)
                    break
                if frame is None:
                    quiet = now - (reader.last_time or opened)
                    if quiet > options.read_timeout_s:
                        end = f"no frame for {quiet:.1f} s (read timeout)"
                        break
                    continue
                taken = time.monotonic()
                loaded = prepare(frame.image)
                load_s = time.monotonic() - taken
                is_key = schedule.decide(frame.index, frame.time, tuple(loaded.data.shape))
                result = (segmenter.step(loaded.data) if schedule.every_frame
                          else segmenter.step(loaded.data, is_key=is_key))
                done = time.monotonic()
                index = stats.frame(frame, taken, done, result.is_key, result.network_s,
                                    load_s)
                if stats.start is None:
                    stats.begin(done)
                    next_log = done + options.log_every_s
                worker.submit(_frame_job(outputs, timing, index, frame, loaded, result,
                                         frame.index - last_index - 1))
                last_index = frame.index
        except BaseException as exc:  # outputs are still finished; re-raised below
            error, end = exc, f"error: {exc!r}"
        finally:
            reader.close(wait_s=0.2 if stop.is_set() else 1.0)
            if window is not None:
                window.close()
    results = _finish(reader, worker, outputs, stats, options, last_index, rate_set, error)
    results.update(end=end, complete=error is None, live=True,
                   keyframe_schedule=schedule.describe())
    if info:
        results.update(info)
    logger.info("live run ended: %s; %d frames seen, %d segmented, %d skipped", end,
                results["frames_seen"], results["frames_processed"], results["frames_skipped"])
    if metrics_path is not None:
        write_json(metrics_path, results)
    if error is not None:
        raise error
    return results


def _finish(reader: FrameReader, worker: BackgroundWorker, outputs: LiveOutputs,
            stats: LiveStats, options: LiveOptions, last_index: int, rate_set: bool,
            error: Optional[BaseException]) -> Dict[str, Any]:
    """Write the frames seen after the last segmented one, close the mp4; the report."""
    trailing = reader.seen - 1 - last_index
    with contextlib.ExitStack() as quiet:
        if error is not None:   # the loop's error is the one to see
            quiet.enter_context(contextlib.suppress(Exception))
        if not rate_set:
            worker.submit(lambda: outputs.set_rate(reader.rate() or options.fallback_fps))
        if trailing > 0:
            worker.submit(lambda: outputs.skipped(trailing))
        worker.close()
    end = time.monotonic()
    stats.timing.finish()
    results = stats.report(end)
    results["outputs"] = outputs.close(reader.rate() or options.fallback_fps)
    return results
