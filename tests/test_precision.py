"""BF16 graphs (accel.core.precision): the CPU check, what stays float32, and how far the
bf16 outputs are from float32 on the oracle fixtures.

On a CPU without AVX512-BF16/AMX the bf16 graphs cannot run (oneDNN has no kernels there), so
the numbers are checked on `emulate_bf16`'s float32 graph with the same roundings; where the
CPU has bf16 the converted graph itself is run too.

Tolerances, from the measured distribution (oracle weights, 128x256, emulated bf16): DeepLab-101
and the keyframe graph give scores within 0.8% (mean relative) of float32 and 99.5% identical
argmax, the Accel-18 non-key graph 0.07% and 99.97%. The oracle's random weights leave the 19
classes nearly tied (score std 0.004), so these argmax figures are a floor; the tests allow
2.5x the measured error and 1% (0.2% for the non-key graph) of flipped pixels.
"""
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from accel.core.precision import (BF16_FLOAT32_LAYERS, BF16_ROUND_OP, FLOAT32_OPS, bf16_layers,
                                  cpu_has_bf16, emulate_bf16, internal_dtypes, output_dtypes,
                                  require_bf16, to_bf16)
from deeplab.symbol import deeplab_resnet_v1_101
from dff_deeplab.symbol import AccelNetwork
from oracle import oracle_value

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "oracle_128x256"

# fixture -> (graph builder, outputs compared, max mean relative error, min argmax agreement)
CASES = {
    "deeplab_resnet_v1_101_test": (lambda: deeplab_resnet_v1_101(19), ["croped_score_output"],
                                   2e-2, 0.99),
    "accel_key_test": (lambda: AccelNetwork("18").key_test(),
                       ["res5c_relu_output", "croped_score_output"], 2e-2, 0.99),
    "accel_18_cur_test": (lambda: AccelNetwork("18").cur_test(),
                          ["Convolution5_output", "warping_feat_output", "correction_output"],
                          7e-3, 0.998),
}


def _fixture_graph(name):
    """(graph of the compared outputs, its inputs, oracle args, oracle aux)."""
    build, outputs, _, _ = CASES[name]
    internals = build().get_internals()
    sym = mx.sym.Group([internals[o] for o in outputs])
    z = np.load(FIXTURES / (name + ".npz"))
    inputs = {k[len("input__"):]: z[k] for k in z.files
              if k.startswith("input__") and k[len("input__"):] in sym.list_arguments()}
    arg_shapes, _, aux_shapes = sym.infer_shape(**{k: v.shape for k, v in inputs.items()})
    args = {n: mx.nd.array(oracle_value(n, s)) for n, s in zip(sym.list_arguments(), arg_shapes)
            if n not in inputs}
    aux = {n: mx.nd.array(oracle_value(n, s))
           for n, s in zip(sym.list_auxiliary_states(), aux_shapes)}
    return sym, inputs, args, aux


def _forward(sym, inputs, args, aux):
    bound = dict(args, **{k: mx.nd.array(v) for k, v in inputs.items()})
    exe = sym.bind(mx.cpu(), {k: bound[k] for k in sym.list_arguments()},
                   aux_states={k: aux[k] for k in sym.list_auxiliary_states()}, grad_req="null")
    return [o.asnumpy() for o in exe.forward(is_train=False)]


def _assert_close(name, want, got):
    _, outputs, max_rel, min_agree = CASES[name]
    for out, w, g in zip(outputs, want, got):
        assert g.dtype == np.float32 and g.shape == w.shape, out
        rel = np.abs(g - w).mean() / np.abs(w).mean()
        assert 0 < rel <= max_rel, "%s: mean relative error %.3g, expected (0, %g]" % (
            out, rel, max_rel)
        if w.shape[1] == 19:   # class scores
            agree = (g.argmax(1) == w.argmax(1)).mean()
            assert agree >= min_agree, "%s: argmax agrees on %.4f of pixels, expected >= %g" % (
                out, agree, min_agree)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bf16_graphs_agree_with_float32_on_oracle_fixtures(name):
    sym, inputs, args, aux = _fixture_graph(name)
    want = _forward(sym, inputs, args, aux)
    _assert_close(name, want, _forward(emulate_bf16(sym, args, aux), inputs, args, aux))
    if cpu_has_bf16():
        bsym, bargs, baux = to_bf16(sym, args, aux)
        _assert_close(name, want, _forward(bsym, inputs, bargs, baux))


def test_float32_list_stays_float32_in_the_converted_graph():
    sym, inputs, args, aux = _fixture_graph("accel_18_cur_test")
    before = {k: v.dtype for k, v in args.items()}
    bsym, bargs, baux = to_bf16(sym, args, aux)
    assert {k: v.dtype for k, v in args.items()} == before, "to_bf16 changed its inputs"
    dtypes = internal_dtypes(bsym, list(inputs))
    in_bf16 = bf16_layers(bsym, list(inputs))
    import json
    nodes = [n for n in json.loads(sym.tojson())["nodes"] if n["op"] != "null"]
    kept = [n["name"] for n in nodes
            if n["op"] in FLOAT32_OPS or n["name"].startswith(tuple(BF16_FLOAT32_LAYERS))]
    # The flow predictors, the fusion, the deformable convolutions, the warp, the crops.
    assert {"Convolution1", "Convolution5", "correction", "warping_feat"} <= set(kept)
    assert any(n["op"] == "_contrib_DeformableConvolution" for n in nodes)
    for name in kept:
        assert name not in in_bf16 and dtypes[name + "_output"] == "float32", name
    # ... and the trunks' convolutions run in bf16, with bf16 weights stored once.
    assert in_bf16.get("18_conv0") == "Convolution" and in_bf16.get("flow_conv1") == "Convolution"
    assert sum(op == "Convolution" for op in in_bf16.values()) > 30
    assert bargs["18_conv0_weight"].dtype != np.float32
    assert bargs["Convolution5_weight"].dtype == np.float32
    assert output_dtypes(bsym, list(inputs)) == ["float32"] * 3


def test_emulated_rounding_is_amp_cast_rounding():
    from mxnet.contrib.amp.amp import bfloat16

    x = mx.nd.array(np.random.default_rng(0).standard_normal((2, 3, 17, 5)) * 100)
    ours = mx.nd.Custom(x, op_type=BF16_ROUND_OP).asnumpy()
    amp = mx.nd.amp_cast(mx.nd.amp_cast(x, dtype=bfloat16), dtype="float32").asnumpy()
    assert np.array_equal(ours, amp)
    assert 0 < np.abs(ours / x.asnumpy() - 1).max() <= 2.0 ** -8


def test_bf16_capability_check(tmp_path):
    assert cpu_has_bf16(flags={"avx512f", "avx512_bf16"})
    assert cpu_has_bf16(flags={"amx_bf16", "amx_tile"})
    assert not cpu_has_bf16(flags={"avx2", "fma", "avx512f", "avx512_vnni"})
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2 fma\n")
    assert not cpu_has_bf16(cpuinfo=str(info))
    with pytest.raises(RuntimeError) as err:
        require_bf16(cpuinfo=str(info))
    message = str(err.value)
    assert "\n" not in message
    for part in ("AMD EPYC 7B13", "avx512_bf16", "amx_bf16", "'fp32'", "'int8'"):
        assert part in message, part
    require_bf16(flags={"avx512_bf16"})   # no error where the CPU has it
    info.write_text("processor\t: 0\n")
    with pytest.raises(ValueError, match="no 'flags' line"):
        cpu_has_bf16(cpuinfo=str(info))
