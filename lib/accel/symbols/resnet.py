"""The ResNet trunks of Accel, as tables of what differs rather than copies.

* `resnet_v1_trunk`: Caffe-style ResNet-v1 with bottleneck units (the reference
  DeepLab-101 and Accel-50's update branch). Stride sits on the first 1x1 conv of a unit;
  res5 runs at stride 1 with dilation 2 (output stride 16), optionally with deformable 3x3
  convolutions. Unit names follow the Caffe release: ResNet-101 numbers its units
  (`res4b1`..`res4b22`), ResNet-50 letters them (`res4b`..`res4f`).
* `resnet_preact_trunk`: MXNet model-zoo pre-activation ResNet with basic units (Accel-18
  and -34), three stages, then a post-activation conv5 at stride 2 with deformable 3x3
  convolutions and a learned x2 Deconvolution up to 2048 channels at stride 16.
"""
from typing import List, Optional

import mxnet as mx

from accel.symbols.layers import ZOO_BN_EPS, conv, deformable_conv, frozen_bn

# Units per stage res2..res5 of the bottleneck networks.
BOTTLENECK_UNITS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
# Units per stage of the pre-activation update branches (only stages 1-3 are used).
PREACT_UNITS = {18: (2, 2, 2), 34: (3, 4, 6)}
PREACT_FILTERS = (64, 64, 128, 256)


def _unit_names(depth: int, stage: int, count: int) -> List[str]:
    """Caffe unit names of one stage: 'a', then letters (ResNet-50) or 'b1'.. (ResNet-101)."""
    if depth == 101 and stage in (3, 4):
        return ["%da" % stage] + ["%db%d" % (stage, i) for i in range(1, count)]
    return ["%d%s" % (stage, chr(ord("a") + i)) for i in range(count)]


def _shortcut(data, res: str, bn: str, num_filter: int, stride: int, project: bool):
    """Identity, or the `_branch1` 1x1 projection + BN of a post-activation unit."""
    if not project:
        return data
    return frozen_bn(conv(data, res + "_branch1", num_filter, 1, stride), bn + "_branch1")


def _bottleneck(data, prefix: str, unit: str, num_filter: int, stride: int, dilate: int,
                project: bool, deformable_groups: Optional[int], deformable_op: str):
    """One Caffe ResNet-v1 bottleneck unit; returns its `res<unit>_relu` output."""
    res, bn = prefix + "res" + unit, prefix + "bn" + unit
    shortcut = _shortcut(data, res, bn, num_filter, stride, project)
    mid = num_filter // 4
    x = frozen_bn(conv(data, res + "_branch2a", mid, 1, stride), bn + "_branch2a")
    x = mx.sym.Activation(x, act_type="relu", name=res + "_branch2a_relu")
    if deformable_groups:
        # Offsets: undilated conv for the 1-group reference net, dilated for 4-group nets.
        x = deformable_conv(x, res + "_branch2b", mid, dilate, deformable_groups,
                            offset_dilate=1 if deformable_groups == 1 else dilate,
                            op=deformable_op)
    else:
        x = conv(x, res + "_branch2b", mid, 3, 1, pad=dilate, dilate=dilate)
    x = frozen_bn(x, bn + "_branch2b")
    x = mx.sym.Activation(x, act_type="relu", name=res + "_branch2b_relu")
    x = frozen_bn(conv(x, res + "_branch2c", num_filter, 1), bn + "_branch2c")
    return mx.sym.Activation(shortcut + x, act_type="relu", name=res + "_relu")


def resnet_v1_trunk(data: mx.sym.Symbol, depth: int = 101, prefix: str = "",
                    deformable_groups: Optional[int] = 1,
                    deformable_op: str = "builtin") -> mx.sym.Symbol:
    """Caffe ResNet-v1-`depth` up to `res5c_relu` (2048 channels, stride 16).

    deformable_groups: None for plain dilated res5 (frame-by-frame DeepLab), else the
    number of deformable groups of res5's 3x3 convs (1 for the reference, 4 for Accel-50).
    deformable_op: 'builtin' or 'fast' (see accel.symbols.layers.deformable_conv).
    """
    x = conv(data, prefix + "conv1", 64, 7, 2, pad=3)
    x = frozen_bn(x, prefix + "bn_conv1")
    x = mx.sym.Activation(x, act_type="relu", name=prefix + "conv1_relu")
    x = mx.sym.Pooling(x, name=prefix + "pool1", kernel=(3, 3), stride=(2, 2), pad=(0, 0),
                       pool_type="max", pooling_convention="full")
    widths = (256, 512, 1024, 2048)
    for i, count in enumerate(BOTTLENECK_UNITS[depth]):
        stage = i + 2
        for j, unit in enumerate(_unit_names(depth, stage, count)):
            stride = 2 if (j == 0 and stage in (3, 4)) else 1
            dilate = 2 if stage == 5 else 1
            x = _bottleneck(x, prefix, unit, widths[i], stride, dilate, project=(j == 0),
                            deformable_groups=deformable_groups if stage == 5 else None,
                            deformable_op=deformable_op)
    return x


