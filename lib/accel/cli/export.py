"""The ONNX export's command line (experiments/export_onnx.py): flags, the export
(accel.export.networks), --check and --benchmark.

--check runs each exported file in ONNX Runtime (accel.export.onnxruntime) and the stored
graph it came from in MXNet through the runtime interface (accel.runtime.mxnet_runtime), as
the segmenter binds it, on sample frames; a loss layer's label (DeepLab's `softmax_label`)
is fed zeros, as it is never read at inference. Per output it logs the largest absolute
difference and, for class scores, the share of pixels whose argmax agrees.

--benchmark streams sample frames through the segmenter on the ONNX Runtime runtime and on
MXNet's reference and fast paths, frame by frame in turns (accel.bench.stream, the
benchmark's protocol and table), and says how often ONNX Runtime's labels agree with the
reference's. The runtime exports the graphs it runs itself, with the same converters.
"""
import argparse
import logging
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from accel.cli import REPO_ROOT
from accel.cli.flags import add_debug_flag, nonnegative_int, positive_int

__all__ = ["VERSIONS", "build_parser", "export_onnx", "check_export"]

logger = logging.getLogger("accel.export")

VERSIONS = ("18", "34", "50", "101", "dff", "deeplab")
DEEPLAB = "deeplab_resnet_v1_101"        # what `--version deeplab` exports


def build_parser(description: str = "") -> argparse.ArgumentParser:
    """The export's flags."""
    from accel.export.onnx import DEFORMABLE_MODES

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--version", required=True, choices=VERSIONS,
                        help="Accel version, dff, or deeplab (frame-by-frame DeepLab-101)")
    parser.add_argument("--model", help="checkpoint prefix (PREFIX-%%04d.params)")
    parser.add_argument("--epoch", type=nonnegative_int, help="checkpoint epoch")
    parser.add_argument("--random-weights", action="store_true",
                        help="no checkpoint: initial values with the fixed bilinear upsampling "
                             "(for --benchmark; outputs are meaningless)")
    parser.add_argument("--size", type=positive_int, nargs=2, default=(1024, 2048),
                        metavar=("H", "W"),
                        help="frame size the graphs are exported for (default 1024 2048)")
    parser.add_argument("--dynamic", action="store_true",
                        help="leave the spatial size symbolic (any H, W multiple of 32)")
    parser.add_argument("--deformable", choices=DEFORMABLE_MODES, default="sampling",
                        help="export of the deformable convolutions (default: sampling)")
    parser.add_argument("--fast", action="store_true",
                        help="export the fast CPU graphs instead (stride-16 scores, to be "
                             "upsampled by the caller; not for deeplab)")
    parser.add_argument("--classes", type=positive_int, default=19,
                        help="number of classes (default 19, Cityscapes)")
    parser.add_argument("--output", default=None,
                        help="output folder (default output/onnx/<version>)")
    parser.add_argument("--check", action="store_true",
                        help="compare MXNet and ONNX Runtime on a sample frame")
    parser.add_argument("--benchmark", type=nonnegative_int, default=0, metavar="FRAMES",
                        help="time FRAMES streamed frames: ONNX Runtime vs MXNet")
    parser.add_argument("--interval", type=positive_int, default=5,
                        help="keyframe interval (benchmark)")
    add_debug_flag(parser)
    return parser


def _check_flags(args: argparse.Namespace) -> None:
    h, w = args.size
    if h % 32 or w % 32:
        raise ValueError("--size %d %d: height and width must be multiples of 32" % (h, w))
    if args.fast and args.version == "deeplab":
        raise ValueError("--fast: the frame-by-frame DeepLab has no fast graph")
    if args.fast and args.benchmark:
        raise ValueError("--benchmark times the exported official graphs; drop --fast")
    if not args.random_weights and (args.model is None or args.epoch is None):
        raise ValueError("--model PREFIX --epoch N (or --random-weights) is required")


def export_onnx(argv: Optional[Sequence[str]], description: str = "") -> Dict[str, Any]:
    """Export as the command line says; returns {'files': {graph: path}, 'benchmark': the
    table or None}."""
    args = build_parser(description).parse_args(argv)
    _check_flags(args)
    from accel.export.networks import export_deeplab, export_network
    from accel.networks import DeepLabGraphs, accel_network
    from accel.oracle import synthetic_params
    from accel.runtime.mxnet_runtime import MXNetRuntime
    from accel.utils.checkpoint import load_checkpoint, params_path

    shape = (1, 3) + tuple(args.size)
    out = Path(args.output or Path(REPO_ROOT) / "output" / "onnx" / args.version)
    deeplab = args.version == "deeplab"
    network = (DeepLabGraphs(DEEPLAB, args.classes) if deeplab
               else accel_network(args.version, args.classes, args.fast))
    if args.random_weights:
        source = "random weights"
        params = synthetic_params(network, shape, MXNetRuntime())
    else:
        source = params_path(args.model, args.epoch)
        params = load_checkpoint(args.model, args.epoch, numpy=True)
    if deeplab:
        paths = {"key": export_deeplab(*params, shape, out, args.classes, args.dynamic, source)}
    else:
        paths = export_network(network, *params, shape, out, deformable=args.deformable,
                               dynamic=args.dynamic, source=source)
    for graph, path in paths.items():
        logger.info("%s graph: %s (%.1f MiB)", graph, path, path.stat().st_size / 2 ** 20)
    if args.check:
        from accel.cli.benchmark import sample_frames

        first, second = sample_frames(args.size, 2)
        key = check_export(paths["key"], network, "key", *params, {"data": first})
        if "cur" in paths:
            state = key["state"][network.state_output]
            check_export(paths["cur"], network, "cur", *params,
                         {"data": second, "data_key": first, "feat_key": state})
    table = _benchmark(args, params) if args.benchmark else None
    return {"files": {k: str(v) for k, v in paths.items()}, "benchmark": table}


