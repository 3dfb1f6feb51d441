"""The ONNX Runtime runtime: each bound graph exported to ONNX, then run by ONNX Runtime.

The export (accel.export.onnx) reads the graph as an MXNet Symbol, so this runtime needs
MXNet to load; shapes and parameter checks are MXNet's. Exported files go to a temporary
folder removed at exit. Arrays are NumPy float32 on the host.
"""
import atexit
import logging
import os
import shutil
import tempfile
from typing import Dict, Optional, Sequence

import numpy as np

from accel.runtime import SharedParams
from accel.runtime.mxnet_runtime import MXNetRuntime, graph_symbol

__all__ = ["OnnxRuntime"]

logger = logging.getLogger(__name__)


class OnnxRuntime(MXNetRuntime):
    """Stored graphs exported to ONNX and run by ONNX Runtime with `providers` (default
    CPUExecutionProvider; checked against the installed build at once)."""

    name = "onnxruntime"

    def __init__(self, providers: Optional[Sequence[str]] = None, ctx=None):
        from accel.export.onnxruntime import DEFAULT_PROVIDERS, check_providers

        super().__init__(ctx)
        self.providers = list(providers or DEFAULT_PROVIDERS)
        check_providers(self.providers)
        self.device = ",".join(self.providers)
        self.fast_ok = True
        self._folder: Optional[str] = None

    def bind(self, network, requests, params: SharedParams, int8=None) -> Dict[str, object]:
        from accel.export.onnx import export_graph
        from accel.export.onnxruntime import OrtGraph

        if int8:
            raise ValueError("--int8 runs in MXNet; it cannot be combined with --runtime "
                             "onnxruntime")
        if self._folder is None:
            self._folder = tempfile.mkdtemp(prefix="accel-onnx-")
            atexit.register(shutil.rmtree, self._folder, True)
        graphs = {}
        for kind, (outputs, shapes) in requests.items():
            size = "x".join(str(d) for d in shapes["data"][2:])
            path = os.path.join(self._folder, f"{network.graph_name(kind)}_{size}.onnx")
            export_graph(graph_symbol(network, kind, outputs), params.args, params.aux,
                         shapes, path)
            logger.info("%s graph running in ONNX Runtime (%s)", kind, path)
            graphs[kind] = OrtGraph(path, self.providers)
        return graphs

    def labels(self, scores) -> np.ndarray:
        return np.asarray(scores).argmax(axis=1)[0].astype(np.uint8)
