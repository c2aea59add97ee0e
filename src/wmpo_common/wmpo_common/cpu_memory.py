"""Keep freed memory in the process's heap, so that PyTorch's CPU tensors reuse it (glibc only).

By default glibc serves each allocation above its mmap threshold (128 KiB, growing to 32 MiB) with
a fresh mmap and hands it back to the kernel on free. A CPU forward pass allocates and frees tens
of MB per layer, so the kernel zero-fills new pages over and over: on this project's 2-core machines
that system time was most of a conv net's time (``python bench/cpu_memory.py`` measures it).
``reuse_freed_memory`` turns glibc's mmap allocation off and raises its trim threshold, so freed
blocks stay in the heap for the next tensor. The price: the process's resident size stays near its
peak until it exits.
"""

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1  # mallopt options, <malloc.h>
M_TOP_PAD = -2
M_MMAP_MAX = -4
SETTINGS = (
    (M_MMAP_MAX, 0),  # no allocation gets its own mmap: all come from the heap, and go back to it
    (M_TRIM_THRESHOLD, 1 << 30),  # give memory back to the kernel only above 1 GiB free at the top
    (M_TOP_PAD, 1 << 28),  # grow the heap 256 MiB at a time
)


def reuse_freed_memory() -> bool:
    """Apply SETTINGS to this process's glibc malloc; True when it took all of them, False on
    another OS or C library (nothing changed) or when glibc refused one (those before it stay).
    Call it first thing in a process's main."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    return all(mallopt(option, value) == 1 for option, value in SETTINGS)
