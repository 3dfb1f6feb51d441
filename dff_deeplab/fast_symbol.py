"""The fast CPU inference graphs: the official ones rewritten where linearity allows.

`FastAccelNetwork` derives from the official builder (dff_deeplab/symbol.py) and overrides
only what it rewrites; every rewrite computes the same as the official graph up to float
rounding (tests/test_fast_path.py checks each one against it):

- deformable convs by our CPU kernel (accel.operators.deformable);
- the graphs stop at stride-16 scores (`score_output`); the fixed bilinear upsampling and
  the argmax run on the host, fused (accel.runtime.upsample.SeparableUpsampler), valid when
  every `*upsampling_weight` is the same separable kernel (the segmenter checks and
  otherwise runs the official graphs);
- score fusion before upsampling: correction(up(a), up(b)) = up(W a + W' b) + bias, the
  bias added on the host (`score_bias`);
- for dff and the score-fusion versions the propagated state is `fc6_state`, the reference
  `fc6` without its bias (1024 channels, not 2048): the warp is linear with zeros outside,
  so fc6(warp(x)) = warp(fc6_weight * x) + fc6_bias, and the non-key frames skip the
  2048 -> 1024 conv and warp half the channels;
- Accel-18/34: `feat_upsampling` and `fc6` folded into one transposed conv;
- the warp by our operator (`warp_op='fused'`), compiled on the CPU.
Inference only: training builds the official graph.
"""
import mxnet as mx

from accel.networks import FastAccelGraphs, folded_fc6_name
from accel.symbols.flownet import warp
from accel.symbols.layers import classify, segmentation_scores
from accel.symbols.resnet import resnet_preact_trunk
from dff_deeplab.symbol import AccelNetwork

__all__ = ["FastAccelNetwork"]


class FastAccelNetwork(FastAccelGraphs, AccelNetwork):
    """The fast CPU graphs of one Accel version (same constructor as AccelNetwork); output
    names, derived parameters and score bias are accel.networks.FastAccelGraphs'."""

    deformable_op = "fast"

    def official(self) -> AccelNetwork:
        """The official builder of the same network (checks, fallback, training)."""
        return AccelNetwork(self.name, self.num_classes, self.warp_op)

    def train(self, key_interval=None):
        raise ValueError("the fast path is for inference only; build the training graph "
                         "with AccelNetwork")

    # -- rewritten pieces ---------------------------------------------------------------
    def _state(self, feat):
        """Keyframe state: `fc6` without its bias (or `res5c_relu` for 101)."""
        if not self._projects_state:
            return feat
        return mx.sym.Convolution(data=feat, name="fc6_state", num_filter=1024, kernel=(1, 1),
                                  no_bias=True, weight=mx.sym.Variable("fc6_weight"))

    def state_scores(self, state):
        """Stride-16 scores of the reference head from a (warped) state."""
        if not self._projects_state:
            return segmentation_scores(state, self.num_classes)
        bias = mx.sym.reshape(mx.sym.Variable("fc6_bias", shape=(1024,)), shape=(1, -1, 1, 1))
        return classify(mx.sym.broadcast_add(state, bias, name="fc6"), self.num_classes)

    def _head(self, feat, data, prefix=""):
        return segmentation_scores(feat, self.num_classes, prefix)

    def _key_outputs(self, data):
        state = self._state(self._reference_features(data))
        return state, self.state_scores(state)

    def _warp(self, feat_key, flow):
        return warp(feat_key, flow, "warping_feat", "fused")  # the faster CPU kernel

    def _fuse(self, warped, data, cur_feat=None):
        fusion = self.version.fusion
        if fusion == "none":
            return self.state_scores(warped)
        if fusion == "feature":
            return super()._fuse(warped, data, cur_feat)
        return self._fuse_low_resolution(warped, data)

    def _update_scores_fast(self, data):
        """Update-branch scores at stride 16. For the 18/34 trunks the learned x2
        `feat_upsampling` and the head's 1x1 `fc6` are both linear with nothing between them,
        so they are one transposed convolution 512 -> 1024 whose kernel (`folded_fc6_name`)
        the segmenter computes from the checkpoint: a third of the work."""
        v = self.version
        if v.trunk != "preact":
            return segmentation_scores(self.update_features(data), self.num_classes,
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
            data=mx.sym.concat(self.state_scores(warped), self._update_scores_fast(data),
                               dim=1),
            name="correction_lowres", num_filter=self.num_classes, kernel=(1, 1), no_bias=True,
            weight=mx.sym.Variable("corr_weight"))
