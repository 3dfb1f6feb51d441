"""MXNet ``.params`` files (what ``mx.nd.save`` writes) read and written with NumPy alone.

The format, as MXNet 1.9.1 reads it (src/ndarray/ndarray.cc, NDArray::Load):

    file    = uint64 0x112, uint64 0, uint64 n, n records, uint64 m, m names (m is 0 or n)
    name    = uint64 length, UTF-8 bytes
    record  = uint32 magic, then by magic:
      0xF993FAC9 (V2) / 0xF993FACA (V3, saved with numpy shape semantics):
                int32 storage type (0 dense, 1 row_sparse, 2 csr), [storage shape if sparse],
                shape, context (int32 dev_type, int32 dev_id), int32 dtype flag,
                [per aux array: int32 type, shape if sparse], data, [aux data if sparse]
      0xF993FAC8 (V1): shape, context, dtype flag, data
      other (legacy): the magic is ndim, then ndim uint32 dims, context, dtype flag, data
    shape   = int32 ndim, ndim int64 dims

A V2 record with ndim 0 is an uninitialised NDArray and ends after its shape (MXNet then
cannot give it to Python: a 0-d array saved without numpy shape semantics is unreadable by
MXNet itself); in V3, ndim -1 or a dim of -1 means the same. Only dense arrays are read.
MXNet writes host byte order and runs on little-endian hosts only, so the file is read as
little-endian (explicit '<' dtypes: a big-endian host would still read it correctly).

The file is memory-mapped and each array copied out once with numpy.frombuffer; every length
is checked against the bytes left before anything is allocated, so a corrupt or foreign
file is a ParamsFormatError naming the file and the byte offset (or array key), never a
struct.error or a huge allocation. The file must not be truncated in place while it is
read (accel.utils.checkpoint writes by atomic rename, so its files never are).
"""
import math
import mmap
import os
import struct
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

import numpy as np

__all__ = ["ParamsFormatError", "read_arrays", "read_params", "write_params"]

LIST_MAGIC = 0x112
V1_MAGIC, V2_MAGIC, V3_MAGIC = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
CPU_CONTEXT = (1, 0)  # Context::kCPU, dev_id 0: what mx.nd.save writes for cpu(0)

# mshadow's TypeFlag -> NumPy dtype, for the flags MXNet 1.9.1 can load
# (MSHADOW_TYPE_SWITCH_WITH_BOOL); each little-endian.
DTYPES = {0: np.dtype("<f4"), 1: np.dtype("<f8"), 2: np.dtype("<f2"), 3: np.dtype("u1"),
          4: np.dtype("<i4"), 5: np.dtype("i1"), 6: np.dtype("<i8"), 7: np.dtype("?")}
BFLOAT16 = 12  # read as float32: NumPy has no bfloat16, and the widening is exact
# In mshadow's enum, but MXNet 1.x fails on them ("Unknown type enum").
UNLOADABLE = {8: "int16", 9: "uint16", 10: "uint32", 11: "uint64"}
FLAGS = {np.dtype(dt.type): flag for flag, dt in DTYPES.items()}  # native dtype -> flag
STORAGE = {0: "default", 1: "row_sparse", 2: "csr"}
NUM_AUX = {0: 0, 1: 1, 2: 2}  # aux arrays of each storage type (indices; csr: indptr, indices)
MAX_LEGACY_NDIM = 32  # a legacy record's magic is its ndim; larger means not a record


class ParamsFormatError(ValueError):
    """A file is not a readable mx.nd.save file (truncated, corrupt, foreign, unsupported)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason  # the message without the file name


class _Record(NamedTuple):
    offset: int               # of the data
    shape: Tuple[int, ...]
    flag: int                 # dtype flag
    storage: int              # 0 dense


class _Reader:
    """A cursor over the file's bytes whose every read is checked against the bytes left."""

    def __init__(self, buf, path: str):
        self.buf, self.path, self.size, self.pos = buf, path, len(buf), 0

    def fail(self, what: str, at: Optional[int] = None) -> ParamsFormatError:
        return ParamsFormatError(self.path, f"at byte {self.pos if at is None else at}: {what}")

    def skip(self, nbytes: int, what: str) -> int:
        """Advance over `nbytes`; returns where they start."""
        left = self.size - self.pos
        if nbytes > left:
            raise self.fail(f"truncated or corrupt: expected {what} ({nbytes} bytes), "
                            f"only {left} left (file size {self.size})")
        start, self.pos = self.pos, self.pos + nbytes
        return start

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack_from(fmt, self.buf, self.skip(struct.calcsize(fmt), what))

    def shape(self, what: str) -> Tuple[int, ...]:
        """A TShape: int32 ndim, ndim int64 dims; ndim -1 (unknown) is returned as (-1,)."""
        (ndim,) = self.unpack("<i", f"the ndim of {what}")
        if ndim < -1:
            raise self.fail(f"ndim {ndim} of {what}; expected >= 0", self.pos - 4)
        if ndim == -1:
            return (-1,)  # unknown shape (V3's uninitialised array)
        return self.unpack(f"<{ndim}q", f"the {ndim} dims of {what}")


def _itemsize(reader: _Reader, flag: int, what: str) -> int:
    if flag in DTYPES:
        return DTYPES[flag].itemsize
    if flag == BFLOAT16:
        return 2
    known = f" ({UNLOADABLE[flag]}, which MXNet 1.x cannot load)" if flag in UNLOADABLE else ""
    raise reader.fail(f"dtype flag {flag}{known} of {what}; expected one of MXNet's "
                      f"{sorted(DTYPES) + [BFLOAT16]} (float32, float64, float16, uint8, int32, "
                      f"int8, int64, bool, bfloat16)", reader.pos - 4)


def _size(reader: _Reader, shape: Tuple[int, ...], what: str, at: int) -> int:
    if any(d < 0 for d in shape):
        raise reader.fail(f"negative dimension in shape {shape} of {what}", at)
    return math.prod(shape)


def _record(reader: _Reader, index: int) -> _Record:
    """Parse the record of array #`index` (its data is skipped, not read)."""
    what = f"array #{index}"
    start = reader.pos
    (magic,) = reader.unpack("<I", f"the magic number of {what}")
    storage = 0
    if magic in (V2_MAGIC, V3_MAGIC):
        (storage,) = reader.unpack("<i", f"the storage type of {what}")
        if storage not in STORAGE:
            raise reader.fail(f"storage type {storage} of {what}; expected 0 (dense), "
                              f"1 (row_sparse) or 2 (csr)", reader.pos - 4)
        storage_shape = reader.shape(f"{what}'s storage") if NUM_AUX[storage] else ()
        at = reader.pos
        shape = reader.shape(what)
        none = (-1 in shape) if magic == V3_MAGIC else (shape == (-1,) or not shape)
    elif magic == V1_MAGIC:
        at = reader.pos
        shape = reader.shape(what)
        none = -1 in shape
    elif magic <= MAX_LEGACY_NDIM:  # legacy: no magic, uint32 ndim and dims
        at = start
        shape = reader.unpack(f"<{magic}I", f"the {magic} dims of {what} (legacy record)")
        none = False
    else:
        raise reader.fail(f"unknown magic 0x{magic:08X} of {what}; expected an NDArray record "
                          f"(0x{V2_MAGIC:08X}, 0x{V3_MAGIC:08X}, 0x{V1_MAGIC:08X} or a legacy "
                          f"ndim <= {MAX_LEGACY_NDIM})", start)
    if none:
        raise reader.fail(f"{what} is an uninitialised NDArray (shape {shape}; a 0-d array "
                          f"saved without numpy shape semantics reads so, and MXNet cannot "
                          f"load it either); expected an array with data", at)
    count = _size(reader, shape, what, at)
    reader.skip(8, f"the context of {what}")
    (flag,) = reader.unpack("<i", f"the dtype flag of {what}")
    itemsize = _itemsize(reader, flag, what)
    if NUM_AUX[storage]:
        # Sparse: skip it whole, so that the error can name its key (names come last).
        aux = [(reader.unpack("<i", f"an aux type of {what}")[0], reader.pos,
                reader.shape(f"an aux array of {what}")) for _ in range(NUM_AUX[storage])]
        reader.skip(_size(reader, storage_shape, what, at) * itemsize, f"the values of {what}")
        for aux_flag, aux_at, aux_shape in aux:
            reader.skip(_size(reader, aux_shape, what, aux_at)
                        * _itemsize(reader, aux_flag, what), f"an aux array of {what}")
        return _Record(-1, shape, flag, storage)
    offset = reader.skip(count * itemsize, f"the data of {what} (shape {shape}, "
                                           f"dtype flag {flag})")
    return _Record(offset, shape, flag, storage)


def _names(reader: _Reader, count: int) -> List[str]:
    (num,) = reader.unpack("<Q", "the number of names")
    if num not in (0, count):
        raise reader.fail(f"{num} names for {count} arrays; expected 0 or {count}", reader.pos - 8)
    names = []
    for i in range(num):
        (length,) = reader.unpack("<Q", f"the length of name #{i}")
        raw = reader.buf[reader.skip(length, f"name #{i}"):reader.pos]
        try:
            names.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise reader.fail(f"name #{i} is not UTF-8: {raw[:40]!r}", reader.pos - length) \
                from None
    return names


