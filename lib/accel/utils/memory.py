"""How much memory this machine can still give a run (for refusals before allocating)."""
import os
from typing import Optional

__all__ = ["available_memory", "format_bytes"]


def available_memory() -> Optional[int]:
    """Bytes available to a new allocation: MemAvailable of /proc/meminfo (Linux), else the
    free physical pages (os.sysconf); None when neither can be read."""
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
