"""The graph store: the symbol JSON of every inference graph, read without MXNet.

Files live in lib/accel/graphs/ (written by dff_deeplab/graphs.py from the Symbol
builders, checked against them by tests/test_graph_store.py); `index.json` maps a store
name (`<cfg symbol>.<graph>`, e.g. `accel_18.cur_test`, `accel_18.fast_key_test`,
`deeplab_resnet_v1_101.test`) to its file. The class count is written `$num_classes` and
substituted on loading, so one file serves Cityscapes (19), CamVid (11) and any other set.
"""
import functools
import json
import os
from typing import Any, Dict, List

__all__ = ["GRAPH_DIR", "INDEX", "NUM_CLASSES_SENTINEL", "GraphStoreError", "store_name",
           "graph_text", "graph_names", "load_graph"]

GRAPH_DIR = os.path.dirname(os.path.abspath(__file__))  # the JSON files live beside this module
INDEX = "index.json"
# The builders run with this class count; every attribute equal to it is the class count.
NUM_CLASSES_SENTINEL = 7919
_PLACEHOLDER = "$num_classes"


class GraphStoreError(ValueError):
    """A graph is not in the store, or its file is unreadable."""


def store_name(symbol: str, graph: str) -> str:
    """The store name of graph `graph` ('key_test', 'fast_cur_test', 'test'...) of the
    network a config calls `symbol` ('accel_18', 'dff_deeplab', 'deeplab_resnet_18')."""
    return f"{symbol}.{graph}"


def graph_text(graph: Dict[str, Any]) -> str:
    """The stored text of a parsed `Symbol.tojson()`: class counts as `$num_classes`, one
    node per line (small, and a change to a builder shows as a readable diff)."""
    sentinel = str(NUM_CLASSES_SENTINEL)
    nodes = []
    for node in graph["nodes"]:
        attrs = node.get("attrs")
        if attrs:
            node = dict(node, attrs={k: _PLACEHOLDER if v == sentinel else v
                                     for k, v in attrs.items()})
        nodes.append(json.dumps(node, sort_keys=True, separators=(",", ":")))
    rest = {k: v for k, v in graph.items() if k != "nodes"}
    text = ('{"nodes":[\n' + ",\n".join(nodes) + "\n],\n"
            + json.dumps(rest, sort_keys=True, separators=(",", ":"))[1:] + "\n")
    if sentinel in text.replace(_PLACEHOLDER, ""):
        raise ValueError(f"the class-count sentinel {sentinel} appears inside an attribute; "
                         f"pick another NUM_CLASSES_SENTINEL")
    return text


@functools.lru_cache(maxsize=1)
def _index() -> Dict[str, str]:
    path = os.path.join(GRAPH_DIR, INDEX)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise GraphStoreError(f"graph store index {path} is unreadable ({err}); rebuild it "
                              f"with python experiments/write_graphs.py") from None


def graph_names() -> List[str]:
    """Every store name, sorted."""
    return sorted(_index())


@functools.lru_cache(maxsize=64)
def _read(file: str) -> str:
    with open(os.path.join(GRAPH_DIR, file), encoding="utf-8") as f:
        return f.read()


def load_graph(name: str, num_classes: int) -> Dict[str, Any]:
    """The parsed symbol JSON of store graph `name` for `num_classes` classes."""
    index = _index()
    if name not in index:
        raise GraphStoreError(f"graph {name!r} is not in the graph store {GRAPH_DIR}; "
                              f"stored graphs: {', '.join(sorted(index))}")
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    text = _read(index[name]).replace(_PLACEHOLDER, str(int(num_classes)))
    return json.loads(text)
