"""The pretrained chain: which files initialise which part of a network, in which order.

Accel end to end (as the original `train_end2end`): `network.pretrained` (the DFF model,
source of FlowNet), then `network.pretrained_base` (DeepLab-101: reference trunk and head)
over it, then `network.pretrained_ec` (DeepLab-18/34/50, every name prefixed by
`TRAIN.arg_prefix`: the update branch) over both. The frame-by-frame DeepLab starts from
`network.pretrained` alone (ImageNet ResNet-v1-101).

Every parameter belongs to one part (`flow`, `base` or `ec`). A part listed in
`network.INIT_FROM_SCRATCH` is not loaded at all (its parameters get the initial values of
accel.core.initializer), whatever files exist, so a run never depends on what happens to be
on disk. A part not listed needs its file: a missing one is an error naming the file, the
config key, what the file is and where it comes from. Layers that no pretrained file has
(Accel's `correction`, deformable offsets, DeepLab's head on ImageNet weights) are
initialised as the original does; any other parameter a loaded file lacks is an error.
"""
import json
import logging
import os
import zlib
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np

from accel.core.initializer import initialize_missing
from accel.utils.checkpoint import CheckpointError, check_params, load_param_file, params_path

logger = logging.getLogger(__name__)

__all__ = ["Part", "Chain", "ACCEL_PARTS", "DEEPLAB_CHAIN", "PretrainedError", "accel_chain",
           "load_pretrained", "pretrained_init", "calibrate_batchnorm", "frozen_names"]

Params = Dict[str, mx.nd.NDArray]

_README = "README.md, section 'Pretrained models'"


class PretrainedError(CheckpointError):
    """A pretrained file is missing, not configured, or does not fit the network."""


@dataclass(frozen=True)
class Part:
    """One link of the chain: a part of the network and the file that initialises it."""

    name: str      # as listed in network.INIT_FROM_SCRATCH
    key: str       # config key under `network` holding the file prefix
    what: str      # what the file is
    source: str    # where it comes from


ACCEL_PARTS = (
    Part("flow", "pretrained", "the DFF model (ImageNet VID), source of the FlowNet weights",
         "the Deep Feature Flow release (rfcn_dff_flownet_vid-0000.params; " + _README + ")"),
    Part("base", "pretrained_base",
         "DeepLab ResNet-v1-101 on Cityscapes: the keyframe (reference) branch and its head",
         "the Accel release (" + _README + "), or train it with "
         "experiments/deeplab/deeplab_train_test.py"),
    Part("ec", "pretrained_ec",
         "the DeepLab-18/34/50 update branch, its names prefixed by TRAIN.arg_prefix",
         "the Accel release (" + _README + ")"),
)
DEEPLAB_PARTS = (
    Part("base", "pretrained", "ImageNet ResNet-v1-101 (the trunk the DeepLab head is put on)",
         "the Deformable ConvNets / FCIS release (resnet_v1_101-0000.params; "
         + _README + ")"),
)

def is_new_accel_layer(name: str) -> bool:
    """Layers no pretrained file provides: `correction`, deformable offsets, fixed upsampling."""
    return (name.startswith("corr_") or "_offset_" in name
            or (name.endswith("upsampling_weight") and not name.endswith("feat_upsampling_weight")))


def is_new_deeplab_layer(name: str) -> bool:
    """DeepLab's head (fc6, score, upsampling) is new on top of ImageNet weights."""
    return name.startswith(("fc6_", "score_", "upsampling_"))


_flow_names: Optional[frozenset] = None


def _flow_param_names() -> frozenset:
    """Parameter names of the FlowNet, read from the builder (not a hand-kept list)."""
    global _flow_names
    if _flow_names is None:
        from accel.symbols.flownet import flownet_s

        a, b = mx.sym.Variable("a"), mx.sym.Variable("b")
        _flow_names = frozenset(flownet_s(a, b).list_arguments()) - {"a", "b"}
    return _flow_names


@dataclass(frozen=True)
class Chain:
    """The pretrained chain of one network: its parts, in loading order, and its rules."""

    parts: Tuple[Part, ...]
    owner: Callable[[str], str]          # parameter name -> part name
    is_new_layer: Callable[[str], bool]  # initialised even when its part is loaded
    normal_init: Mapping[str, float] = field(default_factory=dict)  # name -> std of N(0, std)


def accel_chain(version) -> Chain:
    """Chain of an Accel version (dff_deeplab.symbol.Version): flow, base, ec (if it has an
    update trunk of its own)."""
    ec_prefixes = tuple(p for p in (version.prefix, version.head_prefix) if p)

    def owner(name: str) -> str:
        if name in _flow_param_names():
            return "flow"
        if ec_prefixes and name.startswith(ec_prefixes):
            return "ec"
        return "base"
    parts = ACCEL_PARTS if version.trunk is not None else ACCEL_PARTS[:2]
    return Chain(parts, owner, is_new_accel_layer)


