"""The graph store (lib/accel/graphs/) is what the Symbol builders produce today:
every runtime other than MXNet executes these files, so a stale file would run a network
that no longer exists."""
import json

import pytest

import accel.graphs as store
from accel.symbols.versions import ACCEL_VERSIONS, DEEPLAB_VERSIONS, get_version


def test_every_stored_graph_is_what_the_builders_write_now():
    from dff_deeplab.graphs import build_graphs

    with open(f"{store.GRAPH_DIR}/{store.INDEX}", encoding="utf-8") as f:
        index = json.load(f)
    built = build_graphs()
    assert sorted(index) == sorted(built), \
        "graphs added or removed: run python experiments/write_graphs.py"
    stale = [name for name, text in built.items()
             if open(f"{store.GRAPH_DIR}/{index[name]}", encoding="utf-8").read() != text]
    assert not stale, (f"stale graphs in {store.GRAPH_DIR}: {', '.join(stale)}; run python "
                       f"experiments/write_graphs.py")


def test_the_store_holds_the_inference_graphs_of_every_network():
    names = set(store.graph_names())
    for version in ACCEL_VERSIONS:
        symbol = get_version(version).symbol
        for graph in ("key_test", "cur_test", "fast_key_test", "fast_cur_test"):
            assert store.store_name(symbol, graph) in names
    for symbol in DEEPLAB_VERSIONS:
        assert store.store_name(symbol, "test") in names


@pytest.mark.parametrize("classes", [11, 19])
def test_the_class_count_is_set_when_a_graph_is_loaded(classes):
    graph = store.load_graph("accel_18.cur_test", classes)
    by_name = {n["name"]: n for n in graph["nodes"]}
    assert by_name["score"]["attrs"]["num_filter"] == str(classes)
    assert by_name["upsampling"]["attrs"]["num_group"] == str(classes)
    assert by_name["correction"]["attrs"]["num_filter"] == str(classes)
    assert "$num_classes" not in json.dumps(graph)


def test_a_graph_not_in_the_store_is_named_with_what_is_there():
    with pytest.raises(store.GraphStoreError, match=r"'accel_99.key_test' is not in the "
                                                    r"graph store .* accel_18.cur_test"):
        store.load_graph("accel_99.key_test", 19)
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        store.load_graph("accel_18.cur_test", 0)