def _preact_unit(data, name: str, num_filter: int, stride: int, dim_match: bool):
    """Model-zoo pre-activation basic unit: BN-ReLU-conv3x3-BN-ReLU-conv3x3 + shortcut."""
    bn1 = frozen_bn(data, name + "_bn1", eps=ZOO_BN_EPS)
    act1 = mx.sym.Activation(bn1, act_type="relu", name=name + "_relu1")
    x = conv(act1, name + "_conv1", num_filter, 3, stride, pad=1)
    x = frozen_bn(x, name + "_bn2", eps=ZOO_BN_EPS)
    x = mx.sym.Activation(x, act_type="relu", name=name + "_relu2")
    x = conv(x, name + "_conv2", num_filter, 3, 1, pad=1)
    shortcut = data if dim_match else conv(act1, name + "_sc", num_filter, 1, stride)
    return x + shortcut


def _basic_post_unit(data, prefix: str, unit: str, num_filter: int, stride: int,
                     project: bool, dilate: int, deformable_groups: int, deformable_op: str):
    """Post-activation basic unit of the 18/34 conv5: 3x3 (stride) then deformable 3x3."""
    res, bn = prefix + "res" + unit, prefix + "bn" + unit
    shortcut = _shortcut(data, res, bn, num_filter, stride, project)
    x = frozen_bn(conv(data, res + "_branch2a", num_filter, 3, stride, pad=1),
                  bn + "_branch2a")
    x = mx.sym.Activation(x, act_type="relu", name=res + "_branch2a_relu")
    x = deformable_conv(x, res + "_branch2b", num_filter, dilate, deformable_groups,
                        offset_dilate=dilate, op=deformable_op)
    x = frozen_bn(x, bn + "_branch2b")
    return mx.sym.Activation(shortcut + x, act_type="relu", name=res + "_relu")


def resnet_preact_trunk(data: mx.sym.Symbol, depth: int, prefix: str,
                        deformable_op: str = "builtin", upsample: bool = True) -> mx.sym.Symbol:
    """Accel-18/34 update trunk: zoo ResNet stages 1-3, deformable conv5 at stride 32,
    then `<prefix>feat_upsampling` (learned Deconvolution x2) to 2048 channels at stride 16
    (left out with upsample=False: the fast path folds it into the head's fc6).
    """
    x = frozen_bn(data, prefix + "bn_data", eps=ZOO_BN_EPS, fix_gamma=True)
    x = conv(x, prefix + "conv0", PREACT_FILTERS[0], 7, 2, pad=3)
    x = frozen_bn(x, prefix + "bn0", eps=ZOO_BN_EPS)
    x = mx.sym.Activation(x, act_type="relu", name=prefix + "relu0")
    x = mx.sym.Pooling(x, name=prefix + "pool0", kernel=(3, 3), stride=(2, 2), pad=(1, 1),
                       pool_type="max")
    for i, count in enumerate(PREACT_UNITS[depth]):
        for j in range(count):
            x = _preact_unit(x, "%sstage%d_unit%d" % (prefix, i + 1, j + 1),
                             PREACT_FILTERS[i + 1], stride=2 if (j == 0 and i > 0) else 1,
                             dim_match=(j > 0))
    for j, unit in enumerate(("5a", "5b", "5c")[:_conv5_units(depth)]):
        x = _basic_post_unit(x, prefix, unit, 512, stride=2 if j == 0 else 1,
                             project=(j == 0), dilate=2, deformable_groups=4,
                             deformable_op=deformable_op)
    if not upsample:
        return x
    return mx.sym.Deconvolution(x, name=prefix + "feat_upsampling", num_filter=2048,
                                kernel=(4, 4), stride=(2, 2), pad=(1, 1), no_bias=True)


def _conv5_units(depth: int) -> int:
    """Units of the post-activation conv5: two for ResNet-18, three for ResNet-34."""
    return {18: 2, 34: 3}[depth]
