"""The Accel, DFF and DeepLab graphs as ONNX files: which outputs, which names, which docs.

`export_network` writes an Accel network's keyframe and non-key graphs, `export_deeplab` the
frame-by-frame DeepLab-101, both through `accel.export.onnx.export_graph`. The graphs are
the stored ones (accel.graphs, as Symbols: accel.symbols.stored); which outputs a file holds
is the network contract's (accel.networks.Network).
"""
import json
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Union

import mxnet as mx

from accel.export.onnx import Shape, export_graph
from accel.networks import DeepLabGraphs, Network
from accel.symbols.stored import stored_symbol
from accel.utils.image import PIXEL_MEANS

__all__ = ["INPUT_DOCS", "GRAPH_FILES", "DEEPLAB_FILE", "network_outputs", "graph_file",
           "export_network", "export_deeplab"]

# What each graph's inputs are, stored in the files' metadata and shown by the export script.
INPUT_DOCS = {
    "data": "the frame to segment (N, 3, H, W) float32: RGB minus the means "
            "R %.2f, G %.2f, B %.2f, no scaling" % tuple(reversed(PIXEL_MEANS)),
    "data_key": "the previous frame (keyframe or not), preprocessed the same way",
    "feat_key": "the propagated state: the keyframe's state output, or the previous "
                "non-key frame's `warping_feat`",
}
GRAPH_FILES = {"key": "key_test", "cur": "cur_test"}


def network_outputs(network: Network, graph: str) -> List[str]:
    """MXNet output names a segmenter reads from an Accel graph ('key' or 'cur'): the
    state and the scores of `key_test`, the new state `warping_feat` and the fused scores
    of `cur_test`."""
    if graph == "key":
        return [network.state_output, network.score_output(True)]
    if graph == "cur":
        return [network.warped_output, network.score_output(False)]
    raise ValueError("graph %r: expected 'key' or 'cur'" % (graph,))


def _symbol(network: Network, graph: str, outputs=None) -> mx.sym.Symbol:
    return stored_symbol(network.graph_name(graph), network.num_classes, outputs)


def graph_file(network, graph: str) -> str:
    """File name of an exported Accel graph: `accel_18.key_test.onnx`, `dff.cur_test.onnx`."""
    stem = "dff" if network.name == "dff" else "accel_%s" % network.name
    return "%s.%s.onnx" % (stem, GRAPH_FILES[graph])


def export_network(network: Network, arg_params: Mapping, aux_params: Mapping,
                   frame_shape: Shape, folder: Union[str, Path],
                   graphs: Sequence[str] = ("key", "cur"), extra_outputs: Sequence[str] = (),
                   deformable: str = "sampling", dynamic: bool = False,
                   source: str = "") -> Dict[str, Path]:
    """Export the keyframe ('key') and non-key ('cur') graphs of an Accel network (its
    official graphs, or the fast CPU ones) for frames of `frame_shape` (1, 3, H, W) into
    `folder`; returns {graph: path}.

    Key graph: input `data`; outputs the state and scores (`res5c_relu`, `croped_score`).
    Non-key graph: inputs `data`, `data_key`, `feat_key` (INPUT_DOCS); outputs
    `warping_feat` (the next state) and the scores (`correction`, or `croped_score` for
    101 and dff). extra_outputs: more internal outputs by MXNet name (e.g. the branch
    scores `croped_score_output`), where a graph has them.
    """
    params = dict(arg_params)
    if network.fast:  # derived kernels of the fast path (NumPy)
        params.update({k: mx.nd.array(v) for k, v in network.derived_params(params).items()})
    state = network.state_output
    _, (state_shape,), _ = _symbol(network, "key", [state]).infer_shape(
        data=tuple(frame_shape))
    shapes = {"key": {"data": tuple(frame_shape)},
              "cur": {"data": tuple(frame_shape), "data_key": tuple(frame_shape),
                      "feat_key": tuple(state_shape)}}
    paths = {}
    for graph in graphs:
        available = set(_symbol(network, graph).get_internals().list_outputs())
        names = network_outputs(network, graph)
        names += [n for n in extra_outputs if n in available and n not in names]
        inputs = shapes[graph]
        meta = {"accel.graph": graph_file(network, graph)[:-len(".onnx")],
                "accel.version": network.name, "accel.state": state,
                "accel.fast": str(bool(network.fast)),
                "accel.inputs": json.dumps({k: INPUT_DOCS[k] for k in inputs}),
                "accel.source": source}
        paths[graph] = Path(folder) / graph_file(network, graph)
        export_graph(_symbol(network, graph, names), params, aux_params, inputs,
                     paths[graph], deformable=deformable, dynamic=dynamic, metadata=meta,
                     doc="%s of Accel version %s; inputs: %s" % (
                         GRAPH_FILES[graph], network.name,
                         "; ".join("%s = %s" % (k, INPUT_DOCS[k]) for k in inputs)))
    return paths


DEEPLAB_FILE = "deeplab_resnet_v1_101.test.onnx"


def export_deeplab(arg_params: Mapping, aux_params: Mapping, frame_shape: Shape,
                   folder: Union[str, Path], num_classes: int = 19, dynamic: bool = False,
                   source: str = "") -> Path:
    """Export the frame-by-frame DeepLab-101 (`deeplab_resnet_v1_101.test`): input `data`,
    outputs `croped_score` and `softmax` (per-pixel class probabilities)."""
    sym = _symbol(DeepLabGraphs("deeplab_resnet_v1_101", num_classes), "key",
                  ["croped_score_output", "softmax_output"])
    path = Path(folder) / DEEPLAB_FILE
    export_graph(sym, arg_params, aux_params, {"data": tuple(frame_shape)}, path,
                 dynamic=dynamic, doc="DeepLab-101 frame by frame; data = " + INPUT_DOCS["data"],
                 metadata={"accel.graph": "deeplab_resnet_v1_101.test", "accel.source": source,
                           "accel.inputs": json.dumps({"data": INPUT_DOCS["data"]})})
    return path
