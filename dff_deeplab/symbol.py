"""Accel and Deep Feature Flow networks: the official graphs, one builder over the table.

A version (a row of accel.symbols.versions) says which update branch corrects the warped
keyframe features and how the two are fused:

* 18 / 34 / 50: the update branch has its own DeepLab head; its cropped scores and those of
  the warped branch are concatenated (38 channels) and fused by the 1x1 `correction` conv.
* 101: the update branch is the reference ResNet-101 itself; warped and current `res5c_relu`
  features are concatenated (4096 channels), fused to 2048 by `correction`, and the shared
  head gives `croped_score`.
* dff: no update branch (Deep Feature Flow): the warped branch's `croped_score` alone.

Graphs built here (official names): `key_test` (keyframe), `cur_test` (non-key frame),
`train` (KEY_INTERVAL-1 hops of incremental warping into the labelled frame). The exact CPU
rewrites of the inference graphs live beside this file, in dff_deeplab/fast_symbol.py.
Inference reads these graphs from the graph store (dff_deeplab/graphs.py writes them) through
the contract of accel.networks, which this builder extends.
"""
from typing import Optional

import mxnet as mx

from accel.networks import FLOW, WARPED, WARPED_SCORES, AccelGraphs
from accel.symbols.deeplab import deeplab_trunk
from accel.symbols.flownet import flownet_s, warp
from accel.symbols.layers import concat_batch, segmentation_head, segmentation_loss, slice_batch
from accel.symbols.resnet import resnet_v1_trunk
from accel.symbols.versions import get_version, version_of_symbol

__all__ = ["AccelNetwork", "network_from_config", "reference_features", "WARPED", "FLOW",
           "WARPED_SCORES", "get_version"]


def reference_features(data: mx.sym.Symbol, deformable_op: str = "builtin") -> mx.sym.Symbol:
    """Keyframe features: reference ResNet-v1-101 with deformable res5, `res5c_relu`."""
    return resnet_v1_trunk(data, depth=101, prefix="", deformable_groups=1,
                           deformable_op=deformable_op)


class AccelNetwork(AccelGraphs):
    """Builds the official Symbol graphs of one Accel version (a row of the version table);
    its output names and the rest of the network contract are accel.networks.AccelGraphs'.

    num_classes: output classes (19 for Cityscapes).
    warp_op: 'builtin' (GridGenerator + BilinearSampler) or 'fused' (accel.operators).
    """

    deformable_op = "builtin"

    # -- pieces -------------------------------------------------------------------------
    def _head(self, feat, data, prefix=""):
        return segmentation_head(feat, data, self.num_classes, prefix)

    def _reference_features(self, data):
        return reference_features(data, self.deformable_op)

    def update_features(self, data):
        """Stride-16 features of the per-frame update branch (score fusion versions)."""
        return deeplab_trunk(self.version, data, self.version.prefix, self.deformable_op)

    def correction(self, inputs, num_filter):
        """The fusion layer `correction`: 1x1 conv over the concatenated inputs."""
        return mx.sym.Convolution(
            data=mx.sym.concat(*inputs, dim=1, name="correction_input"), name="correction",
            num_filter=num_filter, kernel=(1, 1), pad=(0, 0),
            weight=mx.sym.Variable("corr_weight", lr_mult=2.0),
            bias=mx.sym.Variable("corr_bias", lr_mult=4.0))

    def _key_outputs(self, data):
        """(state, scores) of a keyframe."""
        feat = self._reference_features(data)
        return feat, self._head(feat, data)

    def _warp(self, feat_key, flow):
        return warp(feat_key, flow, "warping_feat", self.warp_op)

    def _fuse(self, warped, data, cur_feat=None):
        """Output scores of a non-key frame from its warped state (and its own features)."""
        fusion = self.version.fusion
        if fusion == "none":
            return self._head(warped, data)
        if fusion == "feature":
            if cur_feat is None:
                cur_feat = self._reference_features(data)
            return self._head(self.correction([warped, cur_feat], 2048), data)
        update = self.update_features(data)
        dff_scores = self._head(warped, data)
        update_scores = self._head(update, data, self.version.head_prefix)
        return self.correction([dff_scores, update_scores], self.num_classes)

    # -- graphs -------------------------------------------------------------------------
    def key_test(self) -> mx.sym.Symbol:
        """Keyframe: reference DeepLab-101 scores and the state to propagate.

        Outputs: data_key, feat_key (passed through, as the original), the state
        (`res5c_relu`) and the scores (`croped_score`).
        """
        state, scores = self._key_outputs(mx.sym.Variable("data"))
        return mx.sym.Group([mx.sym.Variable("data_key"), mx.sym.Variable("feat_key"),
                             state, scores])

    def cur_test(self) -> mx.sym.Symbol:
        """Non-key frame: warp `feat_key` by the flow data_key -> data, then correct.

        Outputs: data_key (passed through), warping_feat (the new propagated state) and
        the fused scores (`score_output(key=False)`).
        """
        data, data_key = mx.sym.Variable("data"), mx.sym.Variable("data_key")
        warped = self._warp(mx.sym.Variable("feat_key"), flownet_s(data, data_key))
        return mx.sym.Group([data_key, warped, self._fuse(warped, data)])

    def train(self, key_interval: Optional[int] = None) -> mx.sym.Symbol:
        """End-to-end training graph for one labelled frame.

        Inputs: data (1, 3, H, W) the labelled frame; data_ref (K-1, 3, H, W) the frames
        before it, oldest first (data_ref[0] is the keyframe); eq_flag (1,) and label
        (1, 1, H, W). Keyframe features are warped hop by hop through consecutive pairs
        into the labelled frame; all K-1 flows run as one batch.
        Outputs: softmax, data_ref, eq_flag (the latter two passed through, as the original).
        """
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


def network_from_config(cfg) -> AccelNetwork:
    """The AccelNetwork named by cfg.symbol, with cfg's classes and warp operator."""
    row = version_of_symbol(cfg.symbol)
    if row.family != "accel":
        raise ValueError(f"symbol = {cfg.symbol!r} is not an Accel/DFF network; expected one "
                         f"of accel_18, accel_34, accel_50, accel_101, dff_deeplab")
    return AccelNetwork(row.name, cfg.dataset.NUM_CLASSES, cfg.network.WARP_OP)
