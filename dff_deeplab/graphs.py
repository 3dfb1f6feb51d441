"""The graph store: every inference graph as symbol JSON, written from the one builder.

Runtimes other than MXNet (accel.runtime.torch_runtime) execute the graphs our Symbol
builders produce without importing MXNet, so the graphs travel as data: the JSON of
`Symbol.tojson()` under lib/accel/graphs/, one file per distinct graph, and
`index.json` naming each graph's file. This module writes them; tests/test_graph_store.py
builds them again and fails, naming the graph, when a committed file is stale.

    python experiments/write_graphs.py          # after changing a builder

Graphs (store names): for every Accel row of accel.symbols.versions (`accel_18`, ...,
`dff_deeplab`) its `key_test` and `cur_test`, the fast CPU rewrites `fast_key_test` and
`fast_cur_test` (dff_deeplab/fast_symbol.py), `accel_18.train` (the training graph the
oracle fixture checks), and `test` of the frame-by-frame DeepLab networks.

Two things make the files reproducible: each graph is built under a fresh MXNet
NameManager (automatic names such as `_plus3` restart at 0), and the number of classes is
built as a sentinel and written as `$num_classes` (accel.graphs substitutes it).
"""
import json
import os
from typing import Dict, Iterator, Tuple

import mxnet as mx

from accel.graphs import (GRAPH_DIR, INDEX, NUM_CLASSES_SENTINEL, graph_text,
                                 store_name)
from accel.symbols.deeplab import deeplab_symbol
from accel.symbols.versions import ACCEL_VERSIONS, DEEPLAB_VERSIONS, get_version
from dff_deeplab.fast_symbol import FastAccelNetwork
from dff_deeplab.symbol import AccelNetwork

__all__ = ["build_graphs", "write_graphs"]


def _builders() -> Iterator[Tuple[str, object]]:
    """(store name, zero-argument builder) of every stored graph, in the table's order."""
    c = NUM_CLASSES_SENTINEL
    for name in ACCEL_VERSIONS:
        symbol = get_version(name).symbol
        official, fast = AccelNetwork(name, c), FastAccelNetwork(name, c)
        yield store_name(symbol, "key_test"), official.key_test
        yield store_name(symbol, "cur_test"), official.cur_test
        yield store_name(symbol, "fast_key_test"), fast.key_test
        yield store_name(symbol, "fast_cur_test"), fast.cur_test
    yield store_name("accel_18", "train"), AccelNetwork("18", c).train
    for symbol in DEEPLAB_VERSIONS:
        yield store_name(symbol, "test"), (lambda s=symbol: deeplab_symbol(s, c))


def build_graphs() -> Dict[str, str]:
    """{store name: JSON text} of every graph, as the store writes it."""
    graphs = {}
    for name, build in _builders():
        with mx.name.NameManager():
            graphs[name] = graph_text(json.loads(build().tojson()))
    return graphs


def write_graphs(folder: str = GRAPH_DIR) -> Dict[str, str]:
    """Write every graph (identical graphs once) and index.json into `folder`; returns the
    index {store name: file name}. Files no graph uses any more are removed."""
    os.makedirs(folder, exist_ok=True)
    index: Dict[str, str] = {}
    files: Dict[str, str] = {}   # text -> file name
    for name, text in build_graphs().items():
        if text not in files:
            files[text] = name + ".json"
            with open(os.path.join(folder, files[text]), "w", encoding="utf-8") as f:
                f.write(text)
        index[name] = files[text]
    with open(os.path.join(folder, INDEX), "w", encoding="utf-8") as f:
        json.dump(index, f, indent=1, sort_keys=True)
        f.write("\n")
    for old in set(os.listdir(folder)) - set(files.values()) - {INDEX}:
        if old.endswith(".json"):
            os.remove(os.path.join(folder, old))
    return index
