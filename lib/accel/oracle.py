"""The oracle fixtures: outputs of the official networks on real frames, and their checks.

A fixture folder (tests/fixtures/oracle_128x256, or any of the same format) holds
`manifest.json` and one `NAME.npz` per fixture: the exact inputs, and per output sampled
values (flat indices + values) and, for class maps, the argmax. They were made by the
official release with every parameter set by a rule that depends only on the parameter's
name and shape (`oracle_value`; this is an independent implementation of that rule). A
faithful network matches every sample within `1e-4 * abs_mean + 1e-6` and every argmax map
on at least 99.9% of pixels (`compare`).

The same rule gives any network synthetic weights (`synthetic_params`: the oracle rule for
every parameter, the released models' bilinear kernels for the heads' upsampling), for
timing and checks where no released checkpoint is at hand (the benchmark, the GPU check,
the ONNX export's --random-weights).

This module needs only NumPy: the test suite (MXNet and PyTorch) and the GPU check
(PyTorch only, `run_torch`) share it.
"""
import json
import math
import zlib
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple, Union

import numpy as np

__all__ = ["FLOW_PREDICTOR", "ARGMAX_AGREEMENT", "oracle_value", "synthetic_params",
           "manifest", "load_fixture", "store_name", "compare", "run_torch"]

FLOW_PREDICTOR = "Convolution5_weight"  # scaled x10 so that fixtures move features visibly
ARGMAX_AGREEMENT = 0.999


def oracle_value(name: str, shape) -> np.ndarray:
    """The fixture weight of parameter `name` with `shape` (float32)."""
    shape = tuple(int(s) for s in shape)
    rng = np.random.default_rng(zlib.crc32(name.encode("utf-8")))
    if name.endswith("_weight"):
        fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
        value = rng.standard_normal(shape) / math.sqrt(fan_in)
        if name == FLOW_PREDICTOR:
            value *= 10.0
    elif name.endswith(("_bias", "_beta")):
        value = 0.01 * rng.standard_normal(shape)
    elif name.endswith("_gamma"):
        value = 0.3 + 0.05 * rng.standard_normal(shape)
    elif name.endswith("_moving_mean"):
        value = 0.1 * rng.standard_normal(shape)
    elif name.endswith("_moving_var"):
        value = rng.uniform(0.5, 1.5, shape)
    else:
        raise KeyError("no fixture rule for parameter %r" % name)
    return value.astype(np.float32)


def synthetic_params(network, shape, runtime) -> Tuple[Dict[str, np.ndarray],
                                                       Dict[str, np.ndarray]]:
    """(args, aux) NumPy weights for the official graphs of `network` (an accel.networks
    Network) at frames of `shape`, the shapes inferred by `runtime` (any accel.runtime
    Runtime): `oracle_value` for every parameter, the bilinear kernel (as released) for the
    heads' upsampling."""
    from accel.runtime.upsample import bilinear_kernel

    net = network.official()
    shape = tuple(shape)
    requests = {"key": ({"data": shape}, [o for o in (net.state_output, net.score_output(True))
                                          if o])}
    if net.state_output:   # a frame-by-frame DeepLab has only its keyframe graph
        _, _, outs = runtime.shapes(net, "key", {"data": shape}, [net.state_output])
        requests["cur"] = ({"data": shape, "data_key": shape,
                            "feat_key": outs[net.state_output]}, None)
    args: Dict[str, Tuple[int, ...]] = {}
    aux: Dict[str, Tuple[int, ...]] = {}
    for kind, (inputs, outputs) in requests.items():
        a, x, _ = runtime.shapes(net, kind, inputs, outputs)
        args.update(a)
        aux.update(x)
    args = {n: (bilinear_kernel(s[0], s[-1]) if n.endswith("upsampling_weight")
                and not n.endswith("feat_upsampling_weight") else oracle_value(n, s))
            for n, s in args.items()}
    return args, {n: oracle_value(n, s) for n, s in aux.items()}


def manifest(folder: Union[str, Path]) -> Dict[str, Any]:
    """The folder's manifest.json: {'fixtures': {name: entry}, ...}."""
    path = Path(folder) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise FileNotFoundError(f"oracle fixtures: cannot read {path} ({err})") from None


def load_fixture(folder: Union[str, Path], name: str
                 ) -> Tuple[Dict[str, Any], Mapping[str, np.ndarray], Dict[str, np.ndarray]]:
    """(manifest entry, the npz file's arrays, the inputs by name) of fixture `name`."""
    entry = manifest(folder)["fixtures"][name]
    data = np.load(Path(folder) / (name + ".npz"))
    inputs = {k[len("input__"):]: data[k] for k in data.files if k.startswith("input__")}
    return entry, data, inputs


def store_name(name: str) -> str:
    """The graph store's name (accel.graphs) of a fixture's graph."""
    if name == "deeplab_resnet_v1_101_test":
        return "deeplab_resnet_v1_101.test"
    if name == "accel_key_test":
        return "accel_18.key_test"
    _, version, graph = name.split("_", 2)
    return "accel_%s.%s" % (version, graph)


def compare(entry: Dict[str, Any], data: Mapping[str, np.ndarray],
            outputs: Mapping[str, np.ndarray]) -> Dict[str, Dict[str, Any]]:
    """Per output: shape, largest sample error, tolerance, argmax agreement, and `ok`."""
    report = {}
    for out, spec in entry["outputs"].items():
        got = np.asarray(outputs[out], np.float32)
        row: Dict[str, Any] = {"shape_ok": list(got.shape) == spec["shape"]}
        tol = 1e-4 * spec["abs_mean"] + 1e-6
        if row["shape_ok"]:
            err = np.abs(got.reshape(-1)[data["index__" + out]] - data["sample__" + out])
            row.update(max_error=float(err.max()), tolerance=tol)
            if spec.get("argmax"):
                argmax = got.argmax(axis=1).astype(np.uint8)
                row["argmax_agreement"] = float((argmax == data["argmax__" + out]).mean())
        row["ok"] = (row["shape_ok"] and row["max_error"] <= tol
                     and row.get("argmax_agreement", 1.0) >= ARGMAX_AGREEMENT)
        report[out] = row
    return report


def run_torch(folder: Union[str, Path], name: str, device: str = "cpu",
              fold_batchnorm: bool = True) -> Tuple[Dict[str, Any], Any, Dict[str, np.ndarray]]:
    """(entry, data, outputs) of fixture `name` run by the PyTorch runtime on `device`,
    with oracle weights whose shapes the runtime infers from the stored graph."""
    import torch

    from accel.runtime import SharedParams
    from accel.graphs import load_graph
    from accel.runtime.torch_graph import TorchGraph, infer_shapes, to_tensor

    entry, data, inputs = load_fixture(folder, name)
    graph = load_graph(store_name(name), 19)
    outputs = list(entry["outputs"])
    args, aux, _ = infer_shapes(graph, {k: v.shape for k, v in inputs.items()}, outputs)
    dev = torch.device(device)
    params = SharedParams({n: to_tensor(oracle_value(n, s), dev) for n, s in args.items()},
                          {n: to_tensor(oracle_value(n, s), dev) for n, s in aux.items()})
    module = TorchGraph(graph, outputs, params, fold_batchnorm=fold_batchnorm, name=name)
    with torch.inference_mode():
        out = module(**{k: torch.from_numpy(v).to(dev) for k, v in inputs.items()
                        if k in module.input_names})
    return entry, data, {o: v.float().cpu().numpy() for o, v in out.items()}
