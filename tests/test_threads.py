"""Background reader and writer: bounded prefetching, errors reach the caller."""
import threading
import time

import pytest

from accel.utils.threads import BackgroundWorker, Prefetcher


def test_prefetch_queue_is_bounded():
    produced, depth = [0], 3
    lock = threading.Lock()

    def items():
        for i in range(40):
            time.sleep(0.0005)
            with lock:
                produced[0] += 1
            yield i

    def load(x):
        time.sleep(0.0005)
        return x * 2

    ahead = []
    with Prefetcher(items(), load, depth=depth) as stream:
        for consumed, (item, value, seconds) in enumerate(stream, 1):
            # The time covers producing the item and loading it.
            assert value == 2 * item and seconds >= 0.001
            time.sleep(0.004)
            with lock:
                ahead.append(produced[0] - consumed)
    assert max(ahead) <= depth + 2   # the queue, one in hand, one being made
    assert produced[0] == 40


def test_errors_in_threads_reach_the_caller():
    def bad(x):
        raise ValueError(f"frame {x} unreadable")

    with pytest.raises(ValueError, match="frame 0 unreadable"):
        with Prefetcher([0, 1], bad) as stream:
            list(stream)
    worker = BackgroundWorker()
    worker.submit(lambda: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        worker.close()
