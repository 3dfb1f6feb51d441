"""Checkpoint I/O: round trip, arg_prefix loading, strict checks, atomic writes, resume files."""
import os

import mxnet as mx
import numpy as np
import pytest

from accel.utils import checkpoint as ckpt
from accel.utils.checkpoint import (CheckpointError, check_params, load_checkpoint,
                                    load_optimizer_states, load_param_file, params_path,
                                    remove_stale_temporaries, save_checkpoint,
                                    save_optimizer_states, states_path, symbol_path)

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


def test_numpy_loading_gives_the_same_parameters_as_numpy_arrays(tmp_path):
    sym = small_net()
    args, aux = random_params(sym)
    prefix = str(tmp_path / "deeplab-18")
    save_checkpoint(prefix, 0, args, aux)
    np_args, np_aux = load_checkpoint(prefix, 0, arg_prefix="18_", numpy=True)
    assert all(type(v) is np.ndarray for v in [*np_args.values(), *np_aux.values()])
    mx_args, mx_aux = load_checkpoint(prefix, 0, arg_prefix="18_")
    for mine, theirs in ((np_args, mx_args), (np_aux, mx_aux)):
        assert list(mine) == list(theirs)
        for name, value in theirs.items():
            assert mine[name].dtype == value.dtype
            np.testing.assert_array_equal(mine[name], value.asnumpy())
    check_params(small_net("18_"), np_args, np_aux, INPUTS)


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


@pytest.mark.parametrize("numpy", [False, True])
@pytest.mark.parametrize("corruption", ["truncated", "garbage", "empty"])
def test_corrupt_file_names_the_path(tmp_path, corruption, numpy):
    prefix = str(tmp_path / "model")
    path = save_checkpoint(prefix, 0, *random_params(small_net()))
    data = open(path, "rb").read()
    data = {"truncated": data[: len(data) // 2], "garbage": b"not a params file" * 8,
            "empty": b""}[corruption]
    with open(path, "wb") as f:
        f.write(data)
    with pytest.raises(CheckpointError, match="cannot read parameter file .* \\(corrupt or not "
                       "an mx.nd.save file\\): ") as err:
        load_checkpoint(prefix, 0, numpy=numpy)
    assert path in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("numpy", [False, True])
def test_files_without_arg_aux_keys_are_rejected(tmp_path, numpy):
    unnamed = str(tmp_path / "list.params")
    mx.nd.save(unnamed, [mx.nd.ones(2)])
    with pytest.raises(CheckpointError, match="unnamed list of 1 arrays") as err:
        load_param_file(unnamed, numpy=numpy)
    assert unnamed in str(err.value)
    bare = str(tmp_path / "bare.params")
    mx.nd.save(bare, {"arg:w": mx.nd.ones(2), "w2": mx.nd.ones(2), "foo:b": mx.nd.ones(1)})
    with pytest.raises(CheckpointError, match="2 key\\(s\\) without") as err:
        load_param_file(bare, numpy=numpy)
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
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(mx.nd, "save", crash_mid_write)
    new_args, new_aux = random_params(small_net(), seed=1)
    with pytest.raises(CheckpointError, match="cannot write .*model-0001.params: disk full"):
        save_checkpoint(prefix, 1, new_args, new_aux)
    monkeypatch.undo()
    assert open(params_path(prefix, 1), "rb").read() == before
    assert_same(load_checkpoint(prefix, 1)[0], args)
    assert os.listdir(tmp_path) == ["model-0001.params"]  # the temp file was removed


def test_a_full_disk_names_the_file_and_the_cause(tmp_path, monkeypatch):
    # Issue #13.8: a full disk gave a raw MXNetError "FileStream.Write incomplete".
    prefix = str(tmp_path / "model")

    def full(fname, data):
        raise mx.base.MXNetError("[12:00:00] src/io/local_filesys.cc:38: Check failed: "
                                 "FileStream.Write incomplete")
    monkeypatch.setattr(mx.nd, "save", full)
    with pytest.raises(CheckpointError) as err:
        save_checkpoint(prefix, 3, {"w": mx.nd.ones(2)}, {})
    assert params_path(prefix, 3) in str(err.value) and "disk full" in str(err.value)
    assert "Write incomplete" in str(err.value) and "MiB free" in str(err.value)
    with pytest.raises(CheckpointError, match="cannot write .*model-0003.states"):
        save_optimizer_states(prefix, 3, {"w@0": mx.nd.ones(2)})


def test_list_checkpoints_ignores_temp_partial_and_foreign_files(tmp_path):
    prefix = str(tmp_path / "model")
    assert ckpt.list_checkpoints(prefix) == []
    assert ckpt.list_checkpoints(str(tmp_path / "absent_dir" / "model")) == []
    for epoch in (1, 2):
        save_checkpoint(prefix, epoch, {"w": mx.nd.ones(2)}, {})
    # what an interrupted save, an empty file and neighbouring prefixes look like
    for name in (".model-0005.params.abc123.tmp", "model-0004.params.tmp", "model-0003.params.x",
                 "modelx-0009.params", "other-0008.params"):
        (tmp_path / name).write_bytes(b"junk")
    (tmp_path / "model-0006.params").write_bytes(b"")
    assert ckpt.list_checkpoints(prefix) == [1, 2]
    save_checkpoint(prefix, 10, {"w": mx.nd.ones(2)}, {})
    assert ckpt.list_checkpoints(prefix) == [1, 2, 10]


def test_stale_temporaries_of_the_prefix_are_removed(tmp_path):
    # Issue #13.7: hidden .params/.states temporaries of a killed save were never cleaned.
    prefix = str(tmp_path / "model")
    mine = [".model-0005.params.abc123.tmp", ".model-0005.states.k9_x1q.tmp",
            ".model-0005.json.zzzz.tmp", ".model-symbol.json.a1.tmp"]
    others = [".other-0005.params.abc123.tmp", ".modelx-0001.params.a.tmp",
              "model-0004.params.tmp", ".video.mp4.abc.tmp.mp4"]
    for name in mine + others:
        (tmp_path / name).write_bytes(b"junk")
    removed = remove_stale_temporaries(prefix)
    assert sorted(os.path.basename(p) for p in removed) == sorted(mine)
    assert sorted(os.listdir(tmp_path)) == sorted(others)


def test_optimizer_states_are_named_arrays_not_a_pickle(tmp_path):
    prefix = str(tmp_path / "model")
    states = {"conv0_weight@0": mx.nd.array(np.arange(6).reshape(2, 3)),
              "fc_bias@0": mx.nd.ones(5)}
    path = save_optimizer_states(prefix, 1, states)
    assert path == states_path(prefix, 1)
    assert set(mx.nd.load(path)) == set(states)  # a plain mx.nd.save file
    loaded = load_optimizer_states(prefix, 1)
    assert sorted(loaded) == sorted(states)
    assert all(np.array_equal(loaded[k].asnumpy(), states[k].asnumpy()) for k in states)
    save_optimizer_states(prefix, 2, {})  # SGD without momentum has no buffers
    assert load_optimizer_states(prefix, 2) == {}
    with pytest.raises(CheckpointError, match="states file not found: " + states_path(prefix, 5)):
        load_optimizer_states(prefix, 5)


def test_truncated_states_name_the_file(tmp_path):
    # Issue #13.8: a truncated .states gave an UnpicklingError.
    prefix = str(tmp_path / "model")
    path = save_optimizer_states(prefix, 1, {"w@0": mx.nd.ones(1000)})
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read optimizer states .*model-0001.states "
                                              r"\(truncated or corrupt"):
        load_optimizer_states(prefix, 1)


