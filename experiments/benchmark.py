"""Per-frame cost of DeepLab-101, DFF and Accel-18/34/50/101 on this machine, two paths.

    python experiments/benchmark.py                       # 512x1024, interval 5
    python experiments/benchmark.py --int8 key all        # also the INT8 trunks
    python experiments/benchmark.py --size 1024 2048 --versions 18 --rss

Paths, measured in one process, frame by frame alternating so that machine noise hits both:
* reference: the official graphs, each frame's host work as the original demo did it
  (fresh input array, full score map copied to the host, argmax in NumPy);
* fast: `VideoSegmenter(FastAccelNetwork(...))` (dff_deeplab/fast_symbol.py): inputs copied
  in place, our CPU deformable convolution, score fusion at stride 16, the 1024-channel fc6
  state propagated instead of res5c, and the fixed upsampling fused with the argmax on the
  host (accel.runtime.upsample);
* with --int8: the fast path with INT8 trunks (keyframe only, or every trunk), calibrated on
  sample_data's training frames (timing only: the accuracy change is measured on labelled
  data by experiments/int8_camvid.sh).
Weights are random (timing does not depend on them) with the fixed bilinear upsampling
kernels of the released models; frames are real CamVid frames from sample_data/ resized.
Prints a Markdown table and writes JSON (--json). Per-sub-network times come from the same
building blocks bound alone. --rss measures peak resident memory per version and path, each
in a fresh child process.
"""
import argparse
import json
import logging
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

from accel.cli import bootstrap_script

if __name__ == "__main__":
    bootstrap_script()  # MXNET_VERSION (--mxnet-version): before anything imports mxnet

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

from accel.config import get_defaults  # noqa: E402
from accel.core.inference import VideoSegmenter  # noqa: E402
from accel.core.initializer import initialize_missing, initialize_network  # noqa: E402
from accel.core.timing import WARMUP_FRAMES as WARMUP  # noqa: E402
from accel.runtime.upsample import SeparableUpsampler, separable_upsampling_filter  # noqa: E402
from accel.symbols.flownet import flownet_s, warp  # noqa: E402
from accel.runtime.upsample import bilinear_kernel  # noqa: E402
from accel.symbols.layers import segmentation_scores  # noqa: E402
from accel.symbols.versions import ACCEL_VERSIONS, REFERENCE, get_version  # noqa: E402
from accel.utils.image import image_to_tensor, read_image, resize_image  # noqa: E402
from deeplab.symbol import deeplab_resnet_v1_101  # noqa: E402
from dff_deeplab.fast_symbol import FastAccelNetwork  # noqa: E402
from dff_deeplab.symbol import AccelNetwork, reference_features  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data" / "camvid" / "val"
SAMPLE_TRAIN = REPO / "sample_data" / "camvid" / "train"
PIXEL_MEANS_BGR = tuple(get_defaults().network.PIXEL_MEANS)
VERSIONS = (REFERENCE.name,) + ACCEL_VERSIONS   # 'deeplab' = the keyframe network per frame


def frames(size, count, folder=SAMPLE):
    """`count` real consecutive frames of `folder` resized to `size`, preprocessed
    (1, 3, H, W); the folder's frames repeat if it has fewer."""
    paths = sorted(folder.glob("*.png"))
    if not paths:
        raise FileNotFoundError("no frames in %s" % folder)
    return [image_to_tensor(resize_image(read_image(str(paths[i % len(paths)])), tuple(size)),
                            PIXEL_MEANS_BGR) for i in range(count)]


def random_params(network, shape, seed=0):
    """Initial values (He-normal, bilinear upsampling) for both graphs of a network."""
    return initialize_network(network, shape, seed)


def stats(times):
    """mean, p50, p99, max in milliseconds."""
    if not times:
        return None
    t = np.asarray(times) * 1000.0
    return {"mean": float(t.mean()), "p50": float(np.percentile(t, 50)),
            "p99": float(np.percentile(t, 99)), "max": float(t.max()), "n": int(t.size)}


def network_for(version, fast=False):
    """(network, interval override) for a benchmark row; 'deeplab' = key net every frame."""
    cls = FastAccelNetwork if fast else AccelNetwork
    if version == REFERENCE.name:
        return cls("18"), 1
    return cls(version), None


