"""The reader thread of a live run: reads the source as fast as it sends, and keeps only the
newest frames for the segmenter (a bounded queue; older frames are dropped and counted).

With `drop=False` the reader waits for the segmenter instead (every frame segmented, as for
a file); a live source then buffers upstream. The thread owns the source: it also closes it.
"""
import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Deque, Optional

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["Captured", "SourceEnded", "FrameReader"]

# The source's rate: frames over at least RATE_SECONDS, after the first RATE_SKIP (an
# opening stream hands over what it buffered while probing, all at once).
RATE_SKIP, RATE_SECONDS = 2, 2.0


@dataclass
class Captured:
    """A frame as it came from the source."""

    image: np.ndarray      # (H, W, 3) uint8 BGR
    index: int             # frame number of the source, from 0
    time: float            # time.monotonic() when the read returned (capture time)


class SourceEnded(Exception):
    """The source has no more frames (its reason is the message)."""


class FrameReader:
    """Reads `source` on a thread into a queue of at most `size` frames.

    drop: keep the newest `size` frames, dropping older ones (real time); else wait for
        room (every frame kept).
    max_frames: stop after this many frames of the source.
    timeout_s: a read that returns nothing after this long is reported as a timeout.
    Counters (read under no lock; ints): `seen`, `dropped`, `queue_max`.
    """

    def __init__(self, source, size: int = 1, drop: bool = True,
                 max_frames: Optional[int] = None, timeout_s: float = 10.0):
        if int(size) < 1:
            raise ValueError(f"--queue-size {size}: expected at least 1 frame")
        self.source, self.size, self.drop = source, int(size), bool(drop)
        self.max_frames, self.timeout_s = max_frames, float(timeout_s)
        self.seen = self.dropped = self.queue_max = 0
        self.first_time: Optional[float] = None
        self.last_time: Optional[float] = None
        self.end: Optional[str] = None
        self._rate_from: Optional[Captured] = None
        self._rate: Optional[float] = None
        self._queue: Deque[Captured] = collections.deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-reader", daemon=True)

    def start(self) -> "FrameReader":
        """Start reading."""
        self._thread.start()
        return self

    def _run(self) -> None:
        end = "the source ended"
        try:
            while not self._stop.is_set():
                if self.max_frames is not None and self.seen >= self.max_frames:
                    end = f"--max-frames {self.max_frames} reached"
                    break
                t0 = time.monotonic()
                image = self.source.read()
                now = time.monotonic()
                if image is None:
                    if now - t0 >= 0.9 * self.timeout_s:
                        end = f"no frame for {now - t0:.1f} s (read timeout)"
                    break
                self._put(Captured(image, self.seen, now))
            else:
                end = "stopped"
        except Exception as exc:  # a failing source ends the run; it is reported, not raised
            end = f"the source failed: {exc}"
        finally:
            try:
                self.source.close()
            finally:
                with self._cond:
                    self.end = end
                    self._cond.notify_all()

    def _put(self, frame: Captured) -> None:
        with self._cond:
            while not self.drop and len(self._queue) >= self.size and not self._stop.is_set():
                self._cond.wait(0.1)
            if self._stop.is_set():   # closed: the counts the run reports stay as they are
                return
            if frame.index == RATE_SKIP:
                self._rate_from = frame
            elif self._rate is None and self._rate_from is not None and \
                    frame.time - self._rate_from.time >= RATE_SECONDS:
                self._rate = ((frame.index - self._rate_from.index)
                              / (frame.time - self._rate_from.time))
            if self.first_time is None:
                self.first_time = frame.time
            self.last_time = frame.time
            self._queue.append(frame)
            self.seen += 1
            while len(self._queue) > self.size:
                self._queue.popleft()
                self.dropped += 1
            self.queue_max = max(self.queue_max, len(self._queue))
            self._cond.notify_all()

    def get(self, timeout: float) -> Optional[Captured]:
        """The oldest queued frame (the newest when size is 1); None after `timeout` seconds
        without one; SourceEnded once the source has ended and the queue is empty."""
        with self._cond:
            if not self._queue and self.end is None:
                self._cond.wait(timeout)
            if self._queue:
                frame = self._queue.popleft()
                self._cond.notify_all()
                return frame
            if self.end is not None:
                raise SourceEnded(self.end)
            return None

    def queued(self) -> int:
        """Frames waiting now."""
        with self._cond:
            return len(self._queue)

    def rate(self) -> Optional[float]:
        """The source's frame rate, measured over its first seconds (see RATE_SECONDS), a
        rate within 1.5% of a whole number taken as that number; before that (a source
        that ended early), over the frames it sent; None before 2 frames."""
        with self._cond:
            rate = self._rate if self._rate is not None else self.mean_fps()
        if rate is not None and abs(rate - round(rate)) <= 0.015 * rate:
            rate = float(round(rate))
        return rate

    def rate_known(self) -> bool:
        """Whether `rate()` is measured (or final: the source ended)."""
        return self._rate is not None or self.end is not None

    def mean_fps(self) -> Optional[float]:
        """Frames per second over the whole run so far."""
        if self.seen < 2 or self.last_time == self.first_time:
            return None
        return (self.seen - 1) / (self.last_time - self.first_time)

    def close(self, wait_s: float = 1.0) -> None:
        """Stop reading. A read blocked in the source is left to its own timeout (the thread
        is a daemon and closes the source when the read returns)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(wait_s)
            if self._thread.is_alive():
                logger.info("the source's read is still blocked; left to its timeout")

    def __enter__(self) -> "FrameReader":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
