"""``saca-lab realism``: score the simulator against measured spectra and draw overlays."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from saca_lab.chemistry import parse_composition
from saca_lab.io import atomic_path
from saca_lab.spectra import realism
from saca_lab.spectra.simulate import simulate_spectrum

# The measured files are shot averages; so is the simulated spectrum they are compared with.
REALISM_SHOTS = 50


def simulated_reference(composition: dict[str, float], instrument: str = "trcsl",
                        matrix: str = "rock", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The simulator as the presets use it: channels, response, backgrounds, air lines, noise."""
    return simulate_spectrum(composition, instrument=instrument, matrix=matrix,
                             n_shots=REALISM_SHOTS, seed=seed)


def score_files(paths: Sequence[str | os.PathLike], *, composition: dict[str, float] | None = None,
                simulator: str = "preset", out_dir: str | os.PathLike | None = None,
                ) -> list[tuple[str, realism.RealismScore]]:
    """Score each measured file; write one overlay PNG per file into ``out_dir`` if given."""
    comp = composition or realism.BHVO2_COMPOSITION
    sim = simulated_reference(comp) if simulator == "preset" else None
    results = []
    for path in paths:
        name = Path(path).stem
        meas_wl, meas_y = realism.load_measured_air(path)
        if sim is None:
            sim_wl, sim_y = meas_wl, realism.plain_lte_spectrum(comp, meas_wl)
        else:
            sim_wl, sim_y = sim
        score = realism.peak_match_scores(sim_wl, sim_y, meas_wl, meas_y)
        if out_dir is not None:
            realism.plot_overlay(sim_wl, sim_y, meas_wl, meas_y, score,
                                 Path(out_dir) / f"overlay_{name}.png",
                                 title=f"{simulator} simulation vs {name}")
        results.append((name, score))
    return results


def run_realism(paths: Sequence[str], *, composition: str | None, simulator: str,
                out_dir: str) -> int:
    comp = parse_composition(composition) if composition else None
    results = score_files(paths, composition=comp, simulator=simulator, out_dir=out_dir)
    header = ["file", "recall", "overlap", "offset_nm", "recall_chance", "overlap_chance"]
    rows = [[name, f"{s.recall:.2f}", f"{s.overlap:.2f}", f"{s.offset_nm:+.3f}",
             f"{s.recall_chance:.2f}", f"{s.overlap_chance:.2f}"] for name, s in results]
    with atomic_path(Path(out_dir) / "scores.csv") as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(f"overlays and scores.csv in {out_dir}")
    return 0
