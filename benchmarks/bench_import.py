"""Import throughput of each supported file layout (``saca-lab import``).

Times :func:`saca_lab.data.readers.read_any` (parse + validate) and
:func:`saca_lab.data.importer.import_files` (read + hash + atomic write of the dataset) on:

* the real PyHAT CSV (103 spectra x 44 points),
* the folder of 12 real BHVO-2 two-column CSVs from three instruments, resampled onto the
  SuperCam grid (the only one inside every instrument's range),
* a synthetic wide CSV and the same data as NPZ (default 2,000 x 16,375 points).

Prints a markdown table and replaces the ``## Import throughput`` section of BENCHMARKS.md
(between ``<!-- import:start -->`` and ``<!-- import:end -->``), creating the file if needed.

Usage: ``python benchmarks/bench_import.py [--samples N] [--points P] [--repeat R] [--no-md]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saca_lab.data.importer import import_files
from saca_lab.data.readers import input_files, read_any, read_two_column_csv, resample

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import BENCHMARKS_MD, machine, median_time, update_section  # noqa: E402


@dataclass
class Result:
    name: str
    n_files: int
    n_spectra: int
    n_points: int
    megabytes: float
    read_s: float
    import_s: float

    def row(self) -> str:
        return (
            f"| {self.name} | {self.n_files} | {self.n_spectra:,} | {self.n_points:,} | {self.megabytes:.3g} "
            f"| {self.read_s:.3g} | {self.n_spectra / self.read_s:,.0f} | {self.megabytes / self.read_s:.1f} "
            f"| {self.import_s:.3g} | {self.n_spectra / self.import_s:,.0f} | {self.megabytes / self.import_s:.1f} |"
        )


HEADER = (
    "| input | files | spectra | points | MB | read s | read spectra/s | read MB/s "
    "| import s | import spectra/s | import MB/s |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def measure(
    name: str, paths: Sequence[Path], work: Path, repeat: int, grid: np.ndarray | None = None
) -> Result:
    files = input_files(paths)
    megabytes = sum(f.stat().st_size for f in files) / 1e6
    table = read_any(paths, grid=grid)
    read_s = median_time(lambda: read_any(paths, grid=grid), repeat)
    calls = itertools.count()  # each import needs a fresh output directory
    out_base = work / f"out_{name.replace(' ', '_')}"
    import_s = median_time(
        lambda: import_files(paths, out_dir=out_base / str(next(calls)), grid=grid), repeat
    )
    return Result(
        name,
        len(files),
        table.n_samples * table.n_shots,
        table.n_points,
        megabytes,
        read_s,
        import_s,
    )


def resample_timing(spectra: np.ndarray, wavelengths: np.ndarray, repeat: int) -> str:
    """One line comparing :func:`resample` with a per-spectrum :func:`numpy.interp` loop."""
    grid = np.linspace(wavelengths[0] + 10.0, wavelengths[-1] - 10.0, 12000)
    data = (wavelengths, spectra)
    vectorised = median_time(lambda: resample(data, grid), repeat)
    looped = median_time(lambda: [np.interp(grid, wavelengths, row) for row in spectra], repeat)
    n, p = spectra.shape
    return (
        f"Resampling {n:,} x {p:,} float32 spectra onto {grid.size:,} points: "
        f"{vectorised:.3g} s with `resample` vs {looped:.3g} s for a per-spectrum `np.interp` loop."
    )


def synthetic_spectra(
    n_samples: int, n_points: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wavelengths, LIBS-like spectra (baseline, emission lines, noise) and SiO2 labels."""
    rng = np.random.default_rng(seed)
    wavelengths = np.linspace(200.0, 900.0, n_points)
    centres = rng.uniform(210.0, 890.0, 40)
    lines = np.exp(-0.5 * ((wavelengths[None, :] - centres[:, None]) / 0.08) ** 2)
    strengths = rng.uniform(100.0, 20000.0, (n_samples, centres.size))
    baseline = 500.0 + 200.0 * np.sin(wavelengths / 90.0)
    spectra = (strengths @ lines + baseline + rng.normal(0.0, 15.0, (n_samples, n_points))).astype(
        np.float32
    )
    return wavelengths, spectra, np.round(rng.uniform(35.0, 75.0, n_samples), 2)


def write_wide_csv(
    path: Path, wavelengths: np.ndarray, spectra: np.ndarray, sio2: np.ndarray
) -> None:
    with path.open("w") as handle:
        handle.write("sample_id,SiO2," + ",".join(f"{w:.4f}" for w in wavelengths) + "\n")
        for i, row in enumerate(spectra):
            handle.write(f"s{i:05d},{sio2[i]}," + ",".join(f"{v:.6g}" for v in row.tolist()) + "\n")


def section(results: Sequence[Result], resampling: str, args: argparse.Namespace) -> str:
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    lines = [
        "## Import throughput",
        "",
        f"Measured {today} with `python benchmarks/bench_import.py --samples {args.samples} "
        f"--points {args.points} --repeat {args.repeat}` (median of {args.repeat} runs).",
        machine(),
        "",
        "*read* is `read_any` (parse + validate, plus resampling for the BHVO-2 folder); *import* is",
        "`import_files` (read + SHA-256 of the inputs + atomic write of the dataset). MB are input",
        "bytes on disk.",
        "",
        HEADER,
        *(r.row() for r in results),
        "",
        resampling,
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--samples", type=int, default=2000, help="synthetic spectra (default 2000)"
    )
    parser.add_argument("--points", type=int, default=16375, help="points per synthetic spectrum")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--no-md", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args(argv)

    results = []
    with tempfile.TemporaryDirectory(prefix="bench_import_") as tmp:
        work = Path(tmp)
        pyhat, bhvo2 = REAL / "libs_geostandards_sio2.csv", REAL / "bhvo2"
        if pyhat.is_file() and bhvo2.is_dir():
            results.append(measure("PyHAT CSV (real)", [pyhat], work, args.repeat))
            grid = read_two_column_csv(bhvo2 / "supercam_1545mm_loc1_spectrum.csv").wavelengths
            results.append(
                measure(
                    "two-column folder, 12 BHVO-2 (real)", [bhvo2], work, args.repeat, grid=grid
                )
            )
        else:
            print(f"real files not found under {REAL}; skipping them", file=sys.stderr)
        wavelengths, spectra, sio2 = synthetic_spectra(args.samples, args.points)
        wide = work / "wide.csv"
        write_wide_csv(wide, wavelengths, spectra, sio2)
        npz = work / "spectra.npz"
        np.savez(
            npz,
            wavelengths=wavelengths,
            spectra=spectra,
            sample_ids=np.array([f"s{i:05d}" for i in range(args.samples)]),
            target_SiO2=sio2,
        )
        resampling = resample_timing(spectra, wavelengths, args.repeat)
        del spectra
        results.append(measure("wide CSV (synthetic)", [wide], work, args.repeat))
        results.append(measure("NPZ (synthetic)", [npz], work, args.repeat))

    print(HEADER)
    for result in results:
        print(result.row())
    print(f"\n{resampling}")
    if not args.no_md:
        update_section("import", section(results, resampling, args))
        print(f"\nupdated {BENCHMARKS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
