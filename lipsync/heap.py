"""glibc's allocator, tuned for inference: freed memory reused, or given back when asked.

Elsewhere (macOS, musl) both calls do nothing.
"""

import ctypes
import ctypes.util


def _load_libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _load_libc()
GLIBC = _LIBC is not None
# mallopt's parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8


def keep_freed_memory():
    """Let freed memory be reused instead of returned to the kernel at once; True if applied.

    PyTorch frees each layer's activations and allocates them again for the next batch. By
    default glibc serves blocks over 128 KB (up to 32 MB, as it adapts) with fresh mappings, and
    shrinks each worker thread's own heap when its top is freed, so every batch faulted its
    memory in again, a zeroed 4 KB page at a time: 500,000 faults and 1-2 CPU-seconds in the
    kernel per 10 s of 720p video on two cores. With blocks up to 32 MB taken from one heap for
    all threads, and its top kept up to 256 MB, a third of those faults remain (mostly start-up).
    Process-wide and lasting; threads that already have a heap of their own keep it.
    """
    if _LIBC is None:
        return False
    for parameter, value in ((_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 256 << 20)):
        _LIBC.mallopt(parameter, value)
    return True


def trim_heap():
    """Give freed heap memory back to the system.

    Detection frees hundreds of megabytes of activations of varying sizes per block, from
    several threads; glibc keeps such memory in its heaps, so without this the process grows
    by gigabytes over a long 1080p video although nothing is held.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
