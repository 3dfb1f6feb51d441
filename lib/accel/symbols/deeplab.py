"""Frame-by-frame DeepLab networks (deeplab/): a trunk from the version table + the head.

* `deeplab_resnet_v1_101`: ResNet-v1-101 with dilated (not deformable) res5 and the DeepLab
  head. Trained first, it initialises Accel's reference branch (`pretrained_base`).
* `deeplab_resnet_18` / `_34` / `_50`: the update branches of Accel-18/34/50 trained alone
  (`pretrained_ec`). Their names carry no prefix; Accel loads them with TRAIN.arg_prefix
  ('18_', ...), so the Accel release's files and ours are interchangeable.
"""
import mxnet as mx

from accel.symbols.layers import segmentation_head, segmentation_loss
from accel.symbols.resnet import resnet_preact_trunk, resnet_v1_trunk
from accel.symbols.versions import DEEPLAB_VERSIONS, Version
from accel.utils.segmath import IGNORE_LABEL

__all__ = ["SCORES", "deeplab_trunk", "deeplab_symbol"]

SCORES = "croped_score_output"  # the cropped full-resolution scores, the segmenter's output


def deeplab_trunk(row: Version, data: mx.sym.Symbol, prefix: str = "",
                  deformable_op: str = "builtin") -> mx.sym.Symbol:
    """The stride-16, 2048-channel trunk a row describes (frame-by-frame or update branch)."""
    if row.trunk == "preact":
        return resnet_preact_trunk(data, row.depth, prefix, deformable_op)
    return resnet_v1_trunk(data, row.depth, prefix, row.deformable_groups, deformable_op)


def deeplab_symbol(name: str, num_classes: int = 19, is_train: bool = False) -> mx.sym.Symbol:
    """`softmax` over `croped_score` of the DeepLab network `name` (a cfg.symbol of
    DEEPLAB_VERSIONS); the label input is `label` when training, else the implicit
    `softmax_label` (as the original test symbol)."""
    if name not in DEEPLAB_VERSIONS:
        raise ValueError("unknown DeepLab symbol %r: expected one of %s"
                         % (name, ", ".join(sorted(DEEPLAB_VERSIONS))))
    data = mx.sym.Variable("data")
    scores = segmentation_head(deeplab_trunk(DEEPLAB_VERSIONS[name], data), data, num_classes)
    if not is_train:
        return mx.sym.SoftmaxOutput(data=scores, name="softmax", normalization="valid",
                                    multi_output=True, use_ignore=True,
                                    ignore_label=IGNORE_LABEL)
    return segmentation_loss(scores, mx.sym.Variable("label"))