def _benchmark(args: argparse.Namespace, params) -> str:
    """The benchmark's table of ONNX Runtime against MXNet on `args.benchmark` frames."""
    from accel.bench.stream import segmenter, time_in_turns
    from accel.cli.benchmark import machine, markdown, sample_frames
    from accel.core.inference import FrameSegmenter
    from accel.core.timing import WARMUP_FRAMES
    from accel.runtime import make_runtime

    frames = sample_frames(args.size, args.benchmark)
    if args.version == "deeplab":
        segs = {path: FrameSegmenter(args.classes, *params, symbol=DEEPLAB,
                                     runtime=make_runtime(name, **options))
                for path, name, options in (("reference", "mxnet", {"original_io": True}),
                                            ("onnxruntime reference", "onnxruntime", {}))}
    else:
        segs = {path: segmenter(path, args.version, params, args.interval,
                                num_classes=args.classes)
                for path in ("reference", "fast", "onnxruntime reference")}
    times = time_in_turns(segs, frames)
    about, native_bf16 = machine()
    report = {"size": list(args.size), "frames": max(0, len(frames) - WARMUP_FRAMES),
              "interval": 1 if args.version == "deeplab" else args.interval,
              "machine": about, "cpu_native_bf16": native_bf16,
              "versions": {args.version: times}, "paths": list(segs), "ratios": {}}
    agree = times["onnxruntime reference"]["agreement"]
    return (markdown(report) + "\n\nargmax agreement, ONNX Runtime vs MXNet reference: "
            "mean %s over the timed frames" % ("-" if agree is None else "%.5f" % agree))


def _mxnet_outputs(network, kind: str, outputs, arg_params: Mapping, aux_params: Mapping,
                   inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """{output: NumPy} of graph `kind` of `network` run by MXNet on `inputs`."""
    from accel.runtime.mxnet_runtime import MXNetRuntime

    runtime = MXNetRuntime()
    shapes = {k: tuple(v.shape) for k, v in inputs.items()}
    args, _, _ = runtime.shapes(network, kind, shapes, outputs)
    labels = {n: np.zeros(s, np.float32) for n, s in args.items() if n.endswith("_label")}
    params = runtime.share({k: v for k, v in arg_params.items() if k not in labels}, aux_params)
    if network.fast:
        runtime.add_params(params, network.derived_params(arg_params))
    shapes.update({n: v.shape for n, v in labels.items()})
    graph = runtime.bind(network, {kind: (list(outputs), shapes)}, params)[kind]
    return {k: runtime.host(v) for k, v in graph.forward(**inputs, **labels).items()}


def check_export(path: Union[str, Path], network, kind: str, arg_params: Mapping,
                 aux_params: Mapping, inputs: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    """{'outputs': {name: (max abs difference, argmax agreement or None)}, 'state': the ONNX
    outputs}: the exported file `path` of graph `kind` against MXNet, logged."""
    from accel.export.onnxruntime import OrtGraph

    path = Path(path)
    graph = OrtGraph(path)
    feed = {k: v for k, v in inputs.items() if k in graph.input_shapes}
    t0 = time.perf_counter()
    got = graph.forward(**feed)
    ort_s = time.perf_counter() - t0
    expected = _mxnet_outputs(network, kind, graph.outputs, arg_params, aux_params, feed)
    report: Dict[str, Tuple[float, Optional[float]]] = {}
    for name in graph.outputs:
        diff = float(np.abs(got[name] - expected[name]).max())
        agree = None
        if got[name].ndim == 4 and got[name].shape[1] < 64:
            agree = float((got[name].argmax(1) == expected[name].argmax(1)).mean())
        report[name] = (diff, agree)
        logger.info("%s: %s max abs diff %.3g (%.2g of max |MXNet|)%s", path.name, name,
                    diff, diff / max(float(np.abs(expected[name]).max()), 1e-30),
                    "" if agree is None else ", argmax agreement %.5f" % agree)
    logger.info("%s: ONNX Runtime forward %.3f s", path.name, ort_s)
    return {"outputs": report, "state": got}
