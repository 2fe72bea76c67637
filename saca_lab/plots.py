"""Paper-style figures of datasets (TrCSL Fig. 8)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from saca_lab.config import DEFAULTS
from saca_lab.data.store import Dataset
from saca_lab.io import new_figure, save_figure

_AIRPLS = DEFAULTS["data"]["preprocessing"]["airpls"]


def mean_spectra(ds: Dataset, n_samples: int) -> np.ndarray:
    """Shot-averaged spectra of the first ``n_samples`` samples, float64."""
    return np.asarray(ds.spectra[:n_samples], dtype=np.float64).mean(axis=1)


def _minmax(y: np.ndarray) -> np.ndarray:
    lo = y.min(axis=1, keepdims=True)
    return (y - lo) / (y.max(axis=1, keepdims=True) - lo)


def plot_fig8(slag: Dataset, steel: Dataset, path: str | os.PathLike, n_samples: int = 5,
              lam: float = _AIRPLS["lam"], max_iter: int = _AIRPLS["max_iter"]) -> Path:
    """TrCSL Fig. 8: normalised raw (a, b) and airPLS-corrected (c, d) spectra of the first
    ``n_samples`` slag and carbon-steel samples, shot-averaged."""
    from saca_lab.preprocessing import airpls_batch

    fig, axes = new_figure(2, 2, figsize=(13, 7.5), sharex=True)
    panels = (("a", "b"), ("c", "d"))
    for col, (ds, label) in enumerate(((slag, "steel slag"), (steel, "carbon steel"))):
        raw = mean_spectra(ds, n_samples)
        corrected = raw - airpls_batch(raw, lam=lam, max_iter=max_iter)
        for row, (y, kind) in enumerate(((raw, "raw"), (corrected, "baseline corrected"))):
            ax = axes[row, col]
            for i, yi in enumerate(_minmax(y)):
                ax.plot(ds.wavelengths, yi + 0.25 * i, lw=0.4, label=ds.sample_ids[i])
            ax.set_title(f"({panels[row][col]}) {kind} LIBS spectra of {label}", fontsize=10)
            ax.set_ylabel("normalised intensity (offset per sample)")
            ax.set_ylim(-0.05, 0.25 * (len(y) - 1) + 1.05)
            if row == 1:
                ax.set_xlabel("wavelength (nm, air)")
        axes[0, col].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"Simulated TrCSL Fig. 8: airPLS lambda={lam:g}, {max_iter} iterations")
    fig.tight_layout()
    out = save_figure(fig, path)
    return out


def fig8_from_presets(path: str | os.PathLike, *, data_root: str | None = None,
                      n_shots: int | None = None, n_jobs: int | None = None) -> Path:
    """Generate (or reuse) the slag and carbon-steel presets and plot Fig. 8 from them."""
    from saca_lab.datasets.resolve import resolve_dataset

    datasets = [resolve_dataset({"preset": preset} if n_shots is None else {"preset": preset, "shots": n_shots},
                                data_root, n_jobs=n_jobs)
                for preset in ("slag", "carbon-steel")]
    return plot_fig8(*datasets, path)
