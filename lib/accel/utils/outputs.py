"""Output folders of the demos and result scripts: a run never deletes or replaces a file it
did not write, two runs never write into one folder at once, and a run that stopped half way
never looks complete.

Besides its results, a run's folder holds
    .accel-run.json   the manifest: the program, the files this run wrote, complete or not
    .accel-run.lock   exists while a run writes; locked (fcntl.flock) and naming its pid
    INCOMPLETE        while a run writes, and after a run that failed or was interrupted

How a run uses its folder (`RunOutput`), in this order:
1. `check()`, before anything runs and without touching the disk: a folder that is neither
   empty nor one of our runs (no manifest) is refused unless `overwrite`; even then, a file
   of a result's name that a run of ours did not write is never replaced (refused, named).
2. `lock()`: an exclusive lock, so a second run into the same folder is refused at once,
   naming the process that holds it (we lock rather than write into a temporary folder
   renamed at the end, because a folder may also hold a user's own files). The kernel drops
   the lock when its process dies, so a killed run never leaves a stale lock behind.
3. `start()`, once every input has been checked (the demo: after its first frame went
   through the network): the files the previous run of ours recorded are removed, and
   INCOMPLETE and a manifest naming what this run may write are written.
4. `finish()`, after the last result file (the demos write metrics.json last): the
   manifest records the files written and INCOMPLETE is removed. A failure instead leaves
   INCOMPLETE (with the reason) and a manifest saying `complete: false`.
Readers of a run's results call `read_results(folder)` (its summary JSON) or
`require_complete(folder)`, which refuse a partial run.
"""
import contextlib
import errno
import json
import logging
import os
import shutil
import sys
import time
from typing import Dict, Iterable, List, Optional, Sequence

try:
    import fcntl
except ImportError:  # pragma: no cover  (not Linux/macOS: no lock, said once)
    fcntl = None

__all__ = ["MANIFEST", "LOCK", "INCOMPLETE", "OutputError", "IncompleteRunError",
           "FolderLock", "RunOutput", "require_complete", "is_complete", "read_results"]

logger = logging.getLogger(__name__)

MANIFEST = ".accel-run.json"
LOCK = ".accel-run.lock"
INCOMPLETE = "INCOMPLETE"
CONTROL = (MANIFEST, LOCK, INCOMPLETE)


class OutputError(ValueError):
    """An output folder that cannot be used as asked (a user's error: one line)."""


class IncompleteRunError(OutputError):
    """A run folder whose run stopped before the end."""


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def _read_json(path: str) -> Optional[Dict]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: str, data: Dict) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


class FolderLock:
    """An exclusive lock on `folder` (the file LOCK inside it, fcntl.flock), for one run.

    `acquire()` raises OutputError naming the process that holds it; `release()` removes the
    lock file. `flag` names the folder in messages (e.g. '--output DIR')."""

    def __init__(self, folder: str, flag: str = "output folder"):
        self.folder, self.flag = folder, flag
        self.path = os.path.join(folder, LOCK)
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        if fcntl is None:  # pragma: no cover
            logger.warning("%s: no file locks on this system; do not run two runs into it "
                           "at once", self.folder)
            return
        for _ in range(3):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise OutputError(f"{self.flag} {self.folder}: another run is writing into it "
                                  f"({self._holder()}); two runs in one folder would mix their "
                                  f"files: wait for it to end, or choose another folder") \
                    from None
            # The previous holder may have removed the file between our open and our lock.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps({"pid": os.getpid(), "since": _now(),
                                         "command": " ".join(sys.argv)}).encode())
                self._fd = fd
                return
            os.close(fd)
        raise OutputError(f"{self.flag} {self.folder}: could not lock {self.path}")

    def _holder(self) -> str:
        info = _read_json(self.path) or {}
        if not info:
            return "its lock file " + self.path
        return (f"pid {info.get('pid', '?')} since {info.get('since', '?')}: "
                f"{info.get('command', '?')}")

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)  # while still locked: the next run opens a fresh file
        os.close(self._fd)
        self._fd = None


def _files_under(folder: str, names: Iterable[str]) -> List[str]:
    """Relative paths of the files at or below `names` in `folder` (sorted)."""
    out = []
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            for root, _, files in os.walk(path):
                out += [os.path.relpath(os.path.join(root, f), folder) for f in files]
        elif os.path.lexists(path):
            out.append(name)
    return sorted(out)


