"""Line plots of results (mIoU against keyframe interval or time), drawn by matplotlib."""
import os
from typing import Dict, List, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

__all__ = ["line_plot"]

Series = Dict[str, Tuple[Sequence[float], Sequence[float]]]


def line_plot(path: str, series: Series, x_label: str, y_label: str, title: str = "",
              x_log: bool = False, styles: Dict[str, str] = None) -> List[str]:
    """Draw {name: (xs, ys)} as lines with markers, axes and a legend; write `path`
    (.png) and the same drawing as .svg beside it. NaN points are skipped; `x_log` uses a
    log x axis (for time per frame); `styles` maps a name to a matplotlib line style
    (e.g. '--' for the adaptive curves). Returns the paths written."""
    finite = {name: [(x, y) for x, y in zip(xs, ys) if np.isfinite(x) and np.isfinite(y)
                     and (x > 0 or not x_log)] for name, (xs, ys) in series.items()}
    if not any(finite.values()):
        raise ValueError(f"line_plot {title!r}: no finite points to draw")
    fig, ax = plt.subplots(figsize=(7.2, 4.8), dpi=100)
    try:
        for name, points in finite.items():
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, (styles or {}).get(name, "-"), marker="o", label=name)
        if x_log:
            ax.set_xscale("log")
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        if title:
            ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small")
        fig.tight_layout()
        base = os.path.splitext(path)[0]
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        written = []
        for ext in (".png", ".svg"):
            fig.savefig(base + ext)
            written.append(base + ext)
        return written
    finally:
        plt.close(fig)
