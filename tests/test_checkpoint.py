"""Checkpoint I/O: round trip, arg_prefix loading, strict checks, atomic writes, resume files."""
import os

import mxnet as mx
import numpy as np
import pytest

from accel.utils import checkpoint as ckpt
from accel.utils.checkpoint import (CheckpointError, check_params, latest_checkpoint,
                                    load_checkpoint, load_optimizer_states, load_param_file,
                                    params_path, save_checkpoint, save_optimizer_states,
                                    states_path, symbol_path)

INPUTS = {"data": (2, 3, 8, 8)}


def small_net(prefix=""):
    """conv -> BatchNorm -> relu -> fc: arguments with weights and biases, aux with BN stats."""
    data = mx.sym.Variable("data")
    x = mx.sym.Convolution(data, num_filter=4, kernel=(3, 3), pad=(1, 1), name=prefix + "conv0")
    x = mx.sym.BatchNorm(x, fix_gamma=False, name=prefix + "bn0")
    x = mx.sym.Activation(x, act_type="relu")
    return mx.sym.FullyConnected(x, num_hidden=5, name=prefix + "fc")


def random_params(sym, seed=0):
    rng = np.random.RandomState(seed)
    arg_shapes, _, aux_shapes = sym.infer_shape(**INPUTS)
    args = {n: mx.nd.array(rng.randn(*s)) for n, s in zip(sym.list_arguments(), arg_shapes)
            if n not in INPUTS}
    aux = {n: mx.nd.array(rng.rand(*s) + 0.5)
           for n, s in zip(sym.list_auxiliary_states(), aux_shapes)}
    return args, aux


def assert_same(a, b):
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name].asnumpy(), b[name].asnumpy())


def test_round_trip_with_symbol(tmp_path):
    sym = small_net()
    args, aux = random_params(sym)
    prefix = str(tmp_path / "out" / "model")
    path = save_checkpoint(prefix, 3, args, aux, symbol=sym)
    assert path == prefix + "-0003.params" and os.path.isfile(symbol_path(prefix))
    loaded_args, loaded_aux = load_checkpoint(prefix, 3)
    assert_same(loaded_args, args)
    assert_same(loaded_aux, aux)
    # the file uses the original key convention, so MXNet's own loader reads it too
    assert set(mx.nd.load(path)) == {"arg:" + n for n in args} | {"aux:" + n for n in aux}
    assert mx.sym.load(symbol_path(prefix)).list_arguments() == sym.list_arguments()
    assert check_params(sym, loaded_args, loaded_aux, INPUTS) == ([], [])
    # and the weights really drive the network the same way
    out = []
    for a, x in ((args, aux), (loaded_args, loaded_aux)):
        exe = sym.bind(mx.cpu(), dict(a, data=mx.nd.ones(INPUTS["data"])), aux_states=x)
        out.append(exe.forward(is_train=False)[0].asnumpy())
    np.testing.assert_array_equal(out[0], out[1])