def time_versions(versions, size, interval, num_frames, int8_scopes=()):
    """Per-frame times of every version on every path, frames interleaved between paths."""
    shape = (1, 3) + tuple(size)
    clip = frames(size, num_frames + WARMUP)
    # INT8 calibration on sample_data's training frames, not on the timed ones.
    calib = frames(size, 8, SAMPLE_TRAIN) if int8_scopes else None
    results = {}
    for version in versions:
        network, fixed_interval = network_for(version)
        k = fixed_interval or interval
        args, aux = random_params(network, shape)
        fast = network_for(version, fast=True)[0]
        segs = {"reference": VideoSegmenter(network, args, aux, k, original_io=True),
                "fast": VideoSegmenter(fast, args, aux, k)}
        for scope in int8_scopes:
            segs["fast, INT8 " + scope] = VideoSegmenter(fast, args, aux, k,
                                                         int8_calibration=calib,
                                                         int8_scope=scope)
        times = {p: {"key": [], "nonkey": [], "all": []} for p in segs}
        for i, frame in enumerate(clip):
            for path, seg in segs.items():
                r = seg.step(frame)
                if i >= WARMUP:
                    times[path]["key" if r.is_key else "nonkey"].append(r.network_s)
                    times[path]["all"].append(r.network_s)
        results[version] = {p: {kind: stats(v) for kind, v in t.items()} for p, t in times.items()}
        results[version]["interval"] = k
        logging.info("%s: %s", version, ", ".join(
            "%s %.0f ms" % (p, results[version][p]["all"]["mean"]) for p in segs))
        del segs, args, aux
    return results


def _bound(sym, inputs, seed=0):
    """A forward closure of `sym` bound with random inputs and initial parameters."""
    args, aux = initialize_missing(sym, inputs, {}, {}, seed)
    rng = np.random.default_rng(seed)
    for name, shape in inputs.items():
        args[name] = mx.nd.array(rng.standard_normal(shape).astype(np.float32))
    exe = sym.bind(mx.cpu(), args, aux_states=aux, grad_req="null")

    def run():
        exe.forward(is_train=False)
        mx.nd.waitall()
    return run


def _interleaved(blocks, repeat):
    """Median time (ms) of each named closure, run in turns so that noise hits all alike."""
    for run in blocks.values():
        run()   # warm-up (MKL-DNN primitive creation)
    times = {name: [] for name in blocks}
    for _ in range(repeat):
        for name, run in blocks.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t) * 1000.0) for name, t in times.items()}


