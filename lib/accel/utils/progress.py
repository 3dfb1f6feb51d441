"""Progress of loops over data: a tqdm bar on a terminal, periodic log lines elsewhere.

A log file (or a pipe, as in the CamVid protocol's stage logs) gets a line every `every`
steps and at the end, 'desc i/total (p%), speed, ETA'; a terminal gets tqdm's bar.
"""
import logging
import sys
import time
from typing import Callable, Optional

__all__ = ["Progress", "format_seconds"]


def _tqdm(**kwargs):
    """A tqdm bar, or None where tqdm is not installed (the MXNet-free runtime install
    logs progress lines instead)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(**kwargs)


def format_seconds(seconds: float) -> str:
    """12345.6 -> '3:25:46'; negative or unknown -> '?'."""
    if seconds is None or seconds < 0 or seconds != seconds:
        return "?"
    seconds = int(round(seconds))
    return "%d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)


class Progress:
    """Counts finished steps of a loop of `total` steps (0 = unknown).

    bar: draw a tqdm bar (default: when stderr is a terminal); otherwise log a line every
    `every` steps and at the end through `logger`. `clock` is injectable for tests.
    """

    def __init__(self, total: int, desc: str = "progress", every: int = 20,
                 logger: Optional[logging.Logger] = None, unit: str = "it",
                 bar: Optional[bool] = None, clock: Callable[[], float] = time.perf_counter):
        self.total, self.desc, self.unit = int(total), desc, unit
        self.every = max(1, int(every))
        self.done = 0
        self._logger = logger or logging.getLogger(__name__)
        self._clock = clock
        self._start = clock()
        use_bar = sys.stderr.isatty() if bar is None else bar
        self._bar = _tqdm(total=self.total or None, desc=desc, unit=unit, leave=False) \
            if use_bar else None

    def update(self, n: int = 1) -> Optional[str]:
        """Count `n` finished steps; returns the line logged, if any."""
        before = self.done
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return None
        finished = self.total > 0 and self.done >= self.total
        if not finished and self.done // self.every == before // self.every:
            return None
        line = self.line(finished)
        self._logger.info(line)
        return line

    def line(self, finished: bool = False) -> str:
        """'desc i/total (p%), speed, time per step, elapsed, ETA'."""
        elapsed = self._clock() - self._start
        rate = self.done / elapsed if elapsed > 0 else float("inf")
        left = (self.total - self.done) / rate if self.total > 0 and rate > 0 else -1
        head = ("%s %d/%d (%.0f%%)" % (self.desc, self.done, self.total,
                                      100.0 * self.done / self.total)
                if self.total > 0 else "%s %d" % (self.desc, self.done))
        return "%s, %.2f %s/s, %.3f s/%s, elapsed %s, ETA %s" % (
            head, rate, self.unit, 1.0 / rate if rate > 0 else float("inf"), self.unit,
            format_seconds(elapsed), "0:00:00" if finished else format_seconds(left))

    def close(self) -> None:
        """End the bar (no-op for log lines)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