def _array(buf, record: _Record) -> np.ndarray:
    """Copy one array out of the buffer (once), as a native-order NumPy array."""
    if record.flag == BFLOAT16:  # the high half of a float32
        wide = np.frombuffer(buf, "<u2", math.prod(record.shape), record.offset).astype("=u4")
        wide <<= 16
        return wide.view(np.float32).reshape(record.shape)
    dtype = DTYPES[record.flag]
    count = math.prod(record.shape)
    if count == 0:  # frombuffer rejects count 0 at some offsets
        return np.empty(record.shape, dtype.newbyteorder("="))
    data = np.frombuffer(buf, dtype, count, record.offset)
    return data.astype(dtype.newbyteorder("="), copy=True).reshape(record.shape)


def read_arrays(path: str) -> Tuple[List[np.ndarray], List[str]]:
    """Every array of an mx.nd.save file in file order, and their names ([] for a list).

    Raises ParamsFormatError for a file that is not a readable mx.nd.save file (OSError if
    it cannot be opened). bfloat16 arrays come back as float32 (exact).
    """
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise ParamsFormatError(path, "the file is empty; expected the mx.nd.save header "
                                          f"(uint64 0x{LIST_MAGIC:X})")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            reader = _Reader(buf, path)
            magic = struct.pack("<Q", LIST_MAGIC)
            if buf[:8] != magic[:len(buf)]:  # a foreign file, however short
                raise reader.fail(f"file starts with {buf[:8]!r}; expected the mx.nd.save "
                                  f"header {magic!r}: not an mx.nd.save file")
            reader.skip(16, "the mx.nd.save header (uint64 0x112, uint64 0)")
            (count,) = reader.unpack("<Q", "the number of arrays")
            left = reader.size - reader.pos
            if count > left // 4:  # a record takes 4 bytes at least: fail before the loop
                raise reader.fail(f"truncated or corrupt: expected {count} arrays (at least "
                                  f"{4 * count} bytes), only {left} left (file size "
                                  f"{reader.size})")
            records = [_record(reader, i) for i in range(count)]
            names = _names(reader, count)
            for i, record in enumerate(records):
                if record.storage:
                    key = repr(names[i]) if names else f"#{i}"
                    raise ParamsFormatError(path, f"array {key} is stored as "
                                                  f"{STORAGE[record.storage]}; only dense "
                                                  f"(default storage) arrays are supported")
            return [_array(buf, r) for r in records], names


def read_params(path: str) -> Dict[str, np.ndarray]:
    """The arrays of an mx.nd.save file of a dict, by key as stored (e.g. 'arg:conv1_weight').

    A file saved from a non-empty list (no names) is a ParamsFormatError: callers address
    parameters by name (read_arrays gives such a file's arrays in order). mx.nd.save of an
    empty dict writes an empty list; it reads as {}.
    """
    arrays, names = read_arrays(path)
    if arrays and not names:
        raise ParamsFormatError(path, f"holds an unnamed list of {len(arrays)} arrays "
                                      f"(mx.nd.save of a list); expected named arrays (a dict)")
    return dict(zip(names, arrays))


def _header(shape: Tuple[int, ...], flag: int, np_shape: bool) -> bytes:
    return struct.pack(f"<Iii{len(shape)}q2ii", V3_MAGIC if np_shape else V2_MAGIC, 0,
                       len(shape), *shape, *CPU_CONTEXT, flag)


def write_params(path: str, arrays: Mapping[str, np.ndarray], np_shape: bool = False) -> None:
    """Write `arrays` as mx.nd.save writes a dict of cpu(0) NDArrays (V2 records: the same
    bytes); np_shape=True writes V3 records, for mx.nd.load under numpy shape semantics.

    V2 cannot hold a 0-d array (MXNet reads ndim 0 as uninitialised): that is a ValueError,
    as is a dtype MXNet does not store. Not atomic: see accel.utils.checkpoint.atomic_path.
    """
    items = []
    for key, value in arrays.items():
        if not isinstance(key, str):
            raise ValueError(f"write_params {path}: key {key!r} is a {type(key).__name__}; "
                             f"expected str")
        array = np.asarray(value)
        flag = FLAGS.get(np.dtype(array.dtype.type))  # any byte order
        if flag is None:
            raise ValueError(f"write_params {path}: array '{key}' has dtype {array.dtype}; "
                             f"expected one MXNet stores: float32, float64, float16, uint8, "
                             f"int32, int8, int64, bool")
        if array.ndim == 0 and not np_shape:
            raise ValueError(f"write_params {path}: array '{key}' is 0-d, which V2 records "
                             f"cannot hold (mx.nd.load fails on it); reshape it to (1,) or "
                             f"write with np_shape=True")
        items.append((key.encode("utf-8"), flag, array))
    with open(path, "wb") as f:
        f.write(struct.pack("<QQQ", LIST_MAGIC, 0, len(items)))
        for _, flag, array in items:
            f.write(_header(array.shape, flag, np_shape))
            data = np.ascontiguousarray(array, dtype=DTYPES[flag])
            f.write(data.reshape(-1).view(np.uint8).data)
        f.write(struct.pack("<Q", len(items)))
        for key, _, _ in items:
            f.write(struct.pack("<Q", len(key)) + key)