def _remove_recorded(folder: str, recorded: Sequence[str]) -> List[str]:
    """Remove the recorded files (a recorded folder: all of it), then folders left empty."""
    removed, parents = [], set()
    for rel in recorded:
        path = os.path.join(folder, rel)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)
        else:
            continue
        removed.append(rel)
        parent = os.path.dirname(rel)
        while parent:
            parents.add(parent)
            parent = os.path.dirname(parent)
    for rel in sorted(parents, key=len, reverse=True):
        with contextlib.suppress(OSError):   # not empty: a user's file is in it
            os.rmdir(os.path.join(folder, rel))
    return removed


class RunOutput:
    """The output folder of one run of `program`; see the module docstring.

    names: the top-level files and folders this run may write (e.g. 'metrics.json', 'maps').
    results: the summary JSON among `names`, written last (what `read_results` reads).
    legacy: the keys of the `results` JSON of an older version of the program, which wrote
        no manifest: a folder whose results hold them is that program's (its `names` present
        are then taken as ours).
    """

    def __init__(self, folder: str, program: str, names: Sequence[str], flag: str = "--output",
                 overwrite: bool = False, legacy: Sequence[str] = (),
                 results: Optional[str] = None):
        self.folder, self.program, self.names = folder, program, tuple(names)
        self.results = results
        self.flag, self.overwrite, self.legacy = flag, overwrite, legacy
        self.lock_ = FolderLock(folder, f"{flag}")
        self.started = False
        self._created = False
        self._ours: List[str] = []

    # -- 1. check -----------------------------------------------------------------------
    def _recorded(self) -> Optional[List[str]]:
        """The files the previous run of ours recorded (None: no run of ours here)."""
        manifest = _read_json(os.path.join(self.folder, MANIFEST))
        if manifest is not None and isinstance(manifest.get("files"), list):
            return [str(f) for f in manifest["files"]]
        old = (_read_json(os.path.join(self.folder, self.results))
               if self.legacy and self.results else None)
        if isinstance(old, dict) and set(self.legacy) <= set(old):
            return [n for n in self.names if os.path.lexists(os.path.join(self.folder, n))]
        return None

    def check(self) -> None:
        """Refuse the folder before anything runs (nothing is written or removed here)."""
        folder = self.folder
        if os.path.lexists(folder) and not os.path.isdir(folder):
            raise OutputError(f"{self.flag} {folder}: is a file; expected a folder (new, empty, "
                              f"or one a run of {self.program} wrote)")
        if not os.path.isdir(folder):
            return
        entries = sorted(n for n in os.listdir(folder) if n not in CONTROL)
        recorded = self._recorded()
        if recorded is None and entries and not self.overwrite:
            shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more"
                                              if len(entries) > 5 else "")
            raise OutputError(f"{self.flag} {folder}: not empty ({shown}) and not written by "
                              f"{self.program} (no {MANIFEST}); choose a new or empty folder, "
                              f"or pass --overwrite to write beside these files (they are "
                              f"never deleted or replaced)")
        ours = set(recorded or ())
        tops = {r.split(os.sep)[0] for r in ours}
        foreign = [n for n in self.names if os.path.lexists(os.path.join(folder, n))
                   and n not in tops]
        if foreign:
            raise OutputError(f"{self.flag} {folder}: {', '.join(foreign)} "
                              f"{'was' if len(foreign) == 1 else 'were'} not written by "
                              f"{self.program}, and {self.program} writes files of "
                              f"{'that name' if len(foreign) == 1 else 'these names'}; a "
                              f"user's file is never replaced: move it, or choose another "
                              f"folder")
        self._ours = sorted(ours)

    # -- 2. lock ------------------------------------------------------------------------
    def lock(self) -> "RunOutput":
        """check(), create the folder and take its lock (OutputError when held)."""
        self.check()
        if not os.path.isdir(self.folder):
            try:
                os.makedirs(self.folder)
            except OSError as err:
                raise OutputError(f"{self.flag} {self.folder}: cannot create it "
                                  f"({err.strerror or err})") from None
            self._created = True
        self.lock_.acquire()
        self.check()  # again, under the lock: another run may have written meanwhile
        return self

    # -- 3. start -----------------------------------------------------------------------
    def start(self) -> None:
        """Remove the previous run's recorded files; mark this run INCOMPLETE."""
        if self.started:
            return
        removed = _remove_recorded(self.folder, self._ours)
        if removed:
            logger.info("%s: replaced the previous %s run's files (%d: %s)", self.folder,
                        self.program, len(removed), ", ".join(sorted(
                            {r.split(os.sep)[0] for r in removed})))
        with open(os.path.join(self.folder, INCOMPLETE), "w", encoding="utf-8") as f:
            f.write(f"{self.program} (pid {os.getpid()}) started writing here at {_now()} "
                    f"and has not finished: these files are not complete results.\n"
                    f"command: {' '.join(sys.argv)}\n")
        self._manifest(False, list(self.names))
        self.started = True

    def path(self, *parts: str) -> str:
        """A path inside the folder."""
        return os.path.join(self.folder, *parts)

    def _manifest(self, complete: bool, files: List[str], **extra) -> None:
        _write_json(os.path.join(self.folder, MANIFEST),
                    {"program": self.program, "complete": complete, "pid": os.getpid(),
                     "updated": _now(), "results": self.results, "files": files, **extra})

    # -- 4. finish or fail --------------------------------------------------------------
    def finish(self) -> List[str]:
        """Record the files written and remove INCOMPLETE; returns those files."""
        self.start()
        files = _files_under(self.folder, self.names)
        self._manifest(True, files)
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(self.folder, INCOMPLETE))
        self.release()
        return files

    def fail(self, reason: str) -> None:
        """Leave the folder marked INCOMPLETE (why) and the files written so far recorded."""
        if self.started:
            with contextlib.suppress(OSError):
                files = _files_under(self.folder, self.names)
                self._manifest(False, files, stopped=reason)
                with open(os.path.join(self.folder, INCOMPLETE), "a", encoding="utf-8") as f:
                    f.write(f"stopped at {_now()}: {reason}\n")
            logger.warning("%s is a partial output (%s): it holds INCOMPLETE", self.folder,
                           reason)
        self.release()

    def release(self) -> None:
        """Drop the lock; a folder this run created and left empty is removed."""
        self.lock_.release()
        if self._created and not self.started:
            with contextlib.suppress(OSError):
                os.rmdir(self.folder)

    def __enter__(self) -> "RunOutput":
        return self.lock()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            if self.lock_._fd is not None:
                self.finish()
            return
        reason = "interrupted (Ctrl-C)" if exc_type is KeyboardInterrupt else \
            f"{exc_type.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        self.fail(reason)


