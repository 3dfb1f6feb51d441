"""The compiled label math against its NumPy fallback, and the training loader's rate
(experiments/benchmark_cython.py).

Milliseconds per call for each operation on a Cityscapes-size (1024 x 2048) label map,
NumPy vs Cython (the best of `repeat` calls: the least disturbed by noise), then the
prefetching loader's throughput on a CamVid clip (training samples and frames per second),
to compare with the training iteration rate.
"""
import math
import time
from typing import Callable, List, Tuple

import numpy as np

from accel.dataset import CamVidVideo, PrefetchLoader
from accel.dataset.cityscapes import PALETTE, label_id_codec
from accel.utils import segmath

__all__ = ["best_ms", "label_math_rows", "loader_rate", "label_math_report"]


def best_ms(fn: Callable[[], object], repeat: int) -> float:
    """Best wall-clock time of `repeat` calls, in milliseconds (least disturbed by noise)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * min(times)


def label_math_rows(repeat: int) -> List[Tuple[str, float, float]]:
    """(operation, numpy ms, cython ms) on 1024 x 2048 inputs (NaN: no NumPy twin)."""
    if segmath.BACKEND != "cython":
        raise ValueError("the Cython kernels are not built: run `sh init.sh` first")
    from accel.cython import segmath_cy as cy
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 34, size=(1024, 2048), dtype=np.uint8)
    lut = label_id_codec().lut
    train = segmath.numpy_lut_apply(ids, lut)
    pred = rng.integers(0, 19, size=train.shape).astype(np.int32)
    label32 = train.astype(np.int32).ravel()
    conf = np.zeros((19, 19), np.int64)
    return [
        ("label id -> train id (LUT)", best_ms(lambda: segmath.numpy_lut_apply(ids, lut), repeat),
         best_ms(lambda: cy.lut_apply(ids, lut), repeat)),
        ("confusion matrix, 19 classes", best_ms(
            lambda: segmath.numpy_accumulate_confusion(conf, pred, train), repeat),
         best_ms(lambda: segmath.accumulate_confusion(conf, pred, train), repeat)),
        ("  (kernel only, int32 inputs)", float("nan"),
         best_ms(lambda: cy.accumulate_confusion(conf, pred.ravel(), label32, 255), repeat)),
        ("palette colouring", best_ms(lambda: segmath.numpy_colorize(train, PALETTE), repeat),
         best_ms(lambda: cy.colorize(train, PALETTE), repeat)),
    ]


def loader_rate(root: str, key_interval: int, batches: int, workers: int
                ) -> Tuple[float, float]:
    """(samples/s, frames/s) of the prefetching loader on the clip's val split."""
    ds = CamVidVideo(root, "val", key_interval=key_interval, scales=(360, 480),
                     crop_size=(352, 480), flip=True)
    loader = PrefetchLoader(ds, batch_size=1, shuffle=True, num_workers=workers)
    n, t0 = 0, time.perf_counter()
    while n < batches:
        for _ in loader:
            n += 1
            if n == batches:
                break
    rate = n / (time.perf_counter() - t0)
    return rate, rate * key_interval


def label_math_report(repeat: int, root: str, key_interval: int, batches: int) -> str:
    """Both measurements as the runner prints them."""
    lines = [f"{'operation (1024 x 2048)':34s} {'NumPy ms':>9s} {'Cython ms':>10s} "
             f"{'speed-up':>9s}"]
    for name, t_np, t_cy in label_math_rows(repeat):
        known = not math.isnan(t_np)
        speed = f"{t_np / t_cy:8.1f}x" if known else f"{'':>9s}"
        np_col = f"{t_np:9.2f}" if known else f"{'':>9s}"
        lines.append(f"{name:34s} {np_col} {t_cy:10.2f} {speed}")
    lines += ["", f"loader on {root} val, K={key_interval}, crop 352x480, flip, batch 1:"]
    for workers in (1, 2):
        samples, frames = loader_rate(root, key_interval, batches, workers)
        lines.append(f"  {workers} worker thread(s): {samples:7.1f} samples/s  "
                     f"{frames:7.1f} frames/s")
    return "\n".join(lines)
