"""How much memory this process can still get (for refusals before allocating)."""
import os
from typing import List, Optional

__all__ = ["available_memory", "format_bytes"]


def _meminfo_available() -> Optional[int]:
    """MemAvailable of /proc/meminfo (Linux), else the free physical pages."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_left() -> Optional[int]:
    """What the cgroup (v2) memory limit leaves this container: memory.max - current."""
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as f:
            return max(0, int(limit) - int(f.read().strip()))
    except (OSError, ValueError):
        return None


def _address_space_left() -> Optional[int]:
    """What an address-space limit (ulimit -v, RLIMIT_AS) leaves this process."""
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/status", encoding="ascii") as f:
            size = next(int(line.split()[1]) * 1024 for line in f
                        if line.startswith("VmSize:"))
        return max(0, soft - size)
    except (ImportError, OSError, ValueError, StopIteration):
        return None


def available_memory() -> Optional[int]:
    """Bytes this process can still allocate: the least of the machine's available memory
    (MemAvailable), its cgroup's and its address-space limit's; None when unknown."""
    limits: List[int] = [v for v in (_meminfo_available(), _cgroup_left(),
                                     _address_space_left()) if v is not None]
    return min(limits) if limits else None


def format_bytes(count: Optional[float]) -> str:
    """1536 -> '1.5 KiB', 7.3e9 -> '6.8 GiB'."""
    if count is None:
        return "unknown"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover
