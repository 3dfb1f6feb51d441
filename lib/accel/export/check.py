"""An exported ONNX file against the graph it came from: ONNX Runtime (accel.export.onnxruntime)
and MXNet (accel.runtime.mxnet_runtime) on the same inputs, output by output.

The MXNet side binds the stored graph through the runtime interface (`MXNetRuntime.bind`),
as the segmenter does; a loss layer's label (DeepLab's `softmax_label`) is fed zeros, as it
is never read at inference. Per output: the largest absolute difference and, for class
scores, the share of pixels whose argmax agrees.
"""
import logging
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np

from accel.export.onnxruntime import OrtGraph
from accel.networks import Network
from accel.runtime.mxnet_runtime import MXNetRuntime

__all__ = ["mxnet_outputs", "check_export"]

logger = logging.getLogger(__name__)


def mxnet_outputs(network: Network, kind: str, outputs, arg_params: Mapping,
                  aux_params: Mapping, inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """{output: NumPy} of graph `kind` of `network` run by MXNet on `inputs`."""
    runtime = MXNetRuntime()
    shapes = {k: tuple(v.shape) for k, v in inputs.items()}
    args, _, _ = runtime.shapes(network, kind, shapes, outputs)
    labels = {n: np.zeros(s, np.float32) for n, s in args.items() if n.endswith("_label")}
    params = runtime.share({k: v for k, v in arg_params.items() if k not in labels}, aux_params)
    if network.fast:
        runtime.add_params(params, network.derived_params(arg_params))
    shapes.update({n: v.shape for n, v in labels.items()})
    graph = runtime.bind(network, {kind: (list(outputs), shapes)}, params)[kind]
    return {k: runtime.host(v) for k, v in graph.forward(**inputs, **labels).items()}


def check_export(path: Union[str, Path], network: Network, kind: str, arg_params: Mapping,
                 aux_params: Mapping, inputs: Mapping[str, np.ndarray]
                 ) -> Dict[str, Any]:
    """{'outputs': {name: (max abs difference, argmax agreement or None)}, 'state': the ONNX
    outputs}: the exported file `path` of graph `kind` against MXNet, logged."""
    path = Path(path)
    graph = OrtGraph(path)
    feed = {k: v for k, v in inputs.items() if k in graph.input_shapes}
    t0 = time.perf_counter()
    got = graph.forward(**feed)
    ort_s = time.perf_counter() - t0
    expected = mxnet_outputs(network, kind, graph.outputs, arg_params, aux_params, feed)
    report: Dict[str, Tuple[float, Optional[float]]] = {}
    for name in graph.outputs:
        diff = float(np.abs(got[name] - expected[name]).max())
        agree = None
        if got[name].ndim == 4 and got[name].shape[1] < 64:
            agree = float((got[name].argmax(1) == expected[name].argmax(1)).mean())
        report[name] = (diff, agree)
        logger.info("%s: %s max abs diff %.3g (%.2g of max |MXNet|)%s", path.name, name,
                    diff, diff / max(float(np.abs(expected[name]).max()), 1e-30),
                    "" if agree is None else ", argmax agreement %.5f" % agree)
    logger.info("%s: ONNX Runtime forward %.3f s", path.name, ort_s)
    return {"outputs": report, "state": got}
