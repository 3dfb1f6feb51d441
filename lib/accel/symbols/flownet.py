"""FlowNetS as used by Deep Feature Flow, and the feature warp.

The input pair is averaged down 2x first (`resize_data`) and the last predictor
(`Convolution5`) works on `Concat5` pooled 2x again (`resize_concat5`), so the flow comes out
at 1/16 of the image: exactly the grid of the stride-16 ResNet features it warps.
"""
import mxnet as mx

from accel.symbols.versions import FLOW_SCALE


# Encoder: (name, num_filter, kernel, stride); every conv is followed by LeakyReLU(0.1).
_ENCODER = (
    ("flow_conv1", 64, 7, 2), ("conv2", 128, 5, 2), ("conv3", 256, 5, 2),
    ("conv3_1", 256, 3, 1), ("conv4", 512, 3, 2), ("conv4_1", 512, 3, 1),
    ("conv5", 512, 3, 2), ("conv5_1", 512, 3, 1), ("conv6", 1024, 3, 2),
    ("conv6_1", 1024, 3, 1),
)
# Decoder levels, coarse to fine: (skip feature from the encoder, deconv name, its filters,
# predictor of the coarser level, upsampler of that prediction, concat name).
_DECODER = (
    ("conv5_1", "deconv5", 512, "Convolution1", "upsample_flow6to5", "Concat2"),
    ("conv4_1", "deconv4", 256, "Convolution2", "upsample_flow5to4", "Concat3"),
    ("conv3_1", "deconv3", 128, "Convolution3", "upsample_flow4to3", "Concat4"),
    ("conv2", "deconv2", 64, "Convolution4", "upsample_flow3to2", "Concat5"),
)


def _leaky(x, name):
    return mx.sym.LeakyReLU(x, act_type="leaky", slope=0.1, name=name)


def _predict_flow(x, name):
    return mx.sym.Convolution(x, name=name, num_filter=2, kernel=(3, 3), pad=(1, 1))


def flownet_s(cur: mx.sym.Symbol, ref: mx.sym.Symbol) -> mx.sym.Symbol:
    """Flow from `ref` to `cur` on the stride-16 grid, in feature pixels.

    DFF's checkpoint also holds `Convolution5_scale` (a 1024-channel scale map on
    `resize_concat5`); Accel never uses it, so it is not built and is ignored on loading.

    cur, ref: (N, 3, H, W) preprocessed frames (RGB minus the means); the network sees them
    divided by 255. Output flow (N, 2, H/16, W/16), channel 0 = x, is already x2.5.
    """
    data = mx.sym.concat(cur / 255.0, ref / 255.0, dim=1, name="flow_input")
    x = mx.sym.Pooling(data, name="resize_data", kernel=(2, 2), stride=(2, 2),
                       pool_type="avg")
    skips = {}
    for name, filters, kernel, stride in _ENCODER:
        x = mx.sym.Convolution(x, name=name, num_filter=filters, kernel=(kernel, kernel),
                               stride=(stride, stride), pad=(kernel // 2, kernel // 2))
        x = _leaky(x, name + "_relu")
        skips[name] = x
    for skip_name, deconv_name, filters, pred_name, up_name, concat_name in _DECODER:
        skip = skips[skip_name]
        flow = _predict_flow(x, pred_name)
        deconv = mx.sym.Deconvolution(x, name=deconv_name, num_filter=filters,
                                      kernel=(4, 4), stride=(2, 2), pad=(1, 1), no_bias=False)
        deconv = _leaky(mx.sym.Crop(deconv, skip, name="crop_" + deconv_name),
                        deconv_name + "_relu")
        up = mx.sym.Deconvolution(flow, name=up_name, num_filter=2, kernel=(4, 4),
                                  stride=(2, 2), pad=(1, 1), no_bias=False)
        up = mx.sym.Crop(up, skip, name="crop_" + up_name)
        x = mx.sym.concat(skip, deconv, up, dim=1, name=concat_name)
    x = mx.sym.Pooling(x, name="resize_concat5", kernel=(2, 2), stride=(2, 2),
                       pool_type="avg")
    return _predict_flow(x, "Convolution5") * FLOW_SCALE


def warp(feat: mx.sym.Symbol, flow: mx.sym.Symbol, name: str = "warping_feat",
         op: str = "builtin") -> mx.sym.Symbol:
    """Bilinearly sample `feat` at (x + flow_x, y + flow_y); zeros outside the map.

    op: 'builtin' is the official GridGenerator(warp) + BilinearSampler pair; 'fused' is
    our single-kernel operator with the same semantics (accel.operators).
    """
    if op == "builtin":
        grid = mx.sym.GridGenerator(data=flow, transform_type="warp", name=name + "_grid")
        return mx.sym.BilinearSampler(data=feat, grid=grid, name=name)
    if op == "fused":
        from accel.operators import flow_warp  # registers the CustomOp on first use
        return flow_warp(feat, flow, name=name)
    raise ValueError("unknown warp op %r: expected 'builtin' or 'fused' (network.WARP_OP)"
                     % (op,))


def flownet_training() -> mx.sym.Symbol:
    """FlowNet trained alone on frame pairs: inputs data (current frame), data_key (earlier
    frame) and flow_label (N, 2, H/16, W/16) in feature pixels; loss = mean end-point error.

    Outputs: the loss, and the predicted flow (no gradient) for the meters.
    """
    flow = flownet_s(mx.sym.Variable("data"), mx.sym.Variable("data_key"))
    diff = flow - mx.sym.Variable("flow_label")
    epe = mx.sym.sqrt(mx.sym.sum(mx.sym.square(diff), axis=1) + 1e-6)
    loss = mx.sym.MakeLoss(mx.sym.mean(epe), name="flow_loss")
    return mx.sym.Group([loss, mx.sym.BlockGrad(flow, name="flow_pred")])
