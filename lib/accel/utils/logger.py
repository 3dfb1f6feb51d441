"""Logging set-up for runners (output folder layout of DFF) and progress lines with speed/ETA."""
import logging
import sys
import time
from typing import Callable, Optional, Tuple

from accel.utils import paths

__all__ = ["create_logger", "format_seconds", "ProgressLogger"]

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Marks the handlers create_logger added, so a second call replaces them instead of doubling.
_OWNED = "_accel_create_logger"


def create_logger(output_path: str, cfg_path: str, image_set: str,
                  level: int = logging.INFO) -> Tuple[logging.Logger, str]:
    """Log to the console and to <run folder>/<cfg name>_<time>.log; return both.

    The root logger is configured, so every module's `logging.getLogger(__name__)` lands in
    the file. Calling it again (e.g. train then test) replaces the previous handlers.
    """
    final_output_path = paths.make_dir(paths.run_dir(output_path, cfg_path, image_set),
                                       "run folder")
    log_file = paths.log_path(final_output_path, cfg_path, time.strftime("%Y-%m-%d-%H-%M-%S"))
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OWNED, False)]:
        root.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter(_FORMAT)
    handlers = [logging.FileHandler(log_file)]
    # accel.cli.run has usually set up the console already: don't print every line twice.
    if not any(type(h) is logging.StreamHandler and h.stream in (sys.stderr, sys.stdout)
               for h in root.handlers):
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(formatter)
        setattr(handler, _OWNED, True)
        root.addHandler(handler)
    root.setLevel(level)
    root.info("logging to %s", log_file)
    return root, final_output_path


def format_seconds(seconds: float) -> str:
    """12345.6 -> '3:25:46'; negative or unknown -> '?'."""
    if seconds is None or seconds < 0 or seconds != seconds:
        return "?"
    seconds = int(round(seconds))
    return "%d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)


class ProgressLogger:
    """Logs 'desc i/total (p%), speed, ETA' every `every` steps and at the end.

    `clock` is injectable for tests; speed counts steps since the first update.
    """

    def __init__(self, total: int, desc: str = "progress", every: int = 20,
                 logger: Optional[logging.Logger] = None,
                 clock: Callable[[], float] = time.perf_counter, unit: str = "it"):
        self.total = int(total)
        self.desc = desc
        self.every = max(1, int(every))
        self.unit = unit
        self.done = 0
        self._logger = logger or logging.getLogger(__name__)
        self._clock = clock
        self._start = clock()

    def update(self, n: int = 1) -> Optional[str]:
        """Count `n` finished steps; return the line logged, if any."""
        before = self.done
        self.done += n
        finished = self.total > 0 and self.done >= self.total
        if not finished and self.done // self.every == before // self.every:
            return None
        elapsed = self._clock() - self._start
        rate = self.done / elapsed if elapsed > 0 else float("inf")
        left = (self.total - self.done) / rate if self.total > 0 and rate > 0 else -1
        if self.total > 0:
            head = "%s %d/%d (%.0f%%)" % (self.desc, self.done, self.total,
                                         100.0 * self.done / self.total)
        else:
            head = "%s %d" % (self.desc, self.done)
        line = "%s, %.2f %s/s, %.3f s/%s, elapsed %s, ETA %s" % (
            head, rate, self.unit, 1.0 / rate if rate > 0 else float("inf"), self.unit,
            format_seconds(elapsed), format_seconds(left) if not finished else "0:00:00")
        self._logger.info(line)
        return line
