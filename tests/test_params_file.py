"""params_file: mx.nd.save files read and written with NumPy alone, checked against MXNet's own
mx.nd.save / mx.nd.load on the same files, bit for bit."""
import os
import pickle
import re
import struct
import subprocess
import sys
import textwrap
import tracemalloc

import cv2
import mxnet as mx
import numpy as np
import pytest

from accel.utils.checkpoint import load_checkpoint, save_checkpoint
from accel.utils.params_file import (ParamsFormatError, read_arrays, read_params,
                                     write_params)

DTYPES = [np.float32, np.float16, np.float64, np.uint8, np.int32, np.int64, np.int8, np.bool_]
V1, V2, V3 = 0xF993FAC8, 0xF993FAC9, 0xF993FACA


def sample(dtype, shape, rng):
    """Random values over the dtype's whole range (floats with NaN, inf and -0.0)."""
    if dtype == np.bool_:
        return rng.random(shape) > 0.5
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    values = rng.standard_normal(shape).astype(dtype)
    values.reshape(-1)[:3] = [np.nan, -np.inf, -0.0][:values.size]
    return values


def as_numpy(loaded):
    return {k: v.asnumpy() for k, v in loaded.items()}


def assert_identical(ours, want):
    """Same keys in the same order, and per array the same dtype, shape and bytes."""
    assert list(ours) == list(want)
    for key, value in want.items():
        assert (ours[key].dtype, ours[key].shape) == (value.dtype, value.shape), key
        assert np.array_equal(bits(ours[key]), bits(value)), key


def bits(array):
    """The bytes of a contiguous array as a uint8 view (NaN payloads compare too)."""
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8)


def params_bytes(records, names):
    """An mx.nd.save file from raw records: header, count, records, names."""
    return (struct.pack("<QQQ", 0x112, 0, len(records)) + b"".join(records)
            + struct.pack("<Q", len(names))
            + b"".join(struct.pack("<Q", len(n)) + n.encode() for n in names))


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def one_line_error(path):
    with pytest.raises(ParamsFormatError) as err:
        read_params(path)
    message = str(err.value)
    assert message.startswith(str(path) + ": ") and "\n" not in message
    return message


@pytest.fixture
def small_file(tmp_path):
    """mx.nd.save of {'arg:w': float32 (2, 3)}: header 0-24, record header 24-64 (magic,
    storage, ndim, 2 int64 dims, context, dtype), data 64-88, names 88-109."""
    path = str(tmp_path / "small.params")
    mx.nd.save(path, {"arg:w": mx.nd.array(np.arange(6).reshape(2, 3))})
    assert os.path.getsize(path) == 109
    return path


def test_files_saved_by_mxnet_read_identically(tmp_path):
    rng = np.random.default_rng(0)
    shapes = [(7,), (2, 3, 4, 5), (0,), (2, 0, 3)]
    arrays = {f"{'arg' if i % 2 else 'aux'}:{np.dtype(d).name}_{len(s)}d_{i}": sample(d, s, rng)
              for i, (d, s) in enumerate((d, s) for d in DTYPES for s in shapes)}
    path = str(tmp_path / "dtypes.params")
    mx.nd.save(path, {k: mx.nd.array(v, dtype=v.dtype) for k, v in arrays.items()})
    loaded = as_numpy(mx.nd.load(path))
    assert_identical(loaded, arrays)  # what MXNet stored is what we gave it
    assert_identical(read_params(path), loaded)


