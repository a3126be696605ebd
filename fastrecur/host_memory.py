"""Keep freed host memory in the process instead of handing it back to the OS (glibc only).

PyTorch takes CPU tensors from ``malloc``. By default glibc serves blocks above a (dynamic, at
most 32 MiB) threshold with a fresh ``mmap`` and unmaps them when freed, and trims the heap's free
top back to the OS: every next tensor of that size then faults its pages in again, and the kernel
zeroes them. Evaluating long graphs on the CPU allocates several ``[B, H, L, L]`` score tensors per
layer and iteration, so that was most of its time: evaluating the shipped model on 32 graphs at n = 64
(333 tokens) spent 15.1 s in the kernel beside 11.6 s of user time (13.5 s wall on 2 cores), and
0.1 s (5.1 s wall) once freed memory was kept and each score tensor held ≤ 32 MiB
(docs/learning.md §4, ``bench/test_cpu_sweep.py``). The evaluator keeps
its score tensors within that size on the CPU (``fastrecur.evaluate.MAX_SCORE_BYTES``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 1 << 30  # free heap kept at the top before trimming: 1 GiB

_applied = False


def keep_freed_host_memory() -> bool:
    """Ask glibc to serve blocks up to 32 MiB from its heap and to keep up to 1 GiB of free heap;
    returns whether it applied (False on other C libraries and platforms, where nothing changes).
    Process-wide, so the command line calls it once at start; idempotent."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; setting either turns off glibc's dynamic thresholds.
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
