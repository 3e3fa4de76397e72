"""Giving freed C heap back to the operating system.

glibc's malloc keeps memory that was freed inside its heaps (one per thread group, "arenas")
for later allocations; resident memory then follows the highest use ever, not the live data.
`return_freed_heap()` asks it to release every whole free page (malloc_trim(0): the top of each
arena is trimmed and free pages inside are handed back with MADV_DONTNEED). Callers: the pack
loader (a tokenizer.json parse leaves ~25 MB free) and the serving engine when it goes idle (a
burst of 64 clients leaves per-thread arenas full of freed request state). Nothing happens
where there is no glibc."""

from __future__ import annotations

import ctypes
import ctypes.util

_trim = None


def return_freed_heap() -> bool:
    """malloc_trim(0); True if it ran and released memory."""
    global _trim
    if _trim is None:
        try:
            _trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
            _trim.argtypes, _trim.restype = [ctypes.c_size_t], ctypes.c_int
        except (OSError, AttributeError):
            _trim = False
    return bool(_trim and _trim(0))
