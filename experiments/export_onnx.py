"""Export a released (or trained) Accel / DFF / DeepLab-101 checkpoint to ONNX files.

    python experiments/export_onnx.py --version 18 --model model/accel-18 --epoch 0 \
        --size 1024 2048 --output output/onnx/accel-18
    python experiments/export_onnx.py --version deeplab --model model/pretrained/deeplab-101 \
        --epoch 0 --size 1024 2048 --dynamic --check

Writes, with the checkpoint's weights as initializers:
* Accel-18/34/50/101 and dff: `<name>.key_test.onnx` (input `data`; outputs `res5c_relu`,
  the state, and `croped_score`) and `<name>.cur_test.onnx` (inputs `data`, `data_key` the
  previous frame, `feat_key` the propagated state; outputs `warping_feat`, the next state,
  and the scores `correction`, or `croped_score` for 101 and dff);
* deeplab: `deeplab_resnet_v1_101.test.onnx` (input `data`; outputs `croped_score`,
  `softmax`).
Frames are (1, 3, H, W) float32, RGB minus the means (R 123.15, G 115.90, B 103.06), H and
W multiples of 32. --dynamic leaves H and W symbolic. --deformable picks the export of the
deformable convolutions: 'sampling' (GridSample + one convolution, opset 17, any runtime
with GridSample) or 'deformconv' (ONNX DeformConv, opset 19). --check runs each graph in
MXNet and ONNX Runtime (CPU) on a sample frame and prints the differences.
"""
import argparse
import logging
import sys
import time
from pathlib import Path

import accel  # noqa: F401  (first: sets OMP_NUM_THREADS before MXNet loads)
import mxnet as mx
import numpy as np

from accel.export.onnx import (DEFORMABLE_MODES, export_deeplab, export_network,
                               network_outputs)
from accel.utils.checkpoint import load_checkpoint, params_path
from accel.utils.image import image_to_tensor, read_image, resize_image

REPO = Path(__file__).resolve().parents[1]
VERSIONS = ("18", "34", "50", "101", "dff", "deeplab")
SAMPLE = REPO / "sample_data" / "camvid" / "val"
PIXEL_MEANS_BGR = (103.06, 115.90, 123.15)

logger = logging.getLogger("export_onnx")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", required=True, choices=VERSIONS,
                        help="Accel version, dff, or deeplab (frame-by-frame DeepLab-101)")
    parser.add_argument("--model", required=True, help="checkpoint prefix (PREFIX-%%04d.params)")
    parser.add_argument("--epoch", type=int, required=True, help="checkpoint epoch")
    parser.add_argument("--size", type=int, nargs=2, default=(1024, 2048), metavar=("H", "W"),
                        help="frame size the graphs are exported for (default 1024 2048)")
    parser.add_argument("--dynamic", action="store_true",
                        help="leave the spatial size symbolic (any H, W multiple of 32)")
    parser.add_argument("--deformable", choices=DEFORMABLE_MODES, default="sampling",
                        help="export of the deformable convolutions (default: sampling)")
    parser.add_argument("--fast", action="store_true",
                        help="export the fast CPU graphs instead (stride-16 scores, to be "
                             "upsampled by the caller; not for deeplab)")
    parser.add_argument("--classes", type=int, default=19, help="number of classes")
    parser.add_argument("--output", default=None,
                        help="output folder (default output/onnx/<version>)")
    parser.add_argument("--check", action="store_true",
                        help="compare MXNet and ONNX Runtime on a sample frame")
    return parser


def accel_network(version: str, classes: int, fast: bool):
    """The official builder, or with --fast the fast CPU one."""
    from dff_deeplab.symbol import AccelNetwork

    if not fast:
        return AccelNetwork(version, classes)
    try:
        from dff_deeplab.fast_symbol import FastAccelNetwork
    except ImportError:  # before the fast path moved to its own module (issue #12)
        return AccelNetwork(version, classes, fast=True)
    return FastAccelNetwork(version, classes)


