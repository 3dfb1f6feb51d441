"""Speed of the compiled label math against its NumPy fallback, and of the training loader.

    python experiments/benchmark_cython.py [--repeat 20] [--data sample_data/camvid]

Prints one table measured in this run: milliseconds per call for each operation on a
Cityscapes-size (1024 x 2048) label map, NumPy vs Cython, and the speed-up; then the
prefetching loader's throughput on the CamVid sample clip (training samples and frames
per second), to compare with the training iteration rate.
"""
import argparse
import logging
import os
import time

import numpy as np

from accel.dataset import CamVidVideo, PrefetchLoader
from accel.dataset.cityscapes import PALETTE, label_id_codec
from accel.utils import segmath

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def best_ms(fn, repeat: int) -> float:
    """Best wall-clock time of `repeat` calls, in milliseconds (least disturbed by noise)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * min(times)


def label_math_rows(repeat: int):
    """(operation, numpy ms, cython ms) on 1024 x 2048 inputs."""
    if segmath.BACKEND != "cython":
        raise SystemExit("the Cython kernels are not built: run `sh init.sh` first")
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


def loader_rate(root: str, key_interval: int, batches: int, workers: int):
    """(samples/s, frames/s) of the prefetching loader on the sample clip's val split."""
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per operation")
    parser.add_argument("--data", default=os.path.join(REPO, "sample_data", "camvid"),
                        help="CamVid root (SegNet layout) for the loader benchmark")
    parser.add_argument("--key-interval", type=int, default=5)
    parser.add_argument("--batches", type=int, default=60)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    print(f"{'operation (1024 x 2048)':34s} {'NumPy ms':>9s} {'Cython ms':>10s} {'speed-up':>9s}")
    for name, t_np, t_cy in label_math_rows(args.repeat):
        speed = f"{t_np / t_cy:8.1f}x" if t_np == t_np else f"{'':>9s}"
        np_col = f"{t_np:9.2f}" if t_np == t_np else f"{'':>9s}"
        print(f"{name:34s} {np_col} {t_cy:10.2f} {speed}")
    print()
    print(f"loader on {args.data} val, K={args.key_interval}, crop 352x480, flip, batch 1:")
    for workers in (1, 2):
        samples, frames = loader_rate(args.data, args.key_interval, args.batches, workers)
        print(f"  {workers} worker thread(s): {samples:7.1f} samples/s  {frames:7.1f} frames/s")


if __name__ == "__main__":
    main()
