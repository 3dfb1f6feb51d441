"""Initial values: the fusion layer as the original initialises it, fixed bilinear
upsampling, deterministic per seed."""
import mxnet as mx
import numpy as np

from accel.core.initializer import initial_value, initialize_missing
from dff_deeplab.symbol import AccelNetwork


def test_feature_fusion_starts_as_the_current_frame():
    w = initial_value("corr_weight", (2048, 4096, 1, 1))
    x = np.random.default_rng(0).standard_normal((4096,)).astype(np.float32)
    np.testing.assert_array_equal(w[:, :, 0, 0] @ x, x[2048:])


def test_score_fusion_is_small_gaussian_and_bias_zero():
    w = initial_value("corr_weight", (19, 38, 1, 1))
    assert 0.005 < w.std() < 0.015 and abs(w.mean()) < 0.005
    assert not initial_value("corr_bias", (19,)).any()


def test_bilinear_upsampling_interpolates_constant_maps():
    w = initial_value("18_upsampling_weight", (19, 1, 32, 32))
    score = mx.nd.ones((1, 19, 6, 8))
    up = mx.nd.Deconvolution(score, mx.nd.array(w), kernel=(32, 32), stride=(16, 16),
                             num_filter=19, num_group=19, no_bias=True)
    inner = up.asnumpy()[0, :, 16:-16, 16:-16]
    np.testing.assert_allclose(inner, 1.0, atol=1e-6)


def test_initialize_missing_keeps_given_values_and_is_seeded():
    net = AccelNetwork("18")
    sym = net.cur_test()
    shapes = {"data": (1, 3, 64, 64), "data_key": (1, 3, 64, 64), "feat_key": (1, 2048, 4, 4)}
    given = {"corr_bias": mx.nd.full((19,), 3.0)}
    a1, x1 = initialize_missing(sym, shapes, given, {}, seed=1)
    a2, _ = initialize_missing(sym, shapes, {}, {}, seed=1)
    a3, _ = initialize_missing(sym, shapes, {}, {}, seed=2)
    assert set(a1) == set(sym.list_arguments()) - set(shapes)
    assert set(x1) == set(sym.list_auxiliary_states())
    assert (a1["corr_bias"].asnumpy() == 3.0).all()
    assert np.array_equal(a1["conv2_weight"].asnumpy(), a2["conv2_weight"].asnumpy())
    assert not np.array_equal(a1["conv2_weight"].asnumpy(), a3["conv2_weight"].asnumpy())
    assert not a1["18_res5a_branch2b_offset_weight"].asnumpy().any()