def sample_frames(size, count=2):
    """`count` consecutive sample frames resized to `size`, preprocessed (1, 3, H, W)."""
    paths = sorted(SAMPLE.glob("*.png"))[:count]
    if len(paths) < count:
        raise FileNotFoundError("--check needs %d frames in %s" % (count, SAMPLE))
    return [image_to_tensor(resize_image(read_image(str(p)), tuple(size)), PIXEL_MEANS_BGR)
            for p in paths]


def run_mxnet(sym, names, args, aux, inputs):
    internals = sym.get_internals()
    group = mx.sym.Group([internals[n] for n in names])
    feed = {k: mx.nd.array(v) for k, v in inputs.items() if k in group.list_arguments()}
    exe = group.bind(mx.cpu(), args={**{n: args[n] for n in group.list_arguments()
                                        if n not in feed}, **feed},
                     aux_states={n: aux[n] for n in group.list_auxiliary_states()},
                     grad_req="null")
    return dict(zip(names, (o.asnumpy() for o in exe.forward(is_train=False))))


def compare(path, sym, args, aux, inputs) -> dict:
    """Max abs difference per output and argmax agreement of 19-channel maps, ORT vs MXNet."""
    from accel.export.onnxruntime import OrtGraph

    graph = OrtGraph(path)
    feed = {k: v for k, v in inputs.items() if k in graph.input_shapes}
    t0 = time.perf_counter()
    got = graph.forward(**feed)
    ort_s = time.perf_counter() - t0
    expected = run_mxnet(sym, graph.outputs, args, aux, feed)
    report = {}
    for name in graph.outputs:
        diff = float(np.abs(got[name] - expected[name]).max())
        agree = None
        if got[name].ndim == 4 and got[name].shape[1] < 64:
            agree = float((got[name].argmax(1) == expected[name].argmax(1)).mean())
        report[name] = (diff, agree)
        logger.info("%s: %s max abs diff %.3g (|MXNet| mean %.3g)%s", path.name, name, diff,
                    float(np.abs(expected[name]).mean()),
                    "" if agree is None else ", argmax agreement %.5f" % agree)
    logger.info("%s: ONNX Runtime forward %.3f s", path.name, ort_s)
    return {"outputs": report, "state": got}


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    h, w = args.size
    if h % 32 or w % 32:
        raise SystemExit("--size %d %d: height and width must be multiples of 32" % (h, w))
    shape = (1, 3, h, w)
    out = Path(args.output or REPO / "output" / "onnx" / args.version)
    source = params_path(args.model, args.epoch)
    arg_params, aux_params = load_checkpoint(args.model, args.epoch)
    if args.version == "deeplab":
        if args.fast:
            raise SystemExit("--fast: the frame-by-frame DeepLab has no fast graph")
        path = export_deeplab(arg_params, aux_params, shape, out, args.classes, args.dynamic, source)
        paths = {"test": path}
        if args.check:
            from deeplab.symbol import deeplab_resnet_v1_101

            compare(path, deeplab_resnet_v1_101(args.classes), arg_params, aux_params,
                    {"data": sample_frames((h, w), 1)[0]})
        return {k: str(v) for k, v in paths.items()}
    network = accel_network(args.version, args.classes, args.fast)
    paths = export_network(network, arg_params, aux_params, shape, out, deformable=args.deformable,
                           dynamic=args.dynamic, source=source)
    if args.check:
        derived = {**arg_params, **network.derived_params(arg_params)}
        first, second = sample_frames((h, w), 2)
        key = compare(paths["key"], network.key_test(), derived, aux_params,
                      {"data": first})
        state = key["state"][network_outputs(network, "key")[0]]
        compare(paths["cur"], network.cur_test(), derived, aux_params,
                {"data": second, "data_key": first, "feat_key": state})
    for graph, path in paths.items():
        logger.info("%s graph: %s (%.1f MiB)", graph, path, path.stat().st_size / 2 ** 20)
    return {k: str(v) for k, v in paths.items()}


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