def test_numpy_shape_semantics_files_v3_with_0d_and_empty_arrays(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {"scalar": np.float32(2.5), "count": np.int64(-7), "empty": np.zeros(0, np.int32),
              "arg:w": sample(np.float16, (3, 1, 2, 2), rng), "flag": np.array([True, False])}
    path = str(tmp_path / "v3.params")
    with mx.util.np_shape(True):  # what mx.npx.set_np() turns on in MXNet 1.9.1
        mx.nd.save(path, {k: mx.nd.array(v, dtype=v.dtype) for k, v in arrays.items()})
        loaded = as_numpy(mx.nd.load(path))
    assert open(path, "rb").read()[24:28] == struct.pack("<I", V3)
    assert loaded["scalar"].shape == () and loaded["empty"].shape == (0,)
    assert_identical(read_params(path), loaded)


def test_0d_array_saved_without_numpy_shape_is_unreadable_by_both(tmp_path):
    """MXNet 1.9.1 saves it as a V2 record of ndim 0 with data, then reads ndim 0 as
    'uninitialised' and fails on the following bytes: ours names the array instead."""
    path = str(tmp_path / "scalar.params")
    mx.nd.save(path, {"s": mx.nd.array(np.float32(3)), "t": mx.nd.ones(2)})
    with pytest.raises(mx.base.MXNetError):
        mx.nd.load(path)
    assert "array #0 is an uninitialised NDArray" in one_line_error(path)


@pytest.fixture(scope="module")
def real_checkpoint(tmp_path_factory):
    """A checkpoint written by save_checkpoint with every parameter of Accel-18's keyframe
    graph (DeepLab-101, 171 MB) at its real shape, filled with random bits (NaN payloads
    included)."""
    from dff_deeplab.symbol import AccelNetwork

    sym = AccelNetwork("18", 11).key_test()
    arg_shapes, _, aux_shapes = sym.infer_shape_partial(data=(1, 3, 64, 64))
    rng = np.random.default_rng(2)

    def fill(names, shapes):
        return {n: np.frombuffer(rng.bytes(4 * int(np.prod(s))), np.float32).reshape(s)
                for n, s in zip(names, shapes) if n not in ("data", "data_key", "feat_key")}

    args = fill(sym.list_arguments(), arg_shapes)
    aux = fill(sym.list_auxiliary_states(), aux_shapes)
    prefix = str(tmp_path_factory.mktemp("ckpt") / "accel-18")
    return save_checkpoint(prefix, 1, args, aux), args, aux


def test_a_real_checkpoint_reads_identically(real_checkpoint):
    path, args, aux = real_checkpoint
    ours = read_params(path)
    assert "arg:res5c_branch2c_weight" in ours and "aux:bn_conv1_moving_var" in ours
    assert_identical(ours, as_numpy(mx.nd.load(path)))
    for name in ("conv1_weight", "res5c_branch2c_weight", "fc6_bias"):
        assert np.array_equal(bits(ours["arg:" + name]), bits(args[name]))
    assert np.array_equal(bits(ours["aux:bn_conv1_moving_var"]), bits(aux["bn_conv1_moving_var"]))


def test_write_params_is_byte_identical_to_mx_nd_save(tmp_path):
    rng = np.random.default_rng(3)
    arrays = {f"arg:{np.dtype(d).name}": sample(d, (2, 3, 1, 4), rng) for d in DTYPES}
    arrays.update({"aux:empty": np.zeros((0,), np.float32), "aux:big_endian":
                   np.arange(5, dtype=">i4"), "aux:strided": np.arange(12.0).reshape(3, 4).T})
    ours, theirs = str(tmp_path / "ours.params"), str(tmp_path / "mx.params")
    write_params(ours, arrays)
    mx.nd.save(theirs, {k: mx.nd.array(v, dtype=v.dtype.newbyteorder("="))
                        for k, v in arrays.items()})
    assert open(ours, "rb").read() == open(theirs, "rb").read()
    loaded = as_numpy(mx.nd.load(ours))
    assert_identical(loaded, {k: v.astype(v.dtype.newbyteorder("=")) for k, v in arrays.items()})
    assert_identical(read_params(ours), loaded)


def test_write_params_np_shape_writes_v3_for_0d_arrays(tmp_path):
    arrays = {"scalar": np.float64(0.1), "vector": np.arange(3, dtype=np.int8)}
    path = str(tmp_path / "v3.params")
    with pytest.raises(ValueError, match="'scalar' is 0-d.*np_shape=True"):
        write_params(path, arrays)
    write_params(path, arrays, np_shape=True)
    with mx.util.np_shape(True):
        loaded = as_numpy(mx.nd.load(path))
    assert_identical(loaded, {k: np.asarray(v) for k, v in arrays.items()})
    with pytest.raises(ValueError, match="'c' has dtype complex64; expected one MXNet stores"):
        write_params(path, {"c": np.zeros(2, np.complex64)})


def test_legacy_records_read_as_mxnet_reads_them(tmp_path):
    """Before V2: no magic (the first uint32 is ndim, then uint32 dims) and V1 (int64 dims)."""
    values = np.array([[1, -2, 3]], np.int64)
    legacy = struct.pack("<3I2ii", 2, 1, 3, 1, 0, 6) + values.tobytes()
    v1 = struct.pack("<Ii2q2ii", V1, 2, 3, 1, 1, 0, 0) + np.arange(3, dtype="<f4").tobytes()
    path = write(tmp_path / "legacy.params", params_bytes([legacy, v1], ["arg:a", "arg:b"]))
    loaded = as_numpy(mx.nd.load(path))  # MXNet 1.9.1 still reads both
    assert_identical(loaded, {"arg:a": values, "arg:b": np.arange(3, dtype=np.float32)[:, None]})
    assert_identical(read_params(path), loaded)


def test_bfloat16_reads_as_exact_float32(tmp_path):
    bits = np.array([0x3FC0, 0xC020, 0x7F80], "<u2")  # 1.5, -2.5, inf
    record = struct.pack("<Iiiq2ii", V2, 0, 1, 3, 1, 0, 12) + bits.tobytes()
    path = write(tmp_path / "bf16.params", params_bytes([record], ["w"]))
    ours = read_params(path)["w"]
    assert ours.dtype == np.float32 and ours.tolist() == [1.5, -2.5, np.inf]
    np.testing.assert_array_equal(ours, mx.nd.load(path)["w"].astype("float32").asnumpy())


@pytest.mark.parametrize("flag,expected", [(8, "dtype flag 8 \\(int16, which MXNet 1.x "
                                                "cannot load\\)"), (99, "dtype flag 99 ")])
def test_dtypes_mxnet_cannot_load_are_errors(tmp_path, flag, expected):
    record = struct.pack("<Iiiq2ii", V2, 0, 1, 2, 1, 0, flag) + bytes(16)
    path = write(tmp_path / "odd.params", params_bytes([record], ["w"]))
    with pytest.raises(mx.base.MXNetError):
        mx.nd.load(path)
    message = one_line_error(path)
    assert re.search("at byte 52: " + expected, message)


def test_sparse_arrays_are_errors_naming_the_key(tmp_path):
    path = str(tmp_path / "sparse.params")
    csr = mx.nd.sparse.csr_matrix(np.eye(3, dtype=np.float32))
    rsp = mx.nd.sparse.row_sparse_array(np.diag([1.0, 0.0, 2.0]).astype(np.float32))
    for key, value in (("arg:csr", csr), ("aux:rows", rsp)):
        mx.nd.save(path, {"arg:dense": mx.nd.ones(2), key: value, "arg:after": mx.nd.ones(1)})
        assert mx.nd.load(path)[key].stype == value.stype  # a valid file
        assert f"array '{key}' is stored as {value.stype}; only dense" in one_line_error(path)


def test_unnamed_lists(tmp_path):
    path = str(tmp_path / "list.params")
    mx.nd.save(path, [mx.nd.ones(2), mx.nd.array([[7]], dtype=np.uint8)])
    assert "holds an unnamed list of 2 arrays" in one_line_error(path)
    arrays, names = read_arrays(path)
    assert names == [] and len(arrays) == 2
    for ours, theirs in zip(arrays, mx.nd.load(path)):
        assert_identical({"a": ours}, {"a": theirs.asnumpy()})
    mx.nd.save(path, {})  # an empty dict is saved as an empty list
    assert read_params(path) == {} and mx.nd.load(path) == []


@pytest.mark.parametrize("cut", [3, 8, 16, 20, 24, 30, 40, 63, 64, 80, 88, 92, 100, 104, 108])
def test_truncated_files_name_the_offset(small_file, cut):
    """Cut in the header (3-24), the record header (24-64), the data (64-88), the names."""
    data = open(small_file, "rb").read()
    write(small_file, data[:cut])
    with pytest.raises(mx.base.MXNetError):
        mx.nd.load(small_file)
    message = one_line_error(small_file)
    assert "truncated or corrupt: expected" in message and f"(file size {cut})" in message


@pytest.mark.parametrize("kind", ["pickle", "png", "text", "short text", "empty"])
def test_foreign_files_are_format_errors(tmp_path, kind):
    content = {"pickle": pickle.dumps({"arg:w": np.ones(3)}),
               "png": cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes(),
               "text": b"arg:conv1_weight 0.1 0.2 0.3\n" * 4, "short text": b"w\n",
               "empty": b""}[kind]
    path = write(tmp_path / "foreign.params", content)
    message = one_line_error(path)
    assert ("the file is empty" if kind == "empty" else "not an mx.nd.save file") in message


@pytest.mark.parametrize("field,offset,expected", [
    ("array count", 16, "expected 1152921504606846976 arrays"),
    ("first dim", 36, f"expected the data of array #0 .* \\({2 ** 60 * 3 * 4} bytes\\)"),
    ("name length", 96, "expected name #0 \\(1152921504606846976 bytes\\)")])
def test_corrupt_lengths_fail_without_allocating(small_file, field, offset, expected):
    data = bytearray(open(small_file, "rb").read())
    data[offset:offset + 8] = struct.pack("<q", 2 ** 60)
    write(small_file, bytes(data))
    tracemalloc.start()
    try:
        message = one_line_error(small_file)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert re.search(expected, message), message
    assert peak < 1 << 20


def test_unknown_record_magic_names_the_offset(small_file):
    data = bytearray(open(small_file, "rb").read())
    data[24:28] = struct.pack("<I", 0xDEADBEEF)
    write(small_file, bytes(data))
    assert "at byte 24: unknown magic 0xDEADBEEF of array #0" in one_line_error(small_file)


def test_load_checkpoint_numpy_works_where_mxnet_cannot_be_imported(tmp_path):
    rng = np.random.default_rng(4)
    args = {"conv1_weight": sample(np.float32, (64, 3, 7, 7), rng),
            "fc6_bias": sample(np.float32, (1024,), rng)}
    aux = {"bn_conv1_moving_mean": sample(np.float32, (64,), rng)}
    prefix = str(tmp_path / "deeplab-18")
    save_checkpoint(prefix, 3, args, aux)
    out = str(tmp_path / "loaded.npz")
    script = textwrap.dedent(f"""
        import sys
        sys.modules["mxnet"] = None  # any `import mxnet` now raises ImportError
        import numpy as np
        from accel.utils.checkpoint import load_checkpoint
        args, aux = load_checkpoint({prefix!r}, 3, arg_prefix="18_", numpy=True)
        assert all(type(v) is np.ndarray for v in [*args.values(), *aux.values()])
        np.savez({out!r}, **{{"arg:" + k: v for k, v in args.items()}},
                 **{{"aux:" + k: v for k, v in aux.items()}})
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert done.returncode == 0, done.stderr
    mx_args, mx_aux = load_checkpoint(prefix, 3, arg_prefix="18_")
    with np.load(out) as loaded:
        assert_identical(dict(loaded), {**{"arg:" + k: v.asnumpy() for k, v in mx_args.items()},
                                        **{"aux:" + k: v.asnumpy() for k, v in mx_aux.items()}})
