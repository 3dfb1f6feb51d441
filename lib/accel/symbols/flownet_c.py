"""FlowNetC's correlation stage: what `accel.operators.correlation` is for.

Accel and DFF use FlowNetS, which stacks the two frames as input channels and needs no
correlation. FlowNetC (Dosovitskiy et al., "FlowNet", ICCV 2015, Sec. 3) instead runs both
frames through one shared ("siamese") tower and compares their features with a correlation
layer: channel (dy, dx) at pixel x is the channel-mean of f1(x) * f2(x + (dy, dx)), for
displacements up to `max_displacement` in steps of `stride2` (feature pixels). This module
builds that stage on our correlation operator (or MXNet's built-in one, for comparison), as
a ready place to grow a FlowNetC-style flow network; Accel's released models never use it.

FlowNetC's sizes: tower conv1 7x7/2 64, conv2 5x5/2 128, conv3 5x5/2 256 (LeakyReLU 0.1),
correlation kernel 1, max displacement 20, stride2 2 (21 x 21 = 441 channels) at stride 8,
a 1x1 `conv_redir` of image 1's features to 32 channels, concatenated: 473 channels.
"""
from typing import List, Sequence, Tuple

import mxnet as mx

__all__ = ["TOWER", "siamese_tower", "correlation_volume", "displacement_channel",
           "flownet_c_stage", "flownet_c_flow"]

# (name, num_filter, kernel, stride) of the shared tower; stride 8 in all.
TOWER: Tuple[Tuple[str, int, int, int], ...] = (
    ("conv1", 64, 7, 2), ("conv2", 128, 5, 2), ("conv3", 256, 5, 2))


def _leaky(x: mx.sym.Symbol, name: str) -> mx.sym.Symbol:
    return mx.sym.LeakyReLU(x, act_type="leaky", slope=0.1, name=name)


def siamese_tower(images: Sequence[mx.sym.Symbol],
                  tower: Sequence[Tuple[str, int, int, int]] = TOWER) -> List[mx.sym.Symbol]:
    """The shared tower on each image: one set of variables (`conv1_weight`, ...) for all
    (two Variables of one name would be two arguments), layers named 'conv1a', 'conv1b'..."""
    shared = {name: (mx.sym.Variable(name + "_weight"), mx.sym.Variable(name + "_bias"))
              for name, _, _, _ in tower}
    outputs = []
    for suffix, image in zip("abcdefgh", images):
        x = image
        for name, num_filter, kernel, stride in tower:
            x = mx.sym.Convolution(x, num_filter=num_filter, kernel=(kernel, kernel),
                                   stride=(stride, stride), pad=(kernel // 2, kernel // 2),
                                   weight=shared[name][0], bias=shared[name][1],
                                   name=name + suffix)
            x = _leaky(x, name + suffix + "_relu")
        outputs.append(x)
    return outputs


def correlation_volume(feat1: mx.sym.Symbol, feat2: mx.sym.Symbol, max_displacement: int = 20,
                       stride2: int = 2, op: str = "accel") -> mx.sym.Symbol:
    """`corr` (N, (2 * max_displacement / stride2 + 1)^2, H, W), kernel 1, padded so the
    output keeps the feature size, then LeakyReLU as in FlowNetC. op: 'accel' (ours) or
    'builtin' (mx.sym.Correlation)."""
    params = dict(kernel_size=1, max_displacement=max_displacement, stride1=1,
                  stride2=stride2, pad_size=max_displacement, is_multiply=True)
    if op == "accel":
        from accel.operators import correlation
        corr = correlation(feat1, feat2, name="corr", **params)
    elif op == "builtin":
        corr = mx.sym.Correlation(data1=feat1, data2=feat2, name="corr", **params)
    else:
        raise ValueError(f"correlation op must be 'accel' or 'builtin', got {op!r}")
    return _leaky(corr, "corr_relu")


def displacement_channel(dy: int, dx: int, max_displacement: int = 20, stride2: int = 2) -> int:
    """The correlation channel of displacement (dy, dx) in feature pixels (multiples of
    stride2): channels run over dy, then dx, from -max_displacement."""
    grid = 2 * (max_displacement // stride2) + 1
    r = max_displacement // stride2
    if dy % stride2 or dx % stride2 or abs(dy) > max_displacement or abs(dx) > max_displacement:
        raise ValueError(f"displacement ({dy}, {dx}) is not on the {stride2}-pixel grid "
                         f"within +-{max_displacement}")
    return (dy // stride2 + r) * grid + (dx // stride2 + r)


def flownet_c_stage(image1: mx.sym.Symbol, image2: mx.sym.Symbol, max_displacement: int = 20,
                    stride2: int = 2, redir: int = 32,
                    tower: Sequence[Tuple[str, int, int, int]] = TOWER,
                    op: str = "accel") -> mx.sym.Symbol:
    """concat(`conv_redir` of image 1's features, correlation of both): FlowNetC after conv3."""
    feat1, feat2 = siamese_tower([image1, image2], tower)
    corr = correlation_volume(feat1, feat2, max_displacement, stride2, op)
    redirected = _leaky(mx.sym.Convolution(feat1, num_filter=redir, kernel=(1, 1),
                                           name="conv_redir"), "conv_redir_relu")
    return mx.sym.concat(redirected, corr, dim=1, name="concat_corr")


def flownet_c_flow(image1: mx.sym.Symbol, image2: mx.sym.Symbol, **stage) -> mx.sym.Symbol:
    """A minimal FlowNetC-style flow predictor: the stage, then a 3x3 conv to 2-channel
    flow (x, y) at stride 8 (`predict_flow`); FlowNetC's deeper encoder and refinement
    would go between the two."""
    x = flownet_c_stage(image1, image2, **stage)
    return mx.sym.Convolution(x, num_filter=2, kernel=(3, 3), pad=(1, 1), name="predict_flow")
