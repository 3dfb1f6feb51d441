"""Background threads for streams: a prefetching reader and an ordered writer.

Both re-raise a failure of their thread in the caller, stop cleanly on an early exit (use
them as context managers), and run inline with `threaded=False`.
"""
import contextlib
import queue
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Optional, Tuple

__all__ = ["Prefetcher", "BackgroundWorker"]

_END = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class Prefetcher:
    """Yields (item, load(item), seconds) for each item, computed `depth` items ahead.

    The time covers producing the item (e.g. decoding a video frame inside the iterator)
    and `load`. An exception in the thread is re-raised in the consumer. `threaded=False`
    runs inline. Use as a context manager so an early exit stops the thread.
    """

    def __init__(self, items: Iterable, load: Callable[[Any], Any], depth: int = 4,
                 threaded: bool = True):
        self.items, self.load = items, load
        self.depth, self.threaded = max(1, int(depth)), threaded
        self._stop = threading.Event()
        self._queue: "queue.Queue" = queue.Queue(maxsize=self.depth)
        self._thread: Optional[threading.Thread] = None

    def _produce(self) -> Iterator[Tuple[Any, Any, float]]:
        it = iter(self.items)
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                return
            value = self.load(item)
            yield item, value, time.perf_counter() - t0

    def _run(self) -> None:
        try:
            for entry in self._produce():
                self._put(entry)
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(_Failure(exc))

    def _put(self, entry) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[Tuple[Any, Any, float]]:
        if not self.threaded:
            yield from self._produce()
            return
        self._thread = threading.Thread(target=self._run, name="prefetch", daemon=True)
        self._thread.start()
        while True:
            entry = self._queue.get()
            if entry is _END:
                return
            if isinstance(entry, _Failure):
                raise entry.exc
            yield entry

    def close(self) -> None:
        """Stop the thread (it may be blocked on a full queue)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BackgroundWorker:
    """Runs submitted jobs in submission order on one thread, at most `depth` waiting.

    The first exception stops further jobs and is re-raised by the next `submit` or by
    `close`. `threaded=False` runs each job at once.
    """

    def __init__(self, depth: int = 8, threaded: bool = True):
        self.threaded = threaded
        self._queue: "queue.Queue" = queue.Queue(maxsize=max(1, int(depth)))
        self._error: Optional[BaseException] = None
        self._thread = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is _END:
                return
            if self._error is None:
                try:
                    job()
                except BaseException as exc:  # re-raised in the submitting thread
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def submit(self, job: Callable[[], None]) -> None:
        """Queue `job` (blocks while `depth` jobs wait)."""
        self._raise()
        if self._thread is None:
            job()
        else:
            self._queue.put(job)

    def close(self) -> None:
        """Wait for every queued job; re-raise the first error."""
        if self._thread is not None:
            self._queue.put(_END)
            self._thread.join()
            self._thread = None
        self._raise()

    def __enter__(self) -> "BackgroundWorker":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # the caller's error is the one to see; the worker's, if any, is dropped
            with contextlib.suppress(BaseException):
                self.close()
