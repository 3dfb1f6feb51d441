"""The keyframe comparison's outputs: its Markdown table and its plots (results.md,
miou_vs_rate.png, miou_vs_time.png of adaptive_keyframes.py; the adaptive part of
reproduce_tables.py's tables.md and keyframes_*.png)."""
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from accel.symbols.versions import get_version
from accel.utils.plots import line_plot

__all__ = ["method_name", "pct", "fixed_miou_at", "markdown", "plots"]


def method_name(version: str) -> str:
    """The table's name of a version: 'Deep Feature Flow', 'Accel-18'."""
    row = get_version(version)
    return row.paper_row or row.method


def pct(value: Optional[float], fmt: str = "%.2f%%") -> str:
    """A fraction as a percentage in `fmt`; '-' for None."""
    return "-" if value is None else fmt % (100 * value)


def fixed_miou_at(rate: float, fixed_rows: Sequence[Dict[str, Any]]) -> Optional[float]:
    """mIoU of the fixed schedule interpolated at a keyframe rate (linear in the rate)."""
    pts = sorted((r["schedule"]["key_rate"], r["mIoU"]) for r in fixed_rows
                 if r["mIoU"] is not None)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    if not xs or rate < xs[0] or rate > xs[-1]:
        return None
    return float(np.interp(rate, xs, ys))


def markdown(results: Dict[str, Any], title: str = "# Fixed vs adaptive keyframes") -> str:
    """The comparison table (every run) and mIoU by distance pooled per policy."""
    lines = [title, "",
             f"Model `{results['model']}`; test stream(s): {results['test']}; thresholds "
             f"calibrated on: {results['calibration']['what']}.", "",
             "mIoU over every labelled frame of the stream (%); rate = keyframes / frames "
             "(test stream; train = the calibration streams, first frame excluded); "
             "Δ = mIoU minus the fixed schedule's interpolated at the same achieved rate; "
             "time = network + policy per frame (mean / p99 / max, s); run = longest run of "
             "consecutive keyframes; consistency = temporal consistency (%).", "",
             "| method | policy | target rate | threshold | rate (test) | rate (train) | "
             "mIoU | Δ vs fixed | time mean / p99 / max | gaps min-max | run | "
             "consistency |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for v, block in results["versions"].items():
        fixed = block["fixed"]
        for row in fixed + block["adaptive"]:
            s = row["schedule"]
            ref = None if row["policy"] == "fixed" or row["mIoU"] is None else \
                fixed_miou_at(s["key_rate"], fixed)
            d = "" if ref is None else "%+.1f" % (100 * (row["mIoU"] - ref))
            cons = row.get("consistency", {}).get("consistency")
            lines.append("| %s | %s | 1/%d | %s | %.3f | %s | %s | %s | %.3f / %.3f / %.3f | "
                         "%s-%s | %d | %s |" % (
                             method_name(v), row["policy"], row["target_interval"],
                             "" if row.get("threshold") is None else "%.4g" % row["threshold"],
                             s["key_rate"],
                             "" if row.get("train_rate") is None else "%.3f" % row["train_rate"],
                             pct(row["mIoU"], "%.1f"), d, s["time_mean_s"], s["time_p99_s"],
                             s["time_max_s"], s["gap_min"], s["gap_max"], s["longest_key_run"],
                             "" if cons is None else "%.1f" % (100 * cons)))
    if all(r["mIoU"] is None for b in results["versions"].values() for r in b["fixed"]):
        return "\n".join(lines) + "\n"
    lines += ["", "## mIoU by distance from the keyframe (%), pooled over the rates of each "
              "policy", ""]
    for v, block in results["versions"].items():
        rows = block["fixed"][1:] + block["adaptive"]
        if not rows:
            continue
        dmax = max(max(r["by_distance"]) for r in rows)
        lines += [f"**{method_name(v)}**", "",
                  "| policy | " + " | ".join(f"d={d}" for d in range(dmax + 1)) + " |",
                  "|---|" + "---:|" * (dmax + 1)]
        for policy in dict.fromkeys(r["policy"] for r in rows):
            per: Dict[int, List[float]] = {}
            for r in rows:
                if r["policy"] == policy:
                    for d, m in r["by_distance"].items():
                        per.setdefault(int(d), []).append(m)
            lines.append(f"| {policy} | " + " | ".join(
                "%.1f" % (100 * np.mean(per[d])) if d in per else "" for d in range(dmax + 1))
                + " |")
        lines.append("")
    lines.append("(pooled = the mean of the runs' per-distance mIoU where a run has frames at "
                 "that distance; run-level numbers are in the JSON)")
    return "\n".join(lines) + "\n"


def plots(results: Dict[str, Any], out_dir: str, prefix: str = "") -> List[str]:
    """mIoU against keyframe rate and against time per frame: fixed (solid) and adaptive
    (dashed) curves of every version on the same axes (PNG + SVG)."""
    written: List[str] = []
    for xkey, xlabel, fname in (("key_rate", "keyframe rate (keyframes / frame)",
                                 "miou_vs_rate.png"),
                                ("time_mean_s", "time per frame (s, network + policy)",
                                 "miou_vs_time.png")):
        series, styles = {}, {}
        for v, block in results["versions"].items():
            by_policy: Dict[str, List[Dict[str, Any]]] = {"fixed": block["fixed"]}
            for r in block["adaptive"]:
                by_policy.setdefault(r["policy"], []).append(r)
            for policy, rows in by_policy.items():
                pts = sorted((r["schedule"][xkey], 100 * r["mIoU"]) for r in rows
                             if r["mIoU"] is not None)
                if pts:
                    label = f"{method_name(v)} {policy}"
                    series[label] = ([p[0] for p in pts], [p[1] for p in pts])
                    styles[label] = "-" if policy == "fixed" else "--"
        if not series:
            continue
        written += line_plot(os.path.join(out_dir, prefix + fname), series, xlabel,
                             "mIoU (%)", "mIoU against " + xlabel.split(" (")[0] +
                             ": fixed and adaptive keyframes", styles=styles)
    return written
