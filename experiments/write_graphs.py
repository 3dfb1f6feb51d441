"""Write the graph store (lib/accel/graphs/) from the Symbol builders.

    python experiments/write_graphs.py

Run it after changing a builder; tests/test_graph_store.py fails while the store is stale.
"""
import logging
from typing import Optional, Sequence

from accel.cli import run


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Rebuild every stored graph."""
    import argparse

    from accel.graphs import GRAPH_DIR
    from dff_deeplab.graphs import write_graphs

    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    index = write_graphs(GRAPH_DIR)
    logging.getLogger("accel").info("%d graphs in %d files under %s", len(index),
                                     len(set(index.values())), GRAPH_DIR)
    return 0


if __name__ == "__main__":
    run(main)
