"""Which GPU architectures a CUDA library carries code for: the cubins and PTX of its
`.nv_fatbin` ELF section (accel.utils.gpu reads MXNet's libmxnet.so with it)."""
import mmap
import struct
from typing import Dict, Optional, Tuple

__all__ = ["Arch", "fatbin_architectures"]

Arch = Tuple[int, int]


def _elf_section(path: str, wanted: str) -> Optional[Tuple[int, int]]:
    """(file offset, size) of section `wanted` of a 64-bit little-endian ELF file, or None."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            raise ValueError(f"{path}: not a 64-bit little-endian ELF file")
        shoff, = struct.unpack_from("<Q", head, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", head, 0x3A)
        f.seek(shoff)
        table = f.read(shentsize * shnum)
        sections = [struct.unpack_from("<IIQQQQ", table, i * shentsize) for i in range(shnum)]
        _, _, _, _, str_off, str_size = sections[shstrndx]
        f.seek(str_off)
        names = f.read(str_size)
    for name_off, _, _, _, offset, size in sections:
        if names[name_off:names.index(b"\0", name_off)].decode() == wanted:
            return offset, size
    return None


_FATBIN_MAGIC = 0xBA55ED50
_FATBIN_KINDS = {1: "ptx", 2: "cubin"}


def fatbin_architectures(path: str) -> Dict[str, Tuple[Arch, ...]]:
    """{'cubin': archs, 'ptx': archs} embedded in a library's `.nv_fatbin` section
    (empty tuples for a library without CUDA code)."""
    found: Dict[str, set] = {"cubin": set(), "ptx": set()}
    section = _elf_section(path, ".nv_fatbin")
    if section is not None and section[1] > 0:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            pos, end = section[0], section[0] + section[1]
            while pos + 16 <= end:
                magic, _, header, size = struct.unpack_from("<IHHQ", m, pos)
                if magic != _FATBIN_MAGIC:
                    pos += 8  # containers are 8-byte aligned, padding between them
                    continue
                entry, stop = pos + header, pos + header + size
                while entry + 32 <= stop:
                    kind, _, entry_header, payload = struct.unpack_from("<HHIQ", m, entry)
                    sm, = struct.unpack_from("<I", m, entry + 28)
                    if kind in _FATBIN_KINDS:
                        found[_FATBIN_KINDS[kind]].add((sm // 10, sm % 10))
                    entry += entry_header + payload
                pos = stop
    return {k: tuple(sorted(v)) for k, v in found.items()}