def is_complete(folder: str) -> bool:
    """Whether `folder` holds a finished run (a complete manifest, no INCOMPLETE)."""
    manifest = _read_json(os.path.join(folder, MANIFEST))
    return (manifest is not None and manifest.get("complete") is True
            and not os.path.exists(os.path.join(folder, INCOMPLETE)))


def require_complete(folder: str, what: str = "run folder") -> str:
    """`folder` if it holds a finished run; IncompleteRunError naming why it is partial."""
    marker = os.path.join(folder, INCOMPLETE)
    if os.path.exists(marker):
        try:
            with open(marker, encoding="utf-8") as f:
                lines = [line.strip().rstrip(".") for line in f if line.strip()]
        except OSError:
            lines = []
        why = "; ".join(lines[:1] + lines[2:]) if lines else "INCOMPLETE marker"
        raise IncompleteRunError(f"{what} {folder} is a partial run ({why}); its results are "
                                 f"not complete: run it again to the end")
    manifest = _read_json(os.path.join(folder, MANIFEST))
    if manifest is not None and manifest.get("complete") is not True:
        raise IncompleteRunError(f"{what} {folder} is a partial run (its {MANIFEST} says it "
                                 f"did not finish); run it again to the end")
    return folder


def read_results(folder: str, what: str = "run folder") -> Dict:
    """The summary JSON (e.g. metrics.json) of the finished run in `folder`; a partial run,
    or a folder no run of ours wrote, is refused naming why."""
    require_complete(folder, what)
    manifest = _read_json(os.path.join(folder, MANIFEST))
    if manifest is None or not manifest.get("results"):
        raise OutputError(f"{what} {folder}: no results of a finished run here (no {MANIFEST} "
                          f"naming them); expected the folder of a finished run")
    path = os.path.join(folder, str(manifest["results"]))
    data = _read_json(path)
    if data is None:
        raise OutputError(f"{what} {folder}: {path} is missing or not a JSON object")
    return data
