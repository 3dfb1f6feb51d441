"""Frame-by-frame DeepLab: ResNet-v1-101 with dilated (not deformable) res5 and the DeepLab
head. Trained first, it initialises Accel's reference branch (`pretrained_base`)."""
import mxnet as mx

from accel.symbols.layers import segmentation_head, segmentation_loss
from accel.symbols.resnet import resnet_v1_trunk


def deeplab_resnet_v1_101(num_classes: int = 19, is_train: bool = False) -> mx.sym.Symbol:
    """`softmax` over `croped_score`; the label input is `label` when training, else the
    implicit `softmax_label` (as the original test symbol)."""
    data = mx.sym.Variable("data")
    feat = resnet_v1_trunk(data, depth=101, prefix="", deformable_groups=None)
    scores = segmentation_head(feat, data, num_classes)
    label = mx.sym.Variable("label") if is_train else None
    if label is None:
        return mx.sym.SoftmaxOutput(data=scores, name="softmax", normalization="valid",
                                    multi_output=True, use_ignore=True, ignore_label=255)
    return segmentation_loss(scores, label)
