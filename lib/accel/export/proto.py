"""Small edits of ONNX protos that the export needs (accel.export.onnx)."""
from typing import Mapping, Sequence

import mxnet as mx
import numpy as np
import onnx

__all__ = ["HostArray", "keep", "attach_weights", "name_output_dims"]


class HostArray:
    """A NumPy parameter as the exporter reads one (shape, dtype, asnumpy), not copied."""

    def __init__(self, value):
        self.value = value.asnumpy() if isinstance(value, mx.nd.NDArray) else np.asarray(value)
        self.shape, self.dtype = self.value.shape, self.value.dtype

    def asnumpy(self) -> np.ndarray:
        return self.value


def keep(field, items) -> None:
    """Replace a repeated field's entries by copies of `items`, in that order."""
    copies = [type(item)() for item in items]
    for copy, item in zip(copies, items):
        copy.CopyFrom(item)
    del field[:]
    field.extend(copies)


def attach_weights(graph: onnx.GraphProto, inputs: Sequence[str],
                    weights: Mapping[str, np.ndarray]) -> None:
    """Graph inputs: only the real inputs; the weights any node reads as initializers (not
    a loss layer's unused label)."""
    keep(graph.input, [vi for vi in graph.input if vi.name in inputs])
    read = {name for node in graph.node for name in node.input}
    for name, array in weights.items():
        if name in read:
            tensor = graph.initializer.add(name=name, raw_data=array.tobytes(),
                                           data_type=onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[
                                               array.dtype])
            tensor.dims.extend(array.shape)


def name_output_dims(graph: onnx.GraphProto) -> None:
    """Symbolic names for the dynamic output dims (the exporter leaves them blank)."""
    for vi in graph.output:
        for i, dim in enumerate(vi.type.tensor_type.shape.dim):
            if not dim.dim_param and not dim.HasField("dim_value"):
                dim.dim_param = "%s_dim%d" % (vi.name, i)
