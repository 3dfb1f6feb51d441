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

--benchmark N (with --random-weights instead of --model/--epoch for timing only) streams N
sample frames, keyframe every --interval, through ONNX Runtime (CPU) and the MXNet
reference and fast paths, frame by frame in turns, and prints a Markdown table: the
protocol of experiments/benchmark.py (warm-up frames left out; per frame the forward, the
argmax and the copy to the host; reference = the original demo's host work).
"""
import argparse
import logging
import time
from pathlib import Path

import accel  # noqa: F401  (first: sets OMP_NUM_THREADS before MXNet loads)
import mxnet as mx
import numpy as np

from accel.cli import run
from accel.cli.flags import add_debug_flag, nonnegative_int, positive_int
from accel.export.networks import export_deeplab, export_network, network_outputs
from accel.export.onnx import DEFORMABLE_MODES
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
    paths = sorted(SAMPLE.glob("*.png"))
    if not paths:
        raise FileNotFoundError("no sample frames in %s" % SAMPLE)
    # Past the folder's end the clip starts again (timing only).
    return [image_to_tensor(resize_image(read_image(str(paths[i % len(paths)])), tuple(size)),
                            PIXEL_MEANS_BGR) for i in range(count)]


def run_mxnet(sym, names, args, aux, inputs):
    internals = sym.get_internals()
    group = mx.sym.Group([internals[n] for n in names])
    feed = {k: mx.nd.array(v) for k, v in inputs.items() if k in group.list_arguments()}
    # A loss layer's label is not read at inference (deeplab's `softmax_label`).
    arg_shapes, _, _ = group.infer_shape_partial(**{k: v.shape for k, v in feed.items()})
    feed.update({n: mx.nd.zeros(s) for n, s in zip(group.list_arguments(), arg_shapes)
                 if n.endswith("_label") and n not in feed})
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
        logger.info("%s: %s max abs diff %.3g (%.2g of max |MXNet|)%s", path.name, name,
                    diff, diff / max(float(np.abs(expected[name]).max()), 1e-30),
                    "" if agree is None else ", argmax agreement %.5f" % agree)
    logger.info("%s: ONNX Runtime forward %.3f s", path.name, ort_s)
    return {"outputs": report, "state": got}


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    h, w = args.size
    if h % 32 or w % 32:
        raise ValueError("--size %d %d: height and width must be multiples of 32" % (h, w))
    if args.fast and args.version == "deeplab":
        raise ValueError("--fast: the frame-by-frame DeepLab has no fast graph")
    if args.fast and args.benchmark:
        raise ValueError("--benchmark times the exported official graphs; drop --fast")
    shape = (1, 3, h, w)
    out = Path(args.output or REPO / "output" / "onnx" / args.version)
    if args.random_weights:
        source = "random weights"
        arg_params, aux_params = random_params(args.version, args.classes, shape)
    elif args.model is None or args.epoch is None:
        raise ValueError("--model PREFIX --epoch N (or --random-weights) is required")
    else:
        source = params_path(args.model, args.epoch)
        arg_params, aux_params = load_checkpoint(args.model, args.epoch)
    if args.version == "deeplab":
        path = export_deeplab(arg_params, aux_params, shape, out, args.classes, args.dynamic, source)
        paths = {"test": path}
        if args.check:
            from deeplab.symbol import deeplab_resnet_v1_101

            compare(path, deeplab_resnet_v1_101(args.classes), arg_params, aux_params,
                    {"data": sample_frames((h, w), 1)[0]})
        if args.benchmark:
            benchmark_deeplab(path, arg_params, aux_params, sample_frames((h, w), args.benchmark))
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
    if args.benchmark:
        benchmark_accel(network, paths, arg_params, aux_params,
                        sample_frames((h, w), args.benchmark), args.interval)
    return {k: str(v) for k, v in paths.items()}


# -- timing -----------------------------------------------------------------------------------

def random_params(version: str, classes: int, shape):
    """Initial values for every parameter (the upsampling kernels bilinear, as released)."""
    from accel.core.initializer import initialize_missing

    if version == "deeplab":
        from deeplab.symbol import deeplab_resnet_v1_101
        sym = deeplab_resnet_v1_101(classes).get_internals()["croped_score_output"]
        return initialize_missing(sym, {"data": shape}, {}, {})
    from accel.core.initializer import initialize_network

    return initialize_network(accel_network(version, classes, False), shape)


def _warmup() -> int:
    try:
        from accel.core.timing import WARMUP_FRAMES
    except ImportError:
        WARMUP_FRAMES = 2  # docs/design.md: 2 warm-up frames
    return WARMUP_FRAMES


class OrtStream:
    """The exported key/non-key graphs streamed with the segmenter's policy (keyframe every
    `interval`; each frame hands itself and its state to the next non-key frame)."""

    def __init__(self, network, paths, interval: int):
        from accel.export.onnxruntime import OrtGraph

        self.key, self.cur = OrtGraph(paths["key"]), OrtGraph(paths["cur"])
        self.key_out = network_outputs(network, "key")
        self.cur_out = network_outputs(network, "cur")
        self.interval, self.index = interval, 0

    def step(self, frame):
        is_key = self.index % self.interval == 0
        t0 = time.perf_counter()
        state_name, score_name = self.key_out if is_key else self.cur_out
        out = (self.key if is_key else self.cur).forward(data=frame)
        pred = out[score_name].argmax(axis=1)[0].astype(np.uint8)
        seconds = time.perf_counter() - t0
        self.cur.set_input("data_key", frame)
        self.cur.set_input("feat_key", out[state_name])
        self.index += 1
        return pred, seconds


def _mxnet_segmenters(network, args, aux, interval):
    from accel.core.inference import VideoSegmenter

    segs = {"MXNet reference": VideoSegmenter(network, args, aux, interval,
                                              original_io=True)}
    fast = accel_network(network.name, network.num_classes, True)
    try:
        segs["MXNet fast"] = VideoSegmenter(fast, args, aux, interval, fast=True)
    except TypeError:  # before issue #12: the official builder with fast=True
        segs["MXNet fast"] = VideoSegmenter(network, args, aux, interval, fast=True)
    return segs


def _stats(values_s) -> str:
    v = np.asarray(values_s) * 1e3
    if not v.size:
        return "-"
    return "%.0f / %.0f / %.0f / %.0f" % (v.mean(), np.median(v), np.percentile(v, 99), v.max())


def _table(network_name, size, times, keys, agree):
    """Rows in the format of experiments/results/benchmark_*.md (ms: mean / p50 / p99 /
    max), the warm-up frames left out."""
    warm = _warmup()
    keys = np.asarray(keys[warm:], bool)
    ref = np.mean(times["MXNet reference"][warm:])
    print("Per-frame network time (ms: mean / p50 / p99 / max), %dx%d, %d frames after %d "
          "warm-up\n" % (size + (len(keys), warm)))
    print("| network | path | all frames | keyframes | non-key frames | / reference |")
    print("|---|---|---|---|---|---|")
    for name, values in times.items():
        v = np.asarray(values[warm:])
        ratio = "" if name == "MXNet reference" else "%.2f" % (v.mean() / ref)
        print("| %s | %s | %s | %s | %s | %s |" % (network_name, name, _stats(v),
                                                   _stats(v[keys]), _stats(v[~keys]), ratio))
    print("\nargmax agreement, ONNX Runtime vs MXNet reference: min %.5f, mean %.5f over %d "
          "frames" % (min(agree), float(np.mean(agree)), len(agree)))


def benchmark_accel(network, paths, args, aux, frames, interval):
    """ONNX Runtime CPU vs the MXNet reference and fast paths, frames in turns."""
    ort_stream = OrtStream(network, paths, interval)
    segs = _mxnet_segmenters(network, args, aux, interval)
    times = {"ONNX Runtime CPU": []}
    times.update({name: [] for name in segs})
    agree, keys = [], []
    for index, frame in enumerate(frames):
        keys.append(index % interval == 0)
        pred, seconds = ort_stream.step(frame)
        times["ONNX Runtime CPU"].append(seconds)
        for name, seg in segs.items():
            result = seg.step(frame)
            times[name].append(result.network_s)
            if name == "MXNet reference":
                agree.append(float((result.pred == pred).mean()))
    name = "DFF" if network.name == "dff" else "Accel-%s" % network.name
    _table("%s (interval %d)" % (name, interval), frames[0].shape[2:], times, keys, agree)


def benchmark_deeplab(path, args, aux, frames):
    """DeepLab-101 frame by frame: ONNX Runtime CPU vs MXNet (bound once, argmax on host)."""
    from accel.export.onnxruntime import OrtGraph
    from deeplab.symbol import deeplab_resnet_v1_101

    graph = OrtGraph(path)
    sym = deeplab_resnet_v1_101(19).get_internals()["croped_score_output"]
    exe = sym.bind(mx.cpu(), args={**{n: args[n] for n in sym.list_arguments() if n != "data"},
                                   "data": mx.nd.zeros(frames[0].shape)},
                   aux_states={n: aux[n] for n in sym.list_auxiliary_states()}, grad_req="null")
    times = {"ONNX Runtime CPU": [], "MXNet reference": []}
    agree = []
    for frame in frames:
        t0 = time.perf_counter()
        pred = graph.forward(data=frame)["croped_score_output"].argmax(axis=1)[0]
        times["ONNX Runtime CPU"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        exe.arg_dict["data"][:] = frame
        ref = mx.nd.argmax(exe.forward(is_train=False)[0], axis=1).asnumpy()[0]
        times["MXNet reference"].append(time.perf_counter() - t0)
        agree.append(float((pred == ref).mean()))
    _table("DeepLab-101 (frame by frame)", frames[0].shape[2:], times, [True] * len(frames),
           agree)


if __name__ == "__main__":
    run(main)
