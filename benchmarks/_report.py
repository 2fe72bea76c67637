"""Shared helpers for benchmarks: machine description and BENCHMARKS.md section updates."""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy as np

    cores = len(os.sched_getaffinity(0))
    cpu += _isa()
    return (f"Machine: {platform.system()} {platform.machine()}, {cpu}, {cores} cores; "
            f"Python {platform.python_version()}, numpy {np.__version__}; date {date.today()}.")


def _isa() -> str:
    """The vector/matrix extensions that decide which kernels and precisions run natively."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in
                      Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), [])
    except OSError:
        return ""
    names = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16"}
    found = [label for flag, label in names.items() if flag in flags]
    return f" ({', '.join(found)})" if found else ""


def load_note() -> str:
    """The 1-minute load average against the cores: figures taken on a busy machine say so."""
    load, cores = os.getloadavg()[0], len(os.sched_getaffinity(0))
    return f"Load average when started: {load:.1f} on {cores} cores."


def update_section(name: str, body: str) -> None:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->``, or append it."""
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    block = f"<!-- {name}:start -->\n{body.rstrip()}\n<!-- {name}:end -->"
    pattern = re.compile(rf"<!-- {name}:start -->.*?<!-- {name}:end -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS_MD.write_text(text)


def median_time(fn: Callable[[], object], repeat: int,
                clock: Callable[[], float] = time.perf_counter) -> float:
    """Median time of ``fn()`` by ``clock`` (wall time by default) over ``repeat`` runs, after
    one warm-up run (imports, allocator, worker processes)."""
    fn()
    times = []
    for _ in range(repeat):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)