def time_parts(size, repeat=5):
    """Each building block alone (ms, median), reference and fast where they differ; blocks
    that are compared with each other are timed in turns."""
    shape = (1, 3) + tuple(size)
    data, data_key = mx.sym.Variable("data"), mx.sym.Variable("data_key")
    feat_var, flow_var = mx.sym.Variable("feat"), mx.sym.Variable("flow")
    fh, fw = AccelNetwork("18").key_test().get_internals()["res5c_relu_output"].infer_shape(
        data=shape)[1][0][2:]
    feat_shape, flow_shape = (1, 2048, fh, fw), (1, 2, fh, fw)
    state_shape = (1, 1024, fh, fw)
    parts = {}
    trunks = _interleaved({
        "reference": _bound(reference_features(data, "builtin"), {"data": shape}),
        "fast": _bound(reference_features(data, "fast"), {"data": shape}),
        "plain": _bound(deeplab_resnet_v1_101(19).get_internals()["res5c_relu_output"],
                        {"data": shape})}, repeat)
    parts["reference trunk (deformable res5)"] = {"reference": trunks["reference"],
                                                  "fast": trunks["fast"]}
    parts["plain-dilated trunk (twin)"] = {"reference": trunks["plain"]}
    parts["flow (FlowNetS)"] = _interleaved({"reference": _bound(
        flownet_s(data, data_key), {"data": shape, "data_key": shape})}, repeat)
    parts["warp"] = _interleaved({
        "reference": _bound(warp(feat_var, flow_var), {"feat": feat_shape, "flow": flow_shape}),
        "fast": _bound(warp(feat_var, flow_var, op="fused"),
                       {"feat": state_shape, "flow": flow_shape})},
        repeat)
    for version in ("18", "34", "50"):
        parts["update branch %s (trunk)" % version] = _interleaved({
            p: _bound((FastAccelNetwork if p == "fast" else AccelNetwork)(version)
                      ._update_features(data), {"data": shape})
            for p in ("reference", "fast")}, repeat)
    fast18 = FastAccelNetwork("18")
    parts["head scores (fc6 + score)"] = _interleaved({
        "reference": _bound(segmentation_scores(feat_var, 19), {"feat": feat_shape}),
        "fast": _bound(fast18._state_scores(feat_var), {"feat": state_shape})}, repeat)
    kernel = separable_upsampling_filter({"upsampling_weight": mx.nd.array(bilinear_kernel(1))})
    upsampler = SeparableUpsampler(kernel, tuple(size), (fh, fw))
    low = np.random.default_rng(0).standard_normal((19, fh, fw)).astype(np.float32)
    up_sym = mx.sym.Crop(mx.sym.Deconvolution(
        mx.sym.Variable("s"), mx.sym.Variable("upsampling_weight"), kernel=(32, 32),
        stride=(16, 16), num_filter=19, num_group=19, no_bias=True), data, offset=(8, 8))
    up_args, _ = initialize_missing(up_sym, {"s": (1,) + low.shape, "data": shape}, {}, {}, 0)
    up_args.update(s=mx.nd.array(low[None]), data=mx.nd.zeros(shape))
    up_exe = up_sym.bind(mx.cpu(), up_args, grad_req="null")
    parts["upsampling + argmax (one branch)"] = _interleaved({
        "reference": lambda: up_exe.forward(is_train=False)[0].asnumpy().argmax(axis=1),
        "fast": lambda: upsampler.labels(low)}, repeat)
    s1, s2 = mx.sym.Variable("s1"), mx.sym.Variable("s2")
    fusion = AccelNetwork("18")._correction([s1, s2], 19)
    parts["fusion (correction)"] = _interleaved({
        "reference": _bound(fusion, {"s1": (1, 19) + tuple(size), "s2": (1, 19) + tuple(size)}),
        "fast": _bound(fusion, {"s1": (1, 19, fh, fw), "s2": (1, 19, fh, fw)})}, repeat)
    return parts


def _rss_child(version, path, size, interval, queue):
    network, fixed = network_for(version)
    shape = (1, 3) + tuple(size)
    args, aux = random_params(network, shape)
    if path == "fast":
        network = network_for(version, fast=True)[0]
    seg = VideoSegmenter(network, args, aux, fixed or interval,
                         original_io=(path == "reference"))
    del args, aux
    for frame in frames(size, 3):
        seg.step(frame)
    queue.put(_peak_rss_mib())


