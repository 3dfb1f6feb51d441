"""INT8 trunks for the CPU fast path (MXNet's MKL-DNN quantization).

The reference ResNet-101 trunk is the most expensive network Accel runs. Its convolutions
(and, optionally, those of the flow network and the update branch) are quantized to INT8
with ranges calibrated on real frames (`naive`: the min/max of each layer's output over the
calibration samples); the deformable convolutions (our CPU kernel), the warp, the heads
(`fc6`, `score` and their update-branch copies, the fast path's `fc6_state`) and the fusion
layer stay in float32. The accuracy change must be measured on labelled frames
(docs/performance.md, "INT8"): it depends on the weights and on the calibration frames.
"""
import logging
import warnings
from typing import Dict, Sequence, Tuple

import mxnet as mx
import numpy as np

logger = logging.getLogger(__name__)

def int8_available() -> bool:
    """True when this MXNet build has the MKL-DNN INT8 kernels (pip's CPU wheel has)."""
    return mx.runtime.Features().is_enabled("MKLDNN")


def quantize_graph(sym: mx.sym.Symbol, arg_params: Dict[str, mx.nd.NDArray],
                   aux_params: Dict[str, mx.nd.NDArray],
                   calibration: Sequence[Dict[str, np.ndarray]],
                   keep_float: Sequence[str]
                   ) -> Tuple[mx.sym.Symbol, Dict[str, mx.nd.NDArray], Dict[str, mx.nd.NDArray]]:
    """INT8 version of a graph, calibrated on real inputs.

    calibration: samples {input name: array (1, ...)}, every sample with the same inputs
        and shapes (at least one sample); the names are the graph's data inputs.
    keep_float: layer-name prefixes left in float32 (e.g. `AccelNetwork.float32_layers`).
    Returns (symbol, arg_params, aux_params) to bind on the CPU; outputs keep their order
    (their names change).
    """
    if not int8_available():
        raise RuntimeError("INT8 needs MXNet built with MKL-DNN (pip's mxnet CPU wheel); "
                           "this build has none")
    if not calibration:
        raise ValueError("INT8 calibration needs at least one frame")
    names = tuple(calibration[0])
    layout = {n: tuple(np.shape(calibration[0][n])) for n in names}
    for sample in calibration:
        got = {n: tuple(np.shape(v)) for n, v in sample.items()}
        if got != layout or any(len(v) < 1 or v[0] != 1 for v in got.values()):
            raise ValueError("INT8 calibration frames must all be (1, ...) arrays of one "
                             "shape per input, got %s and %s" % (layout, got))
    from mxnet.contrib import quantization

    nodes = [n[:-len("_output")] for n in sym.get_internals().list_outputs()
             if n.endswith("_output")]
    excluded = [n for n in nodes if n.startswith(tuple(keep_float))]
    args = {k: v for k, v in arg_params.items() if k in sym.list_arguments()}
    aux = {k: v for k, v in aux_params.items() if k in sym.list_auxiliary_states()}
    data = {n: np.concatenate([np.asarray(s[n], np.float32) for s in calibration])
            for n in names}
    calib = mx.io.NDArrayIter(data=data, batch_size=1)
    with warnings.catch_warnings():   # MXNet's calibration Module asks for a label it never uses
        warnings.filterwarnings("ignore", message=".*label", category=UserWarning)
        qsym, qargs, qaux = quantization.quantize_model_mkldnn(
            sym, args, aux, ctx=mx.cpu(), excluded_sym_names=excluded, calib_mode="naive",
            calib_data=calib, num_calib_examples=len(calibration), quantized_dtype="auto",
            data_names=names, logger=None)
    logger.info("INT8: calibrated on %d sample(s) of %s; kept in float32: %s",
                len(calibration), layout, ", ".join(excluded) or "nothing")
    return qsym.get_backend_symbol("MKLDNN_QUANTIZE"), qargs, qaux
