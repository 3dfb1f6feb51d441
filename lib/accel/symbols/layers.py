"""Small Symbol building blocks shared by every network: frozen BatchNorm, convolutions,
the DeepLab head (its fixed bilinear upsampling kernel: accel.runtime.upsample).

Parameter names are part of the checkpoint format, so every helper takes the exact
official layer name and derives `<name>_weight`, `<name>_bias`, `<name>_gamma`, ... from it
the way MXNet does.
"""
from typing import Optional, Sequence

import mxnet as mx

from accel.utils.segmath import IGNORE_LABEL

# Caffe-converted ResNet-v1 models use eps 1e-5 in their BatchNorm; MXNet's default (1e-3)
# would change every activation slightly.
CAFFE_BN_EPS = 1e-5
# MXNet model-zoo pre-activation ResNets (the 18/34 update branches) were trained with 2e-5.
ZOO_BN_EPS = 2e-5


def frozen_bn(data: mx.sym.Symbol, name: str, eps: float = CAFFE_BN_EPS,
              fix_gamma: bool = False) -> mx.sym.Symbol:
    """BatchNorm that always uses its moving statistics (the original freezes all BN)."""
    return mx.sym.BatchNorm(data=data, name=name, use_global_stats=True,
                            fix_gamma=fix_gamma, eps=eps)


def conv(data: mx.sym.Symbol, name: str, num_filter: int, kernel: int = 1, stride: int = 1,
         pad: int = 0, dilate: int = 1, no_bias: bool = True) -> mx.sym.Symbol:
    """Square Convolution with the given official name."""
    return mx.sym.Convolution(data=data, name=name, num_filter=num_filter,
                              kernel=(kernel, kernel), stride=(stride, stride),
                              pad=(pad, pad), dilate=(dilate, dilate), no_bias=no_bias)


def deformable_conv(data: mx.sym.Symbol, name: str, num_filter: int, dilate: int,
                    num_deformable_group: int, offset_dilate: int,
                    stride: int = 1, op: str = "builtin") -> mx.sym.Symbol:
    """3x3 deformable convolution whose offsets come from a plain 3x3 conv `<name>_offset`.

    The offset conv has 2 * 9 * num_deformable_group channels and a bias. Its dilation is
    not always the deformable conv's: the reference ResNet-101 predicts offsets with an
    undilated 3x3 conv, the update branches with the dilated one (both keep the grid).
    op: 'builtin' (MXNet's operator) or 'fast' (our CPU inference kernel, same result).
    """
    offset = mx.sym.Convolution(data=data, name=name + "_offset",
                                num_filter=18 * num_deformable_group, kernel=(3, 3),
                                stride=(stride, stride), pad=(offset_dilate, offset_dilate),
                                dilate=(offset_dilate, offset_dilate))
    if op == "fast":
        from accel.operators.deformable import deformable_conv_fast
        return deformable_conv_fast(data, offset, mx.sym.Variable(name + "_weight"), name,
                                    num_filter, stride, dilate, dilate)
    if op != "builtin":
        raise ValueError("unknown deformable op %r: expected 'builtin' or 'fast'" % (op,))
    return mx.contrib.sym.DeformableConvolution(
        data=data, offset=offset, name=name, num_filter=num_filter, kernel=(3, 3),
        stride=(stride, stride), pad=(dilate, dilate), dilate=(dilate, dilate),
        num_deformable_group=num_deformable_group, no_bias=True)


def segmentation_scores(feat: mx.sym.Symbol, num_classes: int, prefix: str = "") -> mx.sym.Symbol:
    """DeepLab scores at stride 16: `fc6` 1x1 -> 1024 + ReLU, then `score` 1x1."""
    fc6 = mx.sym.Convolution(
        data=feat, name=prefix + "fc6", num_filter=1024, kernel=(1, 1), pad=(0, 0),
        weight=mx.sym.Variable(prefix + "fc6_weight", lr_mult=1.0),
        bias=mx.sym.Variable(prefix + "fc6_bias", lr_mult=2.0))
    return classify(fc6, num_classes, prefix)


def classify(fc6: mx.sym.Symbol, num_classes: int, prefix: str = "") -> mx.sym.Symbol:
    """ReLU of the `fc6` output, then the 1x1 `score` layer."""
    relu_fc6 = mx.sym.Activation(data=fc6, act_type="relu", name=prefix + "fc6_relu")
    return mx.sym.Convolution(
        data=relu_fc6, name=prefix + "score", num_filter=num_classes, kernel=(1, 1),
        pad=(0, 0), weight=mx.sym.Variable(prefix + "score_weight", lr_mult=1.0),
        bias=mx.sym.Variable(prefix + "score_bias", lr_mult=2.0))


def upsample_scores(score: mx.sym.Symbol, data: mx.sym.Symbol, num_classes: int,
                    prefix: str = "") -> mx.sym.Symbol:
    """Fixed bilinear `upsampling` x16 (grouped Deconvolution, no bias, lr_mult 0), then
    `croped_score` = Crop at offset (8, 8) back to the size of `data`."""
    upsampling = mx.sym.Deconvolution(
        data=score, name=prefix + "upsampling", num_filter=num_classes, kernel=(32, 32),
        stride=(16, 16), num_group=num_classes, no_bias=True,
        weight=mx.sym.Variable(prefix + "upsampling_weight", lr_mult=0.0))
    return mx.sym.Crop(upsampling, data, offset=(8, 8), name=prefix + "croped_score")


def segmentation_head(feat: mx.sym.Symbol, data: mx.sym.Symbol, num_classes: int,
                      prefix: str = "") -> mx.sym.Symbol:
    """The DeepLab head on stride-16 features, cropped to the size of `data`.

    `prefix` names the copy: '' for the reference head, '18_' for Accel-18's own head,
    'curr_' for Accel-50's.
    """
    return upsample_scores(segmentation_scores(feat, num_classes, prefix), data, num_classes,
                           prefix)


def segmentation_loss(score: mx.sym.Symbol, label: mx.sym.Symbol,
                      ignore_label: int = IGNORE_LABEL) -> mx.sym.Symbol:
    """Per-pixel softmax cross-entropy over valid pixels (`softmax`), ignoring 255."""
    return mx.sym.SoftmaxOutput(data=score, label=label, name="softmax",
                                normalization="valid", multi_output=True,
                                use_ignore=True, ignore_label=ignore_label)


def slice_batch(data: mx.sym.Symbol, begin: int, end: Optional[int]) -> mx.sym.Symbol:
    """Frames begin..end-1 of a batch of frames (axis 0)."""
    return mx.sym.slice_axis(data, axis=0, begin=begin, end=end)


def concat_batch(parts: Sequence[mx.sym.Symbol]) -> mx.sym.Symbol:
    """Stack frames along the batch axis (a single part is returned as is)."""
    return parts[0] if len(parts) == 1 else mx.sym.concat(*parts, dim=0)
