"""Fixture weights for MXNet networks: the oracle rule (accel.oracle.oracle_value) applied
to every parameter of a network's key and non-key graphs."""
from accel.oracle import FLOW_PREDICTOR, oracle_value  # noqa: F401  (re-exported for tests)


def oracle_network_params(network, frame_shape):
    """Fixture weights (as NDArrays) for every parameter of a network's key and non-key
    graphs at frames of `frame_shape` (N, 3, H, W)."""
    import mxnet as mx

    shapes = {"data": frame_shape, "data_key": frame_shape}
    feat_shape = network.key_test().get_internals()["res5c_relu_output"].infer_shape(
        data=frame_shape)[1][0]
    shapes["feat_key"] = feat_shape
    args, aux = {}, {}
    for sym in (network.key_test(), network.cur_test()):
        inputs = {k: v for k, v in shapes.items() if k in sym.list_arguments()}
        arg_shapes, _, aux_shapes = sym.infer_shape(**inputs)
        for name, shape in zip(sym.list_arguments(), arg_shapes):
            if name not in shapes:
                args[name] = mx.nd.array(oracle_value(name, shape))
        for name, shape in zip(sym.list_auxiliary_states(), aux_shapes):
            aux[name] = mx.nd.array(oracle_value(name, shape))
    return args, aux
