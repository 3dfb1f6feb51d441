"""An INT8 keyframe trunk for the CPU fast path (MXNet's MKL-DNN quantization).

The reference ResNet-101 trunk is the most expensive network Accel runs. Here its
convolutions are quantized to INT8 with ranges calibrated on real frames (`naive`: the
min/max of each layer's output over the calibration frames); the deformable convolutions
(our CPU kernel) and the head after the trunk (`fc6`, `score`, the fast path's
`fc6_state`) stay in float32. The accuracy change must be measured on labelled frames
(README, "Performance"): it depends on the weights and on the calibration frames.
"""
import logging
import warnings
from typing import Dict, Sequence, Tuple

import mxnet as mx
import numpy as np

logger = logging.getLogger(__name__)

# Layers kept in float32: the head that reads the trunk's features.
HEAD_PREFIXES = ("fc6", "score")


def int8_available() -> bool:
    """True when this MXNet build has the MKL-DNN INT8 kernels (pip's CPU wheel has)."""
    return mx.runtime.Features().is_enabled("MKLDNN")


def quantize_trunk(sym: mx.sym.Symbol, arg_params: Dict[str, mx.nd.NDArray],
                   aux_params: Dict[str, mx.nd.NDArray], calibration: Sequence[np.ndarray],
                   keep_float: Sequence[str] = HEAD_PREFIXES
                   ) -> Tuple[mx.sym.Symbol, Dict[str, mx.nd.NDArray], Dict[str, mx.nd.NDArray]]:
    """INT8 version of a graph with one input `data`, calibrated on `calibration` frames.

    calibration: preprocessed frames (1, 3, H, W), all the same shape (at least one).
    keep_float: layer-name prefixes left in float32 (default: the segmentation head).
    Returns (symbol, arg_params, aux_params) to bind on the CPU; outputs keep their order
    (their names change).
    """
    if not int8_available():
        raise RuntimeError("INT8 needs MXNet built with MKL-DNN (pip's mxnet CPU wheel); "
                           "this build has none")
    if not calibration:
        raise ValueError("INT8 calibration needs at least one frame")
    shapes = {tuple(f.shape) for f in calibration}
    if len(shapes) != 1 or len(next(iter(shapes))) != 4 or next(iter(shapes))[0] != 1:
        raise ValueError("INT8 calibration frames must all be (1, 3, H, W) of one shape, got %s"
                         % sorted(shapes))
    from mxnet.contrib import quantization

    nodes = [n[:-len("_output")] for n in sym.get_internals().list_outputs()
             if n.endswith("_output")]
    excluded = [n for n in nodes if n.startswith(tuple(keep_float))]
    args = {k: v for k, v in arg_params.items() if k in sym.list_arguments()}
    aux = {k: v for k, v in aux_params.items() if k in sym.list_auxiliary_states()}
    frames = np.concatenate([np.asarray(f, np.float32) for f in calibration])
    calib = mx.io.NDArrayIter(data={"data": frames}, batch_size=1)
    with warnings.catch_warnings():   # MXNet's calibration Module asks for a label it never uses
        warnings.filterwarnings("ignore", message=".*label", category=UserWarning)
        qsym, qargs, qaux = quantization.quantize_model_mkldnn(
            sym, args, aux, ctx=mx.cpu(), excluded_sym_names=excluded, calib_mode="naive",
            calib_data=calib, num_calib_examples=len(frames), quantized_dtype="auto",
            logger=None)
    logger.info("INT8 trunk: calibrated on %d frame(s) of %s; kept in float32: %s",
                len(frames), frames.shape[2:], ", ".join(excluded) or "nothing")
    return qsym.get_backend_symbol("MKLDNN_QUANTIZE"), qargs, qaux