# Frame-by-frame DeepLab: everything from the ImageNet file but its new head, which starts as
# the original's: N(0, 0.01) fc6 and score weights, zero biases, bilinear upsampling.
DEEPLAB_CHAIN = Chain(DEEPLAB_PARTS, lambda name: "base", is_new_deeplab_layer,
                      {"fc6_weight": 0.01, "score_weight": 0.01})


def frozen_names(names: Sequence[str], fixed_prefixes: Sequence[str]) -> List[str]:
    """The names starting with any FIXED_PARAMS prefix (those get grad_req 'null')."""
    prefixes = tuple(fixed_prefixes)
    return [n for n in names if prefixes and n.startswith(prefixes)]


def _normal(name: str, shape, std: float, seed: int) -> np.ndarray:
    """N(0, std) values, deterministic per (seed, name) like accel.core.initializer."""
    rng = np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])
    return (rng.standard_normal(tuple(shape)) * std).astype(np.float32)


def _part_file(cfg, part: Part) -> str:
    prefix = str(cfg.network[part.key])
    if not prefix:
        raise PretrainedError(
            f"network.{part.key} is empty: it should name {part.what} (file <prefix>-%04d.params"
            f", from {part.source}); set it, or add '{part.name}' to network.INIT_FROM_SCRATCH "
            f"to start this part from scratch")
    path = params_path(prefix, cfg.network.pretrained_epoch)
    if not os.path.isfile(path):
        raise PretrainedError(
            f"pretrained file not found: {path} (network.{part.key} = {prefix!r}, "
            f"network.pretrained_epoch = {cfg.network.pretrained_epoch}): {part.what}; it comes "
            f"from {part.source}. Or add '{part.name}' to network.INIT_FROM_SCRATCH to start "
            f"this part from scratch")
    return path


def calibrate_batchnorm(sym: mx.sym.Symbol, batch: Mapping[str, np.ndarray], args: Params,
                        aux: Params, layers: Callable[[str], bool]) -> int:
    """Set moving_mean/moving_var of the BatchNorm layers picked by `layers(name)` to the
    statistics of their inputs on `batch`; returns how many were set.

    The networks freeze BatchNorm (global statistics), so a part started from scratch
    would keep mean 0 / var 1 and its activations would grow ~10^7-fold through ResNet-101.
    One forward pass with the picked layers normalising by batch statistics gives every
    such layer's input exactly as if the layers before it had been calibrated first.
    """
    graph = json.loads(sym.tojson())
    picked, heads = [], []
    for node in graph["nodes"]:
        if node["op"] == "BatchNorm" and layers(node["name"]):
            node.setdefault("attrs", {})["use_global_stats"] = "False"
            picked.append(node["name"])
            heads.append(list(node["inputs"][0][:2]) + [0])  # the layer's data input
    if not picked:
        return 0
    graph["heads"] = heads
    probe = mx.sym.load_json(json.dumps(graph))
    ctx = mx.cpu()
    bind_args = [mx.nd.array(batch[n], ctx) if n in batch else args[n].copyto(ctx)
                 for n in probe.list_arguments()]
    bind_aux = [aux[n].copyto(ctx) for n in probe.list_auxiliary_states()]
    # MXNet's MKLDNN graph partitioning fails on this graph (argument count mismatch), so
    # this one executor is bound without it.
    saved = os.environ.get("MXNET_SUBGRAPH_BACKEND")
    os.environ["MXNET_SUBGRAPH_BACKEND"] = "NONE"
    try:
        exe = probe.bind(ctx, args=bind_args, aux_states=bind_aux, grad_req="null")
    finally:
        if saved is None:
            del os.environ["MXNET_SUBGRAPH_BACKEND"]
        else:
            os.environ["MXNET_SUBGRAPH_BACKEND"] = saved
    for name, out in zip(picked, exe.forward(is_train=True)):
        x = out.asnumpy().astype(np.float64)
        axes = (0,) + tuple(range(2, x.ndim))
        aux[name + "_moving_mean"] = mx.nd.array(x.mean(axis=axes), dtype=np.float32)
        aux[name + "_moving_var"] = mx.nd.array(x.var(axis=axes), dtype=np.float32)
    logger.info("set the statistics of %d frozen BatchNorm layers started from scratch on one "
                "training batch (e.g. %s)", len(picked), ", ".join(picked[:3]))
    return len(picked)


