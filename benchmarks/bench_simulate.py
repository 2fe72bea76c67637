"""Benchmark: generate the full ``slag`` preset (100 x 300 x 16,375) and record time and peak RSS.

Goal (issue 2): <= 3 min and <= 2.5 GB peak RSS on 2 cores. Run: ``python benchmarks/bench_simulate.py``.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, update_section  # noqa: E402

from saca_lab.spectra.simulate import default_jobs, preset_config, simulate_dataset  # noqa: E402


def _peak_rss_gb() -> float:
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return self_kb / 2**20, child_kb / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="slag")
    ap.add_argument("--samples", type=int)
    ap.add_argument("--shots", type=int)
    ap.add_argument("--jobs", type=int, default=default_jobs())
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    try:
        cfg = preset_config(args.preset, n_samples=args.samples, n_shots=args.shots)
        t0 = time.perf_counter()
        ds = simulate_dataset(cfg, tmp / args.preset, n_jobs=args.jobs, progress=False)
        wall = time.perf_counter() - t0
        parent, child = _peak_rss_gb()
        size_gb = ds.spectra.nbytes / 2**30
        rows = [
            ("preset", f"{args.preset} {ds.shape[0]} x {ds.shape[1]} x {ds.shape[2]}"),
            ("dataset size", f"{size_gb:.2f} GiB float32"),
            ("worker processes", str(args.jobs)),
            ("wall time", f"{wall:.1f} s (goal <= 180 s)"),
            ("peak RSS, main process", f"{parent:.2f} GiB (goal <= 2.5 GiB)"),
            ("peak RSS, largest worker", f"{child:.2f} GiB"),
            ("throughput", f"{ds.shape[0] * ds.shape[1] / wall:.0f} spectra/s"),
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    table = "| measure | value |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)
    print(table)
    update_section("simulate", f"## Simulating the `{args.preset}` preset\n\n{machine()}\n\n{table}\n")


if __name__ == "__main__":
    main()
