"""Frame-by-frame DeepLab networks, one table of trunks.

* `deeplab_resnet_v1_101`: ResNet-v1-101 with dilated (not deformable) res5 and the DeepLab
  head. Trained first, it initialises Accel's reference branch (`pretrained_base`).
* `deeplab_resnet_18` / `_34` / `_50`: the update branches of Accel-18/34/50 trained alone
  (`pretrained_ec`). Their names carry no prefix; Accel loads them with TRAIN.arg_prefix
  ('18_', ...), so the Accel release's files and ours are interchangeable.
"""
from typing import Callable, Dict

import mxnet as mx

from accel.symbols.layers import segmentation_head, segmentation_loss
from accel.symbols.resnet import resnet_preact_trunk, resnet_v1_trunk

Trunk = Callable[[mx.sym.Symbol], mx.sym.Symbol]

# symbol name (cfg.symbol) -> stride-16 trunk, 2048 channels
TRUNKS: Dict[str, Trunk] = {
    "deeplab_resnet_v1_101": lambda d: resnet_v1_trunk(d, 101, "", deformable_groups=None),
    "deeplab_resnet_18": lambda d: resnet_preact_trunk(d, 18, ""),
    "deeplab_resnet_34": lambda d: resnet_preact_trunk(d, 34, ""),
    "deeplab_resnet_50": lambda d: resnet_v1_trunk(d, 50, "", deformable_groups=4),
}


def deeplab_symbol(name: str, num_classes: int = 19, is_train: bool = False) -> mx.sym.Symbol:
    """`softmax` over `croped_score` of the DeepLab network `name` (a key of TRUNKS); the
    label input is `label` when training, else the implicit `softmax_label` (as the
    original test symbol)."""
    if name not in TRUNKS:
        raise ValueError("unknown DeepLab symbol %r: expected one of %s"
                         % (name, ", ".join(sorted(TRUNKS))))
    data = mx.sym.Variable("data")
    scores = segmentation_head(TRUNKS[name](data), data, num_classes)
    if not is_train:
        return mx.sym.SoftmaxOutput(data=scores, name="softmax", normalization="valid",
                                    multi_output=True, use_ignore=True, ignore_label=255)
    return segmentation_loss(scores, mx.sym.Variable("label"))


def deeplab_resnet_v1_101(num_classes: int = 19, is_train: bool = False) -> mx.sym.Symbol:
    """The frame-by-frame DeepLab-101 of the original release."""
    return deeplab_symbol("deeplab_resnet_v1_101", num_classes, is_train)
