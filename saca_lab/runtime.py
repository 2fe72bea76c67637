"""Process-level tuning for training and inference commands.

glibc's malloc serves blocks above its mmap threshold with fresh mmap'd pages, so every large
activation is mapped, page-faulted and unmapped again on each step. Raising the threshold keeps
them on the heap; measured here, 2D training steps ran ~2x and inference ~3x faster
(BENCHMARKS.md, "big heap" columns). Applied by the CLI's train/predict commands only, never on
import; set ``SACA_LAB_MALLOC_TUNING=0`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_allocator(mmap_threshold: int = 1 << 30, trim_threshold: int = 1 << 31) -> bool:
    """Raise glibc's mmap and trim thresholds; returns False where that is not possible."""
    if os.environ.get("SACA_LAB_MALLOC_TUNING", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
