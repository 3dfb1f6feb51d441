"""Exported graphs in ONNX Runtime, behind the interface the segmenter uses for its graphs.

`OrtGraph(path, providers)` is what `accel.core.inference.BoundGraph` is for an MXNet
Symbol: inputs set by name (`set_input`, kept between calls) and `forward(**inputs)`
returning {output name: array}, keyed by the MXNet output names (`res5c_relu_output`,
`croped_score_output`, ...) that the export stored in the file, so the segmenter reads both
the same way. Arrays are NumPy float32 on the host.

Providers are ONNX Runtime's names, tried in order: 'CPUExecutionProvider' (default),
'CUDAExecutionProvider' or 'TensorrtExecutionProvider' where the installed onnxruntime
build has them (`onnxruntime.get_available_providers()`).
"""
import json
import logging
import os
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np
import onnxruntime as ort

from accel.export.onnx import OUTPUTS_KEY

logger = logging.getLogger(__name__)

DEFAULT_PROVIDERS = ("CPUExecutionProvider",)


def check_providers(providers: Sequence[str]) -> None:
    """Raise, naming them, if some providers are not in this onnxruntime build."""
    available = ort.get_available_providers()
    missing = [p for p in providers if p not in available]
    if missing:
        raise ValueError("ONNX Runtime providers %s are not in this onnxruntime build "
                         "(available: %s)" % (", ".join(missing), ", ".join(available)))


class OrtGraph:
    """One exported ONNX graph in an InferenceSession; inputs persist between calls."""

    def __init__(self, path: Union[str, Path], providers: Optional[Sequence[str]] = None,
                 threads: Optional[int] = None, spin: bool = False):
        """path: an .onnx file written by accel.export.onnx.export_graph (any other ONNX
        file works too, keyed by its own output names). threads: intra-op threads (default:
        OMP_NUM_THREADS, the count MXNet gets, else ONNX Runtime's one per core). spin: let
        idle threads busy-wait (ONNX Runtime's default; off here: on a shared 2-core
        machine spinning threads slowed a DeepLab-101 forward by about half)."""
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError("ONNX graph %s: file not found" % self.path)
        providers = list(providers or DEFAULT_PROVIDERS)
        check_providers(providers)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads = threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        if threads:
            options.intra_op_num_threads = int(threads)
        options.add_session_config_entry("session.intra_op.allow_spinning",
                                         "1" if spin else "0")
        self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        meta = self.session.get_modelmeta().custom_metadata_map
        names = json.loads(meta.get(OUTPUTS_KEY, "{}"))
        self._onnx_outputs = [o.name for o in self.session.get_outputs()]
        self.outputs = [names.get(n, n) for n in self._onnx_outputs]
        self.input_shapes = {i.name: tuple(i.shape) for i in self.session.get_inputs()}
        self._values: Dict[str, np.ndarray] = {}

    @property
    def providers(self):
        """The providers the session actually uses, in priority order."""
        return self.session.get_providers()

    def set_input(self, name: str, value) -> None:
        """Set input `name` (NumPy array or MXNet NDArray) for this and later calls."""
        if name not in self.input_shapes:
            raise KeyError("%s has no input %r (inputs: %s)"
                           % (self.path.name, name, ", ".join(self.input_shapes)))
        if hasattr(value, "asnumpy"):
            value = value.asnumpy()
        value = np.ascontiguousarray(value, dtype=np.float32)
        expected = self.input_shapes[name]
        if len(expected) != value.ndim or any(
                isinstance(e, int) and e != v for e, v in zip(expected, value.shape)):
            raise ValueError("input %r has shape %s, %s expects %s"
                             % (name, value.shape, self.path.name, expected))
        # Copy: the caller may reuse its buffer (the segmenter hands over its frames).
        self._values[name] = value.copy()

    def input(self, name: str) -> np.ndarray:
        """The current value of input `name`."""
        return self._values[name]

    def forward(self, **inputs) -> Dict[str, np.ndarray]:
        """Run the graph on the given inputs (others keep their last value)."""
        for name, value in inputs.items():
            self.set_input(name, value)
        unset = [n for n in self.input_shapes if n not in self._values]
        if unset:
            raise ValueError("%s: inputs %s were never set" % (self.path.name, unset))
        results = self.session.run(self._onnx_outputs, self._values)
        return dict(zip(self.outputs, results))