def test_numpy_values_are_accepted(tmp_path):
    prefix = str(tmp_path / "m")
    save_checkpoint(prefix, 0, {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, {})
    args, aux = load_checkpoint(prefix, 0)
    np.testing.assert_array_equal(args["w"].asnumpy(), np.arange(6).reshape(2, 3))
    assert aux == {}


def test_arg_prefix_is_prepended_to_arg_and_aux_names(tmp_path):
    plain = small_net()
    args, aux = random_params(plain)
    prefix = str(tmp_path / "deeplab-18")
    save_checkpoint(prefix, 0, args, aux)
    p_args, p_aux = load_param_file(params_path(prefix, 0), arg_prefix="18_")
    assert sorted(p_args) == sorted("18_" + n for n in args)
    assert sorted(p_aux) == sorted("18_" + n for n in aux)
    np.testing.assert_array_equal(p_args["18_conv0_weight"].asnumpy(),
                                  args["conv0_weight"].asnumpy())
    np.testing.assert_array_equal(p_aux["18_bn0_moving_var"].asnumpy(),
                                  aux["bn0_moving_var"].asnumpy())
    check_params(small_net("18_"), p_args, p_aux, INPUTS)
    assert load_checkpoint(prefix, 0, arg_prefix="18_")[0].keys() == p_args.keys()


def test_missing_checkpoint_names_the_path_and_present_epochs(tmp_path):
    prefix = str(tmp_path / "model")
    with pytest.raises(CheckpointError, match="no checkpoint with this prefix") as err:
        load_checkpoint(prefix, 7)
    assert prefix + "-0007.params" in str(err.value)
    save_checkpoint(prefix, 2, {"w": mx.nd.ones(2)}, {})
    with pytest.raises(CheckpointError, match=r"epochs present for this prefix: \[2\]"):
        load_checkpoint(prefix, 7)
    with pytest.raises(CheckpointError, match="not found: " + str(tmp_path / "x.params")):
        load_param_file(str(tmp_path / "x.params"))


@pytest.mark.parametrize("corruption", ["truncated", "garbage", "empty"])
def test_corrupt_file_names_the_path(tmp_path, corruption):
    prefix = str(tmp_path / "model")
    path = save_checkpoint(prefix, 0, *random_params(small_net()))
    data = open(path, "rb").read()
    data = {"truncated": data[: len(data) // 2], "garbage": b"not a params file" * 8,
            "empty": b""}[corruption]
    with open(path, "wb") as f:
        f.write(data)
    with pytest.raises(CheckpointError, match="cannot read parameter file") as err:
        load_checkpoint(prefix, 0)
    assert path in str(err.value)


def test_files_without_arg_aux_keys_are_rejected(tmp_path):
    unnamed = str(tmp_path / "list.params")
    mx.nd.save(unnamed, [mx.nd.ones(2)])
    with pytest.raises(CheckpointError, match="unnamed list") as err:
        load_param_file(unnamed)
    assert unnamed in str(err.value)
    bare = str(tmp_path / "bare.params")
    mx.nd.save(bare, {"arg:w": mx.nd.ones(2), "w2": mx.nd.ones(2), "foo:b": mx.nd.ones(1)})
    with pytest.raises(CheckpointError, match="2 key\\(s\\) without") as err:
        load_param_file(bare)
    assert "foo:b, w2" in str(err.value) and bare in str(err.value)


def test_check_params_lists_every_problem_at_once():
    sym = small_net()
    args, aux = random_params(sym)
    del args["fc_bias"]                          # missing arg
    del aux["bn0_moving_mean"]                   # missing aux
    args["conv1_weight"] = mx.nd.ones((1,))      # unexpected arg
    aux["bn9_moving_var"] = mx.nd.ones((4,))     # unexpected aux
    args["conv0_weight"] = mx.nd.ones((4, 3, 5, 5))  # mis-shaped
    with pytest.raises(CheckpointError) as err:
        check_params(sym, args, aux, INPUTS, source="model-0001.params")
    msg = str(err.value)
    assert msg.startswith("5 parameter problem(s) in model-0001.params")
    for needle in ("missing arg:fc_bias (5,)", "missing aux:bn0_moving_mean (4,)",
                   "unexpected arg:conv1_weight (1,)", "unexpected aux:bn9_moving_var (4,)",
                   "mis-shaped arg:conv0_weight: expected (4, 3, 3, 3), got (4, 3, 5, 5)"):
        assert needle in msg


def test_check_params_allowances_report_what_was_tolerated():
    sym = small_net()
    args, aux = random_params(sym)
    del args["fc_bias"]
    args["extra_weight"] = mx.nd.ones(1)
    with pytest.raises(CheckpointError, match="missing arg:fc_bias"):
        check_params(sym, args, aux, INPUTS, allow_extra=True)
    with pytest.raises(CheckpointError, match="unexpected arg:extra_weight"):
        check_params(sym, args, aux, INPUTS, allow_missing=True)
    report = check_params(sym, args, aux, INPUTS, allow_missing=True, allow_extra=True)
    assert report.missing == ["arg:fc_bias"] and report.unexpected == ["arg:extra_weight"]
    # a wrong shape is never tolerated
    args["fc_weight"] = mx.nd.ones((5, 1))
    with pytest.raises(CheckpointError, match="mis-shaped arg:fc_weight"):
        check_params(sym, args, aux, INPUTS, allow_missing=True, allow_extra=True)


def test_check_params_with_explicit_shapes_and_bad_inputs():
    args = {"a": mx.nd.ones((2, 3))}
    assert check_params(({"a": (2, 3)}, {}), args, {}) == ([], [])
    with pytest.raises(CheckpointError, match="mis-shaped arg:a: expected \\(3, 2\\)"):
        check_params(({"a": [3, 2]}, {}), args, {})
    with pytest.raises(ValueError, match="input_shapes"):
        check_params(small_net(), args, {})
    with pytest.raises(ValueError, match="shape inference failed"):
        check_params(small_net(), args, {}, {"data": (2, 3)})


def test_failed_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    prefix = str(tmp_path / "model")
    args, aux = random_params(small_net())
    save_checkpoint(prefix, 1, args, aux)
    before = open(params_path(prefix, 1), "rb").read()

    def crash_mid_write(fname, data):
        with open(fname, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")
    monkeypatch.setattr(mx.nd, "save", crash_mid_write)
    new_args, new_aux = random_params(small_net(), seed=1)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(prefix, 1, new_args, new_aux)
    monkeypatch.undo()
    assert open(params_path(prefix, 1), "rb").read() == before
    assert_same(load_checkpoint(prefix, 1)[0], args)
    assert os.listdir(tmp_path) == ["model-0001.params"]  # the temp file was removed


def test_latest_checkpoint_ignores_temp_partial_and_foreign_files(tmp_path):
    prefix = str(tmp_path / "model")
    assert latest_checkpoint(prefix) is None
    assert latest_checkpoint(str(tmp_path / "absent_dir" / "model")) is None
    for epoch in (1, 2):
        save_checkpoint(prefix, epoch, {"w": mx.nd.ones(2)}, {})
    # what an interrupted save, an empty file and neighbouring prefixes look like
    for name in (".model-0005.params.abc123.tmp", "model-0004.params.tmp", "model-0003.params.x",
                 "modelx-0009.params", "other-0008.params"):
        (tmp_path / name).write_bytes(b"junk")
    (tmp_path / "model-0006.params").write_bytes(b"")
    assert ckpt.list_checkpoints(prefix) == [1, 2]
    assert latest_checkpoint(prefix) == 2
    save_checkpoint(prefix, 10, {"w": mx.nd.ones(2)}, {})
    assert latest_checkpoint(prefix) == 10


def _trained_module(seed):
    mx.random.seed(seed)
    sym = mx.sym.SoftmaxOutput(small_net(), name="softmax")
    mod = mx.mod.Module(sym, data_names=["data"], label_names=["softmax_label"],
                        context=mx.cpu())
    mod.bind(data_shapes=[("data", INPUTS["data"])],
             label_shapes=[("softmax_label", (INPUTS["data"][0],))])
    mod.init_params(mx.init.Xavier())
    mod.init_optimizer(kvstore=None, optimizer="sgd",
                       optimizer_params={"learning_rate": 0.1, "momentum": 0.9})
    batch = mx.io.DataBatch([mx.nd.ones(INPUTS["data"])], [mx.nd.array([1, 3])])
    mod.forward_backward(batch)
    mod.update()
    return mod


def test_optimizer_states_round_trip_for_resume(tmp_path):
    prefix = str(tmp_path / "model")
    trained = _trained_module(0)
    save_checkpoint(prefix, 1, *trained.get_params())
    path = save_optimizer_states(prefix, 1, trained)
    assert path == states_path(prefix, 1)
    saved = trained._updater.get_states()
    assert load_optimizer_states(prefix, 1) == saved
    fresh = _trained_module(1)
    assert fresh._updater.get_states() != saved
    fresh.load_optimizer_states(path)
    assert fresh._updater.get_states() == saved
    # bytes work as well, and resume needs both files
    assert latest_checkpoint(prefix, require_states=True) == 1
    save_checkpoint(prefix, 2, *trained.get_params())
    assert latest_checkpoint(prefix) == 2
    assert latest_checkpoint(prefix, require_states=True) == 1
    save_optimizer_states(prefix, 2, saved)
    assert latest_checkpoint(prefix, require_states=True) == 2
    with pytest.raises(CheckpointError, match="states file not found: " + states_path(prefix, 5)):
        load_optimizer_states(prefix, 5)
