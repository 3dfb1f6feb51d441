"""Accel and Deep Feature Flow networks: one builder, one table of versions.

A version says which update branch corrects the warped keyframe features and how the two
are fused:

* 18 / 34 / 50: the update branch has its own DeepLab head; its cropped scores and those of
  the warped branch are concatenated (38 channels) and fused by the 1x1 `correction` conv.
* 101: the update branch is the reference ResNet-101 itself; warped and current `res5c_relu`
  features are concatenated (4096 channels), fused to 2048 by `correction`, and the shared
  head gives `croped_score`.
* dff: no update branch (Deep Feature Flow): the warped branch's `croped_score` alone.

Graphs built here (official names): `key_test` (keyframe), `cur_test` (non-key frame),
`train` (KEY_INTERVAL-1 hops of incremental warping into the labelled frame).
"""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import mxnet as mx
import numpy as np

from accel.symbols.flownet import flownet_s, warp
from accel.symbols.layers import (classify, concat_batch, segmentation_head,
                                  segmentation_loss, segmentation_scores, slice_batch)
from accel.symbols.resnet import resnet_preact_trunk, resnet_v1_trunk


@dataclass(frozen=True)
class Version:
    """What differs between Accel versions."""

    trunk: Optional[str]       # 'preact' (zoo ResNet-18/34), 'v1' (Caffe ResNet-50) or None
    depth: int                 # depth of the update trunk
    prefix: str                # name prefix of the update trunk's parameters (= arg_prefix)
    head_prefix: Optional[str]  # name prefix of the update branch's own DeepLab head
    fusion: str                # 'score' (19 + 19 -> 19), 'feature' (2048 + 2048 -> 2048), 'none'
    key_interval: int          # KEY_INTERVAL of the released training config
    deformable_groups: int = 4  # of the update trunk's res5 / conv5


VERSIONS = {
    "18": Version("preact", 18, "18_", "18_", "score", 5),
    "34": Version("preact", 34, "34_", "34_", "score", 5),
    "50": Version("v1", 50, "50_", "curr_", "score", 5),
    "101": Version(None, 101, "", None, "feature", 3),
    "dff": Version(None, 101, "", None, "none", 5),
}


def get_version(version) -> Version:
    """Look up a version by name ('18', '34', '50', '101', 'dff'; ints accepted)."""
    key = str(version)
    if key not in VERSIONS:
        raise ValueError("unknown Accel version %r: expected one of %s"
                         % (version, ", ".join(VERSIONS)))
    return VERSIONS[key]


def folded_fc6_name(version: Version) -> str:
    """Name of the fast path's derived kernel: `feat_upsampling` followed by `fc6`."""
    return "_folded_%sfc6_%sfeat_upsampling_weight" % (version.head_prefix, version.prefix)


def fold_fc6_into_upsampling(version: Version, arg_params) -> Optional[mx.nd.NDArray]:
    """The kernel of `feat_upsampling` then `fc6` as one transposed convolution
    (512, 1024, 4, 4): K'[i, p] = sum_o fc6[p, o] K[i, o]; None for trunks without it."""
    if version.trunk != "preact":
        return None
    up = arg_params[version.prefix + "feat_upsampling_weight"].asnumpy().astype(np.float64)
    fc6 = arg_params[version.head_prefix + "fc6_weight"].asnumpy().astype(np.float64)
    folded = np.matmul(up.transpose(0, 2, 3, 1), fc6[:, :, 0, 0].T)   # (i, y, x, p): BLAS
    return mx.nd.array(folded.transpose(0, 3, 1, 2).astype(np.float32))


def reference_features(data: mx.sym.Symbol, deformable_op: str = "builtin") -> mx.sym.Symbol:
    """Keyframe features: reference ResNet-v1-101 with deformable res5, `res5c_relu`."""
    return resnet_v1_trunk(data, depth=101, prefix="", deformable_groups=1,
                           deformable_op=deformable_op)


