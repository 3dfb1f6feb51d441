"""The network contract: what the segmenter, the runtimes, the export and the keyframe code
know of a network, written once (`Network`), and its implementations without MXNet.

A network is a version of the table (accel.symbols.versions) seen through its inference
graphs: a keyframe graph (`key`) and a non-key graph (`cur`), each stored as symbol JSON
(accel.graphs, written from the Symbol builders of dff_deeplab/), and the official
output names the callers read from them. Runtimes execute the stored graphs; nothing here
builds a Symbol or imports MXNet. The Symbol builders (dff_deeplab.symbol.AccelNetwork,
dff_deeplab.fast_symbol.FastAccelNetwork) derive from these classes and add `key_test()`,
`cur_test()` and `train()`: they satisfy the contract too.

* `AccelGraphs`: the official graphs of Accel-18/34/50/101 and DFF (scores at input
  resolution: `croped_score`, `correction`).
* `FastAccelGraphs`: the exact rewrites of dff_deeplab/fast_symbol.py (scores at stride
  16, upsampled by the runtime; the propagated state is `fc6` without its bias).
* `DeepLabGraphs`: a frame-by-frame DeepLab (deeplab/): one graph, every frame a keyframe.
"""
from typing import Any, Dict, Mapping, Optional, Protocol, Tuple, runtime_checkable

import numpy as np

from accel.graphs import store_name
from accel.utils.arrays import as_numpy
from accel.symbols.versions import (ACCEL_VERSIONS, DEEPLAB_VERSIONS, FLOW_SCALE, Version,
                                    get_version)

__all__ = ["Network", "AccelGraphs", "FastAccelGraphs", "DeepLabGraphs", "accel_network",
           "as_numpy", "folded_fc6_name", "fold_fc6_into_upsampling", "WARPED", "FLOW",
           "WARPED_SCORES", "FLOW_SCALE"]

# Output names the segmenter reads on every non-key frame (`<layer>_output`).
WARPED = "warping_feat_output"     # the propagated state after this frame's warp
FLOW = "Convolution5_output"       # FlowNet's raw flow at 1/16 (x FLOW_SCALE = feature px)
WARPED_SCORES = "score_output"     # stride-16 scores of the warped (reference) head


@runtime_checkable
class Network(Protocol):
    """What callers may use of a network. Every member is a fact of the graphs: names of
    outputs, which graph answers what, and parameters derived from a checkpoint."""

    version: Version
    """The row of accel.symbols.versions (method name, key interval, fusion...)."""
    num_classes: int
    """Output classes; the stored graphs are instantiated for this count."""
    fast: bool
    """True for the fast rewrites (stride-16 scores), False for the official graphs."""
    upsampled: bool
    """True when score outputs are at input resolution; False: the runtime upsamples them
    with the heads' fixed bilinear kernel (accel.runtime.upsample) and adds `score_bias`."""
    state_output: str
    """Output of the key graph that is propagated (and fed back as `feat_key`)."""
    warped_output: str
    """Output of the cur graph holding the propagated state after this frame's warp."""
    flow_output: str
    """Output of the cur graph holding the raw flow (times FLOW_SCALE = feature pixels,
    accel.symbols.versions)."""
    warped_scores_output: str
    """Stride-16 scores of the warped branch (what keyframe policies compare)."""

    def graph_name(self, kind: str) -> str:
        """Store name of the 'key' or 'cur' graph (accel.graphs)."""

    def score_output(self, key: bool) -> str:
        """The output holding a frame's scores, on keyframes (key=True) or others."""

    def branch_outputs(self) -> Dict[str, str]:
        """{panel: output} per-branch scores of a non-key frame ('dff', 'update'), if any."""

    def update_scores_output(self) -> Optional[str]:
        """Stride-16 scores of the update branch, or None (dff, 101)."""

    def derived_params(self, arg_params: Mapping[str, Any]) -> Dict[str, np.ndarray]:
        """Parameters the graphs read that are computed from a checkpoint's (NumPy)."""

    def required_params(self) -> Dict[str, str]:
        """Checkpoint parameters `derived_params` reads, each with why."""

    def score_bias(self, arg_params: Mapping[str, Any], key: bool) -> Optional[np.ndarray]:
        """What to add to the scores after upsampling (fast graphs' fusion bias), or None."""

    def official(self) -> "Network":
        """The official graphs of the same network (checkpoint checks, panels)."""


class _OfficialGraphs:
    """What official graphs answer alike: scores at input resolution, no per-branch scores
    unless a version says so, nothing derived from the checkpoint, nothing to add."""

    fast = False
    upsampled = True

    def official(self):
        return self

    def score_output(self, key: bool) -> str:
        return "croped_score_output"

    def branch_outputs(self) -> Dict[str, str]:
        return {}

    def update_scores_output(self) -> Optional[str]:
        return None

    def derived_params(self, arg_params: Mapping[str, Any]) -> Dict[str, np.ndarray]:
        return {}

    def required_params(self) -> Dict[str, str]:
        return {}

    def score_bias(self, arg_params: Mapping[str, Any], key: bool) -> Optional[np.ndarray]:
        return None


class AccelGraphs(_OfficialGraphs):
    """The official inference graphs of one Accel version (or DFF)."""

    state_output = "res5c_relu_output"
    warped_output = WARPED
    flow_output = FLOW
    warped_scores_output = WARPED_SCORES

    def __init__(self, version="18", num_classes: int = 19, warp_op: str = "builtin"):
        self.version: Version = get_version(version)
        if self.version.family != "accel":
            raise ValueError("version %r is not an Accel/DFF network; expected one of %s"
                             % (version, ", ".join(ACCEL_VERSIONS)))
        self.name = self.version.name
        self.num_classes = int(num_classes)
        self.warp_op = warp_op

    def graph_name(self, kind: str) -> str:
        return store_name(self.version.symbol, ("fast_" if self.fast else "") + _kind(kind))

    def score_output(self, key: bool) -> str:
        if not key and self.version.fusion == "score":
            return "correction_output"
        return "croped_score_output"

    def branch_outputs(self) -> Dict[str, str]:
        if self.version.fusion != "score":
            return {}
        return {"dff": "croped_score_output",
                "update": self.version.head_prefix + "croped_score_output"}

    def update_scores_output(self) -> Optional[str]:
        if self.version.fusion != "score":
            return None
        return self.version.head_prefix + "score_output"

    @property
    def float32_layers(self) -> Tuple[str, ...]:
        """Layer-name prefixes an INT8 rewrite keeps in float32: heads, fusion, warp, the flow
        predictors (`Convolution1..5`) and the state. (MXNet 1.9 also mis-wires a float
        conv+ReLU `fc6` fed by an INT8 `res5c_relu`: "Shape inconsistent, Provided = [1]".)"""
        head = self.version.head_prefix or ""
        return ("fc6", "score", head + "fc6", head + "score", "correction", "warping_feat",
                "Convolution", self.state_output[:-len("_output")])


class FastAccelGraphs(AccelGraphs):
    """The fast rewrites of one Accel version (dff_deeplab/fast_symbol.py says why each is
    exact)."""

    fast = True
    upsampled = False

    @property
    def _projects_state(self) -> bool:
        """True when the state is `fc6_state` (every version but 101's feature fusion)."""
        return self.version.fusion != "feature"

    @property
    def state_output(self) -> str:
        return "fc6_state_output" if self._projects_state else "res5c_relu_output"

    def official(self) -> AccelGraphs:
        return AccelGraphs(self.name, self.num_classes, self.warp_op)

    def score_output(self, key: bool) -> str:
        """Stride-16 scores, before `score_bias`."""
        if not key and self.version.fusion == "score":
            return "correction_lowres_output"
        return "score_output"

    def branch_outputs(self) -> Dict[str, str]:
        return {}  # the low-resolution fusion keeps no per-branch cropped scores

    def required_params(self) -> Dict[str, str]:
        if self.version.trunk != "preact":
            return {}
        v = self.version
        why = "folded into %s (the fast path's fc6 of the update branch)" % folded_fc6_name(v)
        return {v.prefix + "feat_upsampling_weight": why, v.head_prefix + "fc6_weight": why}

    def derived_params(self, arg_params: Mapping[str, Any]) -> Dict[str, np.ndarray]:
        folded = fold_fc6_into_upsampling(self.version, arg_params)
        return {} if folded is None else {folded_fc6_name(self.version): folded}

    def score_bias(self, arg_params: Mapping[str, Any], key: bool) -> Optional[np.ndarray]:
        if self.version.fusion == "score" and not key:
            return as_numpy(arg_params["corr_bias"]).astype(np.float32)
        return None


class DeepLabGraphs(_OfficialGraphs):
    """A frame-by-frame DeepLab (a cfg.symbol of DEEPLAB_VERSIONS): its `test` graph is the
    only ('key') graph, every frame a keyframe."""

    state_output = warped_output = flow_output = warped_scores_output = ""

    def __init__(self, symbol: str = "deeplab_resnet_v1_101", num_classes: int = 19):
        if symbol not in DEEPLAB_VERSIONS:
            raise ValueError(f"unknown DeepLab symbol {symbol!r}: expected one of "
                             f"{', '.join(sorted(DEEPLAB_VERSIONS))}")
        self.version, self.num_classes = DEEPLAB_VERSIONS[symbol], int(num_classes)

    def graph_name(self, kind: str) -> str:
        if _kind(kind) != "key_test":
            raise ValueError(f"{self.version.method} has only a keyframe graph")
        return store_name(self.version.symbol, "test")


def _kind(kind: str) -> str:
    if kind not in ("key", "cur"):
        raise ValueError(f"graph kind must be 'key' or 'cur', got {kind!r}")
    return kind + "_test"


def accel_network(version, num_classes: int, fast: bool = False) -> AccelGraphs:
    """The official (or fast) graphs of an Accel version, without MXNet."""
    return (FastAccelGraphs if fast else AccelGraphs)(version, num_classes)


def folded_fc6_name(version: Version) -> str:
    """Name of the fast path's derived kernel: `feat_upsampling` followed by `fc6`."""
    return "_folded_%sfc6_%sfeat_upsampling_weight" % (version.head_prefix, version.prefix)


def fold_fc6_into_upsampling(version: Version, arg_params: Mapping[str, Any]
                             ) -> Optional[np.ndarray]:
    """The kernel of `feat_upsampling` then `fc6` as one transposed convolution
    (512, 1024, 4, 4): K'[i, p] = sum_o fc6[p, o] K[i, o]; None for trunks without it."""
    if version.trunk != "preact":
        return None
    up = as_numpy(arg_params[version.prefix + "feat_upsampling_weight"]).astype(np.float64)
    fc6 = as_numpy(arg_params[version.head_prefix + "fc6_weight"]).astype(np.float64)
    folded = np.matmul(up.transpose(0, 2, 3, 1), fc6[:, :, 0, 0].T)   # (i, y, x, p): BLAS
    return np.ascontiguousarray(folded.transpose(0, 3, 1, 2).astype(np.float32))
