"""Frame-by-frame DeepLab networks: ResNet-v1-101 (dilated res5) and the update branches
DeepLab-18/34/50 trained alone. The rows are in accel.symbols.versions (DEEPLAB_VERSIONS),
the builder in accel.symbols.deeplab, so that the Accel package can build them too."""
import mxnet as mx

from accel.symbols.deeplab import deeplab_symbol

__all__ = ["deeplab_symbol", "deeplab_resnet_v1_101"]


def deeplab_resnet_v1_101(num_classes: int = 19, is_train: bool = False) -> mx.sym.Symbol:
    """The frame-by-frame DeepLab-101 of the original release."""
    return deeplab_symbol("deeplab_resnet_v1_101", num_classes, is_train)
