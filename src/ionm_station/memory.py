"""Keep a long case's memory flat on the C allocator's side.

The processing, acquisition and recorder threads each allocate and free numpy blocks of varying
size; glibc raises its mmap threshold after every large free (up to 32 MB), so later blocks come
from per-thread heaps that can fragment and are not given back. Fixing the threshold keeps large
blocks in mmap (given back on free), and a periodic ``malloc_trim`` returns what the heaps no
longer use. (The 167 MB growth of an early 8 h soak that led to this was most likely chains
kept alive by the soak's own fault injector — see ``scripts/soak`` and docs/architecture.md.)

Both are glibc-only; elsewhere these functions do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: Blocks at least this large (bytes) are always mmapped, never carved from a heap.
MMAP_THRESHOLD_BYTES = 256 * 1024
#: glibc's mallopt parameter number for the mmap threshold.
_M_MMAP_THRESHOLD = -3


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "mallopt") else None


_LIBC = _libc()


def fix_mmap_threshold() -> bool:
    """Stop glibc from raising its mmap threshold (call once, early); True if applied."""
    return _LIBC is not None and bool(_LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def heap_mb() -> dict[str, float] | None:
    """glibc's heap figures (MB): ``in_use`` (allocated from the heaps), ``free`` (held by the
    heaps, not in use), ``mmapped`` (large blocks); None without glibc 2.33+."""
    if _LIBC is None or not hasattr(_LIBC, "mallinfo2"):
        return None
    _LIBC.mallinfo2.restype = _MallInfo2
    m = _LIBC.mallinfo2()
    return {"in_use": round(m.uordblks / 2**20, 1), "free": round(m.fordblks / 2**20, 1),
            "mmapped": round(m.hblkhd / 2**20, 1)}


def trim() -> None:
    """Give heap memory no longer in use back to the system."""
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)