def test_old_pickled_states_load_only_when_asked(tmp_path):
    import pickle

    prefix = str(tmp_path / "model")
    with open(states_path(prefix, 1), "wb") as f:
        pickle.dump({0: mx.nd.ones(3), 1: None}, f)
    with pytest.raises(CheckpointError, match="old pickled format.*--legacy-states"):
        load_optimizer_states(prefix, 1)
    states = load_optimizer_states(prefix, 1, allow_pickle=True)
    assert sorted(states) == [0, 1] and states[1] is None
    with open(states_path(prefix, 2), "wb") as f:
        f.write(pickle.dumps({0: mx.nd.ones(3)})[:20])
    with pytest.raises(CheckpointError, match="model-0002.states .truncated or corrupt pickle"):
        load_optimizer_states(prefix, 2, allow_pickle=True)


def test_unexpected_parameters_allowed_are_named_in_a_warning(caplog):
    args, aux = random_params(small_net())
    args["rfcn_cls_weight"] = mx.nd.ones((2, 2))
    with pytest.raises(CheckpointError, match="unexpected arg:rfcn_cls_weight"):
        check_params(small_net(), args, aux, INPUTS, source="x.params")
    with caplog.at_level("WARNING"):
        found = check_params(small_net(), args, aux, INPUTS, allow_extra=True,
                             source="x.params")
    assert found.unexpected == ["arg:rfcn_cls_weight"]
    assert "x.params: 1 parameter(s) that this network does not use" in caplog.text
    assert "arg:rfcn_cls_weight (2, 2)" in caplog.text


def test_check_names_names_every_missing_and_unexpected_parameter(caplog):
    from accel.utils.checkpoint import check_names

    net = small_net()
    args, aux = random_params(net)
    assert check_names(net, args, aux, ("data",), "run-0001.params") == []
    extra = {**args, "rfcn_a": mx.nd.ones(1), "rfcn_b": mx.nd.ones(1)}
    with pytest.raises(CheckpointError, match=r"run-0001.params does not fit this network: "
                                              r"2 unexpected: arg:rfcn_a, arg:rfcn_b"):
        check_names(net, extra, aux, ("data",), "run-0001.params")
    with caplog.at_level("WARNING"):
        assert check_names(net, extra, aux, ("data",), "x", allow_extra=True) == \
            ["arg:rfcn_a", "arg:rfcn_b"]
    assert "x: 2 parameter(s) that this network does not use (ignored): arg:rfcn_a" in caplog.text
    del args["fc_bias"]
    with pytest.raises(CheckpointError, match="1 missing: arg:fc_bias"):
        check_names(net, args, aux, ("data",), allow_extra=True)
