"""Host memory while the models run on a CPU: glibc's malloc pinned so that it stays flat.

By default glibc raises its mmap threshold each time a large block is freed (up to 32 MB);
from then on the activations of every batch come from the heap, which keeps what is freed (up
to 64 MB free at the top of each arena, and the holes in between), in a layout that differs from
run to run. Measured on the `mid` set (full DNABERT-S on two cores, `benchmarks.memory_probe`),
the working memory of one and the same 60-frame run varied from 360 to 770 MB, a 10x input's
from 470 to 920 MB. Once the models are loaded, `pin_for_cpu_scoring` pins the threshold at
4 MB (activations are mapped when they come and unmapped when they go, so a batch's peak is
its live memory) and has the heap's top returned beyond 8 MB; `release_free_memory` after each
batch returns the free pages inside the heap too. Then the 60-frame run took 276-277 MB three
times out of three, the 10x run 292 MB twice, and scoring 240 frames took 3-5 % longer (40.3-41.5
s against 39.2-39.5 s). Pinned before the load instead, the loaded models held 300 MB more.
Rejected: 8 MB (276-355 MB: activations of 4-8 MB then come from the heap again), 32 MB
(415-654 MB), MALLOC_ARENA_MAX=1 (no steadier), a 1 MB threshold (30 % slower, earlier
measurement).

Only where glibc is the C library; elsewhere these do nothing.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP_THRESHOLD = 4 << 20
TRIM_THRESHOLD = 8 << 20

_libc: ctypes.CDLL | None | bool = None


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        _libc = False
        if sys.platform.startswith("linux"):
            try:
                lib = ctypes.CDLL("libc.so.6")
                if hasattr(lib, "mallopt") and hasattr(lib, "malloc_trim"):
                    _libc = lib
            except OSError:
                pass
    return _libc or None


def pin_for_cpu_scoring() -> bool:
    """Once the models are loaded: return what the load freed, then pin malloc's thresholds
    for this process (see the module doc). True where it could."""
    lib = _glibc()
    if lib is None:
        return False
    lib.malloc_trim(0)
    return bool(lib.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        lib.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def release_free_memory() -> None:
    """Give the free pages of every arena back to the system (between batches)."""
    lib = _glibc()
    if lib is not None:
        lib.malloc_trim(0)