def _peak_rss_mib():
    """This process's peak resident memory. Linux: VmHWM, the high-water mark of the current
    address space. (ru_maxrss is not usable here: Linux carries it across fork and exec, so a
    spawned child reports its parent's peak.)"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def peak_rss(versions, size, interval):
    """Peak resident memory (MiB) of a fresh process running 3 frames, per version/path."""
    ctx = mp.get_context("spawn")
    out = {}
    for version in versions:
        for path in ("reference", "fast"):
            queue = ctx.Queue()
            proc = ctx.Process(target=_rss_child, args=(version, path, size, interval, queue))
            proc.start()
            proc.join()
            out.setdefault(version, {})[path] = queue.get() if proc.exitcode == 0 else None
    return out


def _fmt(s):
    return "%.0f / %.0f / %.0f / %.0f" % (s["mean"], s["p50"], s["p99"], s["max"]) if s else "-"


def markdown(report):
    """The table of docs/performance.md: per-frame times, ratios, parts, memory."""
    res, size, k = report["versions"], report["size"], report["interval"]
    lines = ["Per-frame network time (ms: mean / p50 / p99 / max), %dx%d, interval %d, "
             "%d frames after %d warm-up, %s" % (size[0], size[1], k, report["frames"], WARMUP,
                                                report["machine"]), "",
             "| network | path | all frames | keyframes | non-key frames | / reference |",
             "|---|---|---|---|---|---|"]
    names = {v: get_version(v).method for v in VERSIONS}
    names[REFERENCE.name] += " (frame by frame)"
    paths = report["paths"]
    for version, r in res.items():
        for path in paths:
            ratio = r[path]["all"]["mean"] / r["reference"]["all"]["mean"]
            lines.append("| %s | %s | %s | %s | %s | %s |" % (
                names[version], path, _fmt(r[path]["all"]),
                _fmt(r[path]["key"]), _fmt(r[path]["nonkey"]),
                "%.2f" % ratio if path != "reference" else ""))
    lines += ["", "| ratio | %s |" % " | ".join(paths), "|---|%s" % ("---|" * len(paths))]
    for name, value in report["ratios"].items():
        lines.append("| %s | %s |" % (name, " | ".join(
            "%.2f" % value[p] if value.get(p) is not None else "-" for p in paths)))
    if report.get("parts"):
        lines += ["", "| building block (ms, median of %d, timed in turns) | reference | fast |"
                  % report["repeat"], "|---|---|---|"]
        for name, value in report["parts"].items():
            ref = value.get("reference")
            fast = value.get("fast", value.get("fused"))
            lines.append("| %s | %s | %s |" % (name, "%.0f" % ref if ref else "-",
                                                "%.0f" % fast if fast else "-"))
    if report.get("peak_rss_mib"):
        lines += ["", "| peak RSS (MiB), fresh process | reference | fast |", "|---|---|---|"]
        for version, value in report["peak_rss_mib"].items():
            lines.append("| %s | %s | %s |" % (names[version],
                                               *("%.0f" % v if v else "-" for v in
                                                 (value["reference"], value["fast"]))))
    return "\n".join(lines)


def ratios(res, paths):
    """The targets of the performance issue, per path."""
    out = {"Accel-18 / DeepLab-101 at the interval": {}}
    for path in paths:
        if "18" in res and "deeplab" in res:
            out["Accel-18 / DeepLab-101 at the interval"][path] = (
                res["18"][path]["all"]["mean"] / res["deeplab"][path]["all"]["mean"])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=[512, 1024], metavar=("H", "W"))
    parser.add_argument("--interval", type=int, default=5)
    parser.add_argument("--frames", type=int, default=10, help="timed frames per version")
    parser.add_argument("--versions", nargs="+", default=list(VERSIONS), choices=VERSIONS)
    parser.add_argument("--no-parts", action="store_true", help="skip the building blocks")
    parser.add_argument("--repeat", type=int, default=5, help="runs per building block")
    parser.add_argument("--int8", nargs="*", choices=("key", "all"), default=[],
                        help="also time the fast path with INT8 trunks (keyframe trunk / "
                             "every trunk), calibrated on sample_data's training frames")
    parser.add_argument("--rss", action="store_true", help="peak RSS per version (slow)")
    parser.add_argument("--json", default=None, help="write the report here as JSON")
    parser.add_argument("--mxnet-version", default=None, metavar="NAME",
                        help="MXNet package to import (external/mxnet/NAME; default: the "
                             "installed one)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.size[0] % 32 or args.size[1] % 32:
        parser.error("--size must be multiples of 32 (the flow and feature grids must agree)")
    report = {"size": args.size, "interval": args.interval, "frames": args.frames,
              "machine": "%d CPU cores, MXNet %s, OMP_NUM_THREADS=%s" % (
                  os.cpu_count(), mx.__version__, os.environ.get("OMP_NUM_THREADS", "unset"))}
    report["versions"] = time_versions(args.versions, args.size, args.interval, args.frames,
                                       args.int8)
    report["paths"] = ["reference", "fast"] + ["fast, INT8 " + s for s in args.int8]
    report["ratios"] = ratios(report["versions"], report["paths"])
    if not args.no_parts:
        report["repeat"] = args.repeat
        report["parts"] = time_parts(args.size, args.repeat)
        p = report["parts"]
        twin = p["plain-dilated trunk (twin)"]["reference"]
        report["ratios"]["deformable trunk / plain-dilated twin"] = {
            path: p["reference trunk (deformable res5)"][path] / twin
            for path in ("reference", "fast")}
    if args.rss:
        report["peak_rss_mib"] = peak_rss(args.versions, args.size, args.interval)
    table = markdown(report)
    print(table)
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(report, f, indent=1)
        os.replace(tmp, args.json)
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
