"""The timing protocol of every run, its table, and what a run's keyframe schedule did.

As the original demo (docs/design.md, "Inference"): batch 1, wall clock around forward + argmax +
copy to host (`FrameResult.network_s`, measured by the segmenter), the first `warmup` (2)
frames of the run left out. Reported as mean / p50 / p99 / max for keyframes and non-key
frames separately; reading + preprocessing and writing are timed apart from the network,
and the end-to-end wall time per frame is given beside them. The benchmark
(accel.bench) reports through the same functions. `schedule_stats` summarises the keyframe
flags of a run (rate, gaps, runs of keyframes) for every runner.
"""
import math
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["WARMUP_FRAMES", "TimingRecorder", "summarize", "schedule_stats", "timing_table",
           "format_ms"]

WARMUP_FRAMES = 2  # the original demo's warm-up


# ----------------------------------------------------------------------------- timing
def summarize(seconds: Sequence[float]) -> Dict[str, float]:
    """{'frames', 'mean', 'p50', 'p99', 'max'} of durations in seconds (NaN when empty)."""
    values = np.asarray(list(seconds), dtype=np.float64)
    if values.size == 0:
        nan = float("nan")
        return {"frames": 0, "mean": nan, "p50": nan, "p99": nan, "max": nan}
    return {"frames": int(values.size), "mean": float(values.mean()),
            "p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99)),
            "max": float(values.max())}


def schedule_stats(flags: Sequence[bool], times: Optional[Sequence[float]] = None
                   ) -> Dict[str, Any]:
    """Keyframe rate (all frames, and excluding the stream's first frame, which is always a
    keyframe), gaps between keyframes, the longest run of consecutive keyframes, and with
    `times` (seconds per frame) their mean, p99 and max (`summarize`)."""
    flags = [bool(f) for f in flags]
    if not flags:
        raise ValueError("empty schedule")
    keys = [i for i, f in enumerate(flags) if f]
    gaps = np.diff(keys).tolist()
    longest, run = 0, 0
    for f in flags:
        run = run + 1 if f else 0
        longest = max(longest, run)
    out: Dict[str, Any] = {
        "frames": len(flags), "keyframes": len(keys),
        "key_rate": len(keys) / len(flags),
        "key_rate_after_first": (sum(flags[1:]) / (len(flags) - 1)) if len(flags) > 1 else 1.0,
        "longest_key_run": longest,
        "gap_min": int(min(gaps)) if gaps else None,
        "gap_max": int(max(gaps)) if gaps else None,
        "gap_mean": float(np.mean(gaps)) if gaps else None,
        "gap_histogram": {int(g): int(c) for g, c in zip(*np.unique(gaps, return_counts=True))}
        if gaps else {},
    }
    if times is not None:
        if len(times) != len(flags):
            raise ValueError(f"{len(times)} times for {len(flags)} frames")
        t = summarize(times)
        out.update(time_mean_s=t["mean"], time_p99_s=t["p99"], time_max_s=t["max"])
    return out


class TimingRecorder:
    """Per-frame durations of one run, without the warm-up frames.

    Warm-up, as the original: the first `warmup` (2) frames of the run. Its two warm-up
    frames were a keyframe and a non-key frame, so each graph's one-time set-up (memory,
    MKL-DNN primitives) fell inside them; here the first keyframe and the first non-key
    frame are also left out wherever they come, so no set-up cost enters the stats.
    The wall clock (end to end, reads and writes included) starts after the first
    `warmup` frames and stops at `finish()`.
    """

    def __init__(self, warmup: int = WARMUP_FRAMES):
        self.warmup = int(warmup)
        self.frames: List[Tuple[bool, float, float, bool]] = []  # is_key, net, load, warm-up
        self.writes: List[Tuple[int, float]] = []                 # (frame index, write_s)
        self._seen = set()
        self._wall_start: Optional[float] = time.perf_counter() if self.warmup == 0 else None
        self._wall_end: Optional[float] = None

    def frame(self, is_key: bool, network_s: float, load_s: float) -> int:
        """Record a segmented frame; returns its index in the run."""
        is_key = bool(is_key)
        warm = len(self.frames) < self.warmup or is_key not in self._seen
        self._seen.add(is_key)
        self.frames.append((is_key, float(network_s), float(load_s), warm))
        if len(self.frames) == self.warmup:
            self._wall_start = time.perf_counter()
        return len(self.frames) - 1

    def write(self, index: int, seconds: float) -> None:
        """Record the time spent writing the outputs of frame `index`."""
        self.writes.append((index, float(seconds)))

    def finish(self) -> None:
        """Stop the wall clock (call after the last write has completed)."""
        self._wall_end = time.perf_counter()

    def report(self) -> Dict[str, Any]:
        """Stats in seconds: network all/key/non_key, load, write, and wall per frame."""
        timed = [f for f in self.frames if not f[3]]
        after = len(self.frames) - self.warmup
        wall = float("nan")
        if after > 0 and self._wall_start is not None and self._wall_end is not None:
            wall = (self._wall_end - self._wall_start) / after
        warm = {i for i, f in enumerate(self.frames) if f[3]}
        return {
            "warmup_frames": len(warm),
            "frames": len(self.frames),
            "network": {"all": summarize(f[1] for f in timed),
                        "key": summarize(f[1] for f in timed if f[0]),
                        "non_key": summarize(f[1] for f in timed if not f[0])},
            "load": summarize(f[2] for f in timed),
            "write": summarize(s for i, s in self.writes if i not in warm),
            "wall_per_frame": wall,
        }


def timing_table(report: Dict[str, Any]) -> str:
    """The timing report as a Markdown table (milliseconds)."""
    rows = [("network, all frames", report["network"]["all"]),
            ("network, keyframes", report["network"]["key"]),
            ("network, non-key frames", report["network"]["non_key"]),
            ("read + preprocess", report["load"]),
            ("write outputs", report["write"])]
    lines = ["| per frame (ms) | frames | mean | p50 | p99 | max |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, s in rows:
        lines.append("| %s | %d | %s | %s | %s | %s |" % (
            name, s["frames"], *(format_ms(s[k]) for k in ("mean", "p50", "p99", "max"))))
    lines.append("| end to end (wall / frame) | %d | %s | | | |"
                 % (report["frames"] - min(report["frames"], WARMUP_FRAMES),
                    format_ms(report["wall_per_frame"])))
    lines.append("")
    lines.append("Network = forward + argmax + copy to host, batch 1. Warm-up, not counted: "
                 "%d of %d frames (the first %d, and the first run of each graph)."
                 % (report["warmup_frames"], report["frames"], WARMUP_FRAMES))
    return "\n".join(lines)


def format_ms(seconds: float) -> str:
    """Seconds as milliseconds with one decimal; '-' for missing values."""
    return "-" if seconds is None or not math.isfinite(seconds) else "%.1f" % (1000 * seconds)