def pretrained_init(cfg, sym: mx.sym.Symbol, chain: Chain):
    """The trainer's `init_params(input shapes, one batch)` of `load_pretrained` with
    `chain` (accel.core.trainer.fit)."""
    def init(input_shapes: Mapping[str, Tuple[int, ...]], batch: Mapping[str, np.ndarray]):
        return load_pretrained(cfg, sym, input_shapes, chain, batch)
    return init


def load_pretrained(cfg, sym: mx.sym.Symbol, input_shapes: Mapping[str, Tuple[int, ...]],
                    chain: Chain, batch: Optional[Mapping[str, np.ndarray]] = None
                    ) -> Tuple[Params, Params]:
    """Every parameter of `sym`: the files of `chain` (later files override earlier ones),
    then initial values for scratch parts and new layers; strict about everything else.

    `batch` (inputs of one training batch) sets the BatchNorm statistics of the parts
    started from scratch (calibrate_batchnorm); without it they keep mean 0 / var 1.
    """
    parts, owner, is_new_layer = chain.parts, chain.owner, chain.is_new_layer
    scratch = set(cfg.network.INIT_FROM_SCRATCH)
    unknown = scratch - {p.name for p in parts}
    if unknown:
        raise PretrainedError(f"network.INIT_FROM_SCRATCH lists {sorted(unknown)}, which this "
                              f"network does not have; its parts are {[p.name for p in parts]}")
    arg_shapes, _, aux_shapes = sym.infer_shape(**input_shapes)
    want_arg = {n: s for n, s in zip(sym.list_arguments(), arg_shapes) if n not in input_shapes}
    want_aux = dict(zip(sym.list_auxiliary_states(), aux_shapes))
    args: Params = {}
    aux: Params = {}
    source: Dict[str, str] = {}
    for part in parts:
        if part.name in scratch:
            logger.info("part '%s' (%s) starts from scratch (network.INIT_FROM_SCRATCH)",
                        part.name, part.what)
            continue
        path = _part_file(cfg, part)
        arg_prefix = cfg.TRAIN.arg_prefix if part.name == "ec" else ""
        file_args, file_aux = load_param_file(path, arg_prefix)
        used, unused = 0, []
        for kind, have, want, loaded in (("arg", args, want_arg, file_args),
                                         ("aux", aux, want_aux, file_aux)):
            for name, value in loaded.items():
                if name in want:
                    have[name] = value
                    source[name] = path
                    used += 1
                else:
                    unused.append(f"{kind}:{name}")
        logger.info("loaded %d of the %d arrays of %s (%s)", used,
                    len(file_args) + len(file_aux), path, part.name)
        if unused and used:
            # Expected for files of bigger networks (the DFF model's R-FCN heads), so a
            # warning, but every name is given so that a wrong file can be recognised.
            logger.warning("%s (network.%s): %d array(s) this network does not use (ignored): "
                           "%s", path, part.key, len(unused), ", ".join(sorted(unused)))
        if not used:
            raise PretrainedError(f"{path} (network.{part.key}) has none of this network's "
                                  f"parameter names; is it {part.what}?"
                                  + (f" (names prefixed by TRAIN.arg_prefix = "
                                     f"{cfg.TRAIN.arg_prefix!r})" if arg_prefix else ""))
    check_params((want_arg, want_aux), args, aux, allow_missing=True,
                 source=", ".join(sorted(set(source.values()))) or "pretrained files")
    lacking: Dict[str, List[str]] = {}
    for name in list(want_arg) + list(want_aux):
        if name in args or name in aux or is_new_layer(name) or owner(name) in scratch:
            continue
        lacking.setdefault(owner(name), []).append(name)
    if lacking:
        by_part = {p.name: p for p in parts}
        lines = [f"{params_path(cfg.network[by_part[o].key], cfg.network.pretrained_epoch)} "
                 f"(network.{by_part[o].key}, {by_part[o].what}) lacks {len(names)}: "
                 f"{', '.join(names[:8])}{' ...' if len(names) > 8 else ''}"
                 for o, names in lacking.items()]
        raise PretrainedError("pretrained files do not provide every parameter:\n  - "
                              + "\n  - ".join(lines))
    seed = cfg.TRAIN.seed
    for name, std in chain.normal_init.items():
        if name in want_arg and name not in args:
            args[name] = mx.nd.array(_normal(name, want_arg[name], std, seed))
    args, aux = initialize_missing(sym, dict(input_shapes), args, aux, seed)
    if batch is not None and scratch:
        calibrate_batchnorm(sym, batch, args, aux,
                            lambda layer: owner(layer + "_gamma") in scratch)
    return args, aux
