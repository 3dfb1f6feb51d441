"""Test helpers shared by the operator tests (not a test module); MXNet-free, so that the
PyTorch runtime's tests use them on machines without MXNet."""
import numpy as np
import pytest

from accel.operators import cuda

# (N, C, H, W, flow scale in pixels): odd sizes, two rows, flows that leave the image
# Mismatched (data, flow) shapes: every warp must refuse them, naming both.
BAD_WARP_SHAPES = [
    ((1, 3, 4, 5), (1, 2, 4, 6)),    # width differs
    ((2, 3, 4, 5), (1, 2, 4, 5)),    # batch differs
    ((1, 3, 4, 5), (1, 3, 4, 5)),    # flow with 3 channels
    ((3, 4, 5), (1, 2, 4, 5)),       # data not 4-d
]
WARP_CASES = [(1, 1, 4, 5, 0.7), (2, 3, 7, 9, 3.0), (1, 4, 2, 5, 1.5), (3, 2, 11, 8, 12.0)]


def random_warp_inputs(rng, n, c, h, w, scale, dtype=np.float32):
    feat = rng.standard_normal((n, c, h, w)).astype(dtype)
    flow = (rng.standard_normal((n, 2, h, w)) * scale).astype(dtype)
    return feat, flow


def cupy_or_skip():
    """CuPy with a usable GPU, or skip saying which is missing."""
    try:
        cupy = cuda.import_cupy()
    except ImportError:
        pytest.skip("CuPy is not installed (GPU installs get it from `sh init.sh --gpu` or "
                    "`--mxnet-gpu`)")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("CuPy finds no GPU")
    except cupy.cuda.runtime.CUDARuntimeError as err:
        pytest.skip(f"CuPy finds no usable GPU: {err}")
    return cupy
