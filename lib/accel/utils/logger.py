"""Logging set-up for runners: a log file per run in its output folder, and stderr."""
import logging
import sys
import time
from typing import Tuple

from accel.utils import paths

__all__ = ["create_logger"]

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
