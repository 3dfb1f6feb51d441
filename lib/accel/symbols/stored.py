"""The stored inference graphs (accel.graphs) as MXNet Symbols, for the MXNet runtime and the
ONNX export alike."""
import json
from typing import Optional, Sequence

import mxnet as mx

from accel.graphs import load_graph

__all__ = ["stored_symbol"]


def stored_symbol(name: str, num_classes: int, outputs: Optional[Sequence[str]] = None
                  ) -> mx.sym.Symbol:
    """Store graph `name` for `num_classes` classes as a Symbol, restricted to `outputs`
    (internal output names) when given."""
    import accel.operators.custom_ops  # noqa: F401  registers the warp op of the fast graphs
    import accel.operators.deformable  # noqa: F401  and their deformable convolution

    sym = mx.sym.load_json(json.dumps(load_graph(name, num_classes)))
    if outputs is None:
        return sym
    internals = sym.get_internals()
    return mx.sym.Group([internals[n] for n in outputs])