class AccelNetwork:
    """Builds the Symbol graphs of one Accel version.

    num_classes: output classes (19 for Cityscapes).
    warp_op: 'builtin' (GridGenerator + BilinearSampler) or 'fused' (accel.operators).
    fast: inference graphs of the fast CPU path (not for training), the same computation
        rewritten where linearity allows, equal up to float rounding:
        - deformable convs by our CPU kernel (accel.operators.deformable);
        - the graphs stop at stride-16 scores (`score_name`); the fixed bilinear upsampling
          and the argmax run on the host, fused (accel.core.inference.SeparableUpsampler),
          valid when every `*upsampling_weight` is the same separable kernel (the segmenter
          checks and otherwise falls back);
        - score fusion before upsampling: correction(up(a), up(b)) = up(W a + W' b) + bias;
        - for dff and the score-fusion versions the propagated state is `fc6_state`, the
          reference `fc6` without its bias (1024 channels, not 2048): the warp is linear
          with zeros outside, so fc6(warp(x)) = warp(fc6_weight * x) + fc6_bias, and the
          non-key frames skip the 2048 -> 1024 conv and warp half the channels;
        - Accel-18/34: `feat_upsampling` and `fc6` folded into one transposed conv;
        - the warp by our operator (`warp_op='fused'`), compiled on the CPU.
    """

    def __init__(self, version="18", num_classes: int = 19, warp_op: str = "builtin",
                 fast: bool = False):
        self.name = str(version)
        self.version = get_version(version)
        self.num_classes = num_classes
        self.warp_op = warp_op
        self.fast = fast
        self.deformable_op = "fast" if fast else "builtin"

    def derived_params(self, arg_params) -> Dict[str, mx.nd.NDArray]:
        """Parameters the fast graphs compute from a checkpoint's (folded kernels)."""
        if not self.fast:
            return {}
        folded = fold_fc6_into_upsampling(self.version, arg_params)
        return {} if folded is None else {folded_fc6_name(self.version): folded}

    def variant(self, **changes) -> "AccelNetwork":
        """The same network with other builder options (e.g. fast=True)."""
        options = dict(version=self.name, num_classes=self.num_classes, warp_op=self.warp_op,
                       fast=self.fast)
        options.update(changes)
        return AccelNetwork(**options)

    # -- pieces -------------------------------------------------------------------------
    @property
    def projected_state(self) -> bool:
        """True when the fast graphs propagate `fc6_state` instead of `res5c_relu`."""
        return self.fast and self.version.fusion != "feature"

    @property
    def state_name(self) -> str:
        """The keyframe output that non-key frames warp (`feat_key` of `cur_test`)."""
        return "fc6_state" if self.projected_state else "res5c_relu"

    def score_name(self, key: bool) -> str:
        """The graph output holding a frame's scores: cropped full-resolution scores on the
        reference path, stride-16 scores on the fast path (before `score_bias`)."""
        fusion = self.version.fusion
        if not self.fast:
            return "correction" if fusion == "score" and not key else "croped_score"
        return "correction_lowres" if fusion == "score" and not key else "score"

    def score_bias(self, arg_params, key: bool) -> Optional[np.ndarray]:
        """What the fast path adds to `score_name` after upsampling (the fusion's bias)."""
        if self.fast and self.version.fusion == "score" and not key:
            return arg_params["corr_bias"].asnumpy()
        return None

    @property
    def float32_layers(self) -> Tuple[str, ...]:
        """Layer-name prefixes an INT8 rewrite keeps in float32: heads, fusion, warp, the flow
        predictors (`Convolution1..5`) and the state. (MXNet 1.9 also mis-wires a float
        conv+ReLU `fc6` fed by an INT8 `res5c_relu`: "Shape inconsistent, Provided = [1]".)"""
        head = self.version.head_prefix or ""
        return ("fc6", "score", head + "fc6", head + "score", "correction", "warping_feat",
                "Convolution", self.state_name)

    def _head(self, feat, data, prefix=""):
        if self.fast:
            return segmentation_scores(feat, self.num_classes, prefix)
        return segmentation_head(feat, data, self.num_classes, prefix)

    def _state(self, feat):
        """Keyframe state: `res5c_relu`, or on the fast path `fc6` without its bias."""
        if not self.projected_state:
            return feat
        return mx.sym.Convolution(data=feat, name="fc6_state", num_filter=1024, kernel=(1, 1),
                                  no_bias=True, weight=mx.sym.Variable("fc6_weight"))

    def _state_scores(self, state):
        """Stride-16 scores of the reference head from a (warped) state."""
        if not self.projected_state:
            return segmentation_scores(state, self.num_classes)
        bias = mx.sym.reshape(mx.sym.Variable("fc6_bias", shape=(1024,)), shape=(1, -1, 1, 1))
        return classify(mx.sym.broadcast_add(state, bias, name="fc6"), self.num_classes)

    def _reference_features(self, data):
        return reference_features(data, self.deformable_op)

    def _update_features(self, data):
        """Stride-16 features of the per-frame update branch (score fusion versions)."""
        v = self.version
        if v.trunk == "preact":
            return resnet_preact_trunk(data, v.depth, v.prefix, self.deformable_op)
        return resnet_v1_trunk(data, v.depth, v.prefix, v.deformable_groups,
                               self.deformable_op)

    def _correction(self, inputs, num_filter):
        """The fusion layer `correction`: 1x1 conv over the concatenated inputs."""
        return mx.sym.Convolution(
            data=mx.sym.concat(*inputs, dim=1, name="correction_input"), name="correction",
            num_filter=num_filter, kernel=(1, 1), pad=(0, 0),
            weight=mx.sym.Variable("corr_weight", lr_mult=2.0),
            bias=mx.sym.Variable("corr_bias", lr_mult=4.0))

    def _fuse(self, warped, data, cur_feat=None):
        """Output scores of a non-key frame from its warped state (and its own features)."""
        fusion = self.version.fusion
        if fusion == "none":
            return self._state_scores(warped) if self.fast else self._head(warped, data)
        if fusion == "feature":
            if cur_feat is None:
                cur_feat = self._reference_features(data)
            return self._head(self._correction([warped, cur_feat], 2048), data)
        if self.fast:
            return self._fuse_low_resolution(warped, data)
        update = self._update_features(data)
        dff_scores = self._head(warped, data)
        update_scores = self._head(update, data, self.version.head_prefix)
        return self._correction([dff_scores, update_scores], self.num_classes)

    def _update_scores_fast(self, data):
        """Update-branch scores at stride 16 on the fast path. For the 18/34 trunks the
        learned x2 `feat_upsampling` and the head's 1x1 `fc6` are both linear with nothing
        between them, so they are one transposed convolution 512 -> 1024 whose kernel
        (`folded_fc6_name`) the segmenter computes from the checkpoint: a third of the work."""
        v = self.version
        if v.trunk != "preact":
            return segmentation_scores(self._update_features(data), self.num_classes,
                                       v.head_prefix)
        conv5 = resnet_preact_trunk(data, v.depth, v.prefix, self.deformable_op,
                                    upsample=False)
        fc6 = mx.sym.Deconvolution(
            conv5, name=v.head_prefix + "fc6_folded", num_filter=1024, kernel=(4, 4),
            stride=(2, 2), pad=(1, 1), no_bias=False,
            weight=mx.sym.Variable(folded_fc6_name(v)),
            bias=mx.sym.Variable(v.head_prefix + "fc6_bias"))
        return classify(fc6, self.num_classes, v.head_prefix)

    def _fuse_low_resolution(self, warped, data):
        """correction(up(a), up(b)) = up(correction_without_bias(a, b)) + bias, because the
        1x1 fusion and the fixed upsampling are linear and the kernel is shared; the
        segmenter upsamples `correction_lowres` and adds `corr_bias` (`score_bias`)."""
        return mx.sym.Convolution(
            data=mx.sym.concat(self._state_scores(warped), self._update_scores_fast(data),
                               dim=1),
            name="correction_lowres", num_filter=self.num_classes, kernel=(1, 1), no_bias=True,
            weight=mx.sym.Variable("corr_weight"))

    # -- graphs -------------------------------------------------------------------------
    def key_test(self) -> mx.sym.Symbol:
        """Keyframe: reference DeepLab-101 scores and the state to propagate.

        Outputs: data_key, feat_key (passed through, as the original), the state
        (`res5c_relu`; `fc6_state` on the fast path, see the class notes) and the scores
        (`croped_score`; stride-16 `score` on the fast path).
        """
        data = mx.sym.Variable("data")
        feat = self._reference_features(data)
        state = self._state(feat)
        scores = (self._state_scores(state) if self.projected_state
                  else self._head(feat, data))
        return mx.sym.Group([mx.sym.Variable("data_key"), mx.sym.Variable("feat_key"),
                             state, scores])

    def cur_test(self) -> mx.sym.Symbol:
        """Non-key frame: warp `feat_key` by the flow data_key -> data, then correct.

        Outputs: data_key (passed through), warping_feat (the new propagated state) and
        the fused scores (`score_name(key=False)`).
        """
        data, data_key = mx.sym.Variable("data"), mx.sym.Variable("data_key")
        feat_key = mx.sym.Variable("feat_key")
        flow = flownet_s(data, data_key)
        # The fast path warps with our operator, whose CPU kernel is the faster one.
        warped = warp(feat_key, flow, "warping_feat", "fused" if self.fast else self.warp_op)
        return mx.sym.Group([data_key, warped, self._fuse(warped, data)])

    def train(self, key_interval: Optional[int] = None) -> mx.sym.Symbol:
        """End-to-end training graph for one labelled frame.

        Inputs: data (1, 3, H, W) the labelled frame; data_ref (K-1, 3, H, W) the frames
        before it, oldest first (data_ref[0] is the keyframe); eq_flag (1,) and label
        (1, 1, H, W). Keyframe features are warped hop by hop through consecutive pairs
        into the labelled frame; all K-1 flows run as one batch.
        Outputs: softmax, data_ref, eq_flag (the latter two passed through, as the original).
        """
        if self.fast:
            raise ValueError("the fast path is for inference only; build the training graph "
                             "with fast=False")
        k = key_interval or self.version.key_interval
        if k < 2:
            raise ValueError("KEY_INTERVAL must be >= 2 for training, got %d" % k)
        data, data_ref = mx.sym.Variable("data"), mx.sym.Variable("data_ref")
        eq_flag, label = mx.sym.Variable("eq_flag"), mx.sym.Variable("label")
        keyframe = slice_batch(data_ref, 0, 1)
        cur_feat = None
        if self.version.fusion == "feature":
            # The labelled frame needs the same trunk: run both frames as one batch.
            both = reference_features(concat_batch([keyframe, data]))
            feat, cur_feat = slice_batch(both, 0, 1), slice_batch(both, 1, 2)
        else:
            feat = reference_features(keyframe)
        followers = concat_batch([slice_batch(data_ref, 1, k - 1), data]) if k > 2 else data
        flows = flownet_s(followers, data_ref)
        for hop in range(k - 1):
            name = "warping_feat" if hop == k - 2 else "warping_feat_hop%d" % hop
            feat = warp(feat, slice_batch(flows, hop, hop + 1), name, self.warp_op)
        scores = self._fuse(feat, data, cur_feat)
        return mx.sym.Group([segmentation_loss(scores, label), data_ref, eq_flag])


# cfg.symbol -> Accel version (dff_deeplab.symbol.VERSIONS).
SYMBOL_VERSIONS = {"accel_18": "18", "accel_34": "34", "accel_50": "50", "accel_101": "101",
                   "dff_deeplab": "dff"}


def network_from_config(cfg) -> AccelNetwork:
    """The AccelNetwork named by cfg.symbol, with cfg's classes and warp operator."""
    version = SYMBOL_VERSIONS.get(cfg.symbol)
    if version is None:
        raise ValueError(f"symbol = {cfg.symbol!r} is not an Accel/DFF network; expected one "
                         f"of {sorted(SYMBOL_VERSIONS)}")
    return AccelNetwork(version, cfg.dataset.NUM_CLASSES, cfg.network.WARP_OP)
