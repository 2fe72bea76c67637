"""Overlay plot of a measured and a simulated spectrum with their matched top peaks."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from saca_lab.io import atomic_path
from saca_lab.spectra.realism._atmosphere import exclusion_windows
from saca_lab.spectra.realism._metric import RealismScore, sorted_pair
from saca_lab.spectra.realism._peaks import (
    DEFAULT_BACKGROUND_WINDOW_NM,
    in_windows,
    remove_background,
    segment_bounds,
)


def _normalised_for_plot(
    wl: NDArray[np.float64],
    y: NDArray[np.float64],
    common: tuple[float, float],
    window_nm: float,
    excluded: Sequence[tuple[float, float]],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Background-removed spectrum in the common range, scaled to a sample-line maximum of 1,
    with NaN breaks at detector gaps so no line is drawn across them."""
    m = (wl >= common[0]) & (wl <= common[1])
    wl, y = wl[m], remove_background(wl[m], y[m], window_nm)
    ref = y[~in_windows(wl, excluded)]
    scale = float(ref.max()) if ref.size and ref.max() > 0 else 1.0
    y = y / scale
    cuts = [b for _, b in segment_bounds(wl)][:-1]
    return np.insert(wl, cuts, np.nan), np.insert(y, cuts, np.nan)


def plot_overlay(
    sim_wl: ArrayLike,
    sim_y: ArrayLike,
    meas_wl: ArrayLike,
    meas_y: ArrayLike,
    score: RealismScore,
    path: str | os.PathLike[str],
    title: str = "",
    *,
    zooms: Sequence[tuple[float, float]] = (),
    background_window_nm: float = DEFAULT_BACKGROUND_WINDOW_NM,
    exclude: Sequence[tuple[float, float]] | None = None,
) -> Path:
    """Write a PNG overlay of a measured and a simulated spectrum with the matched top peaks.

    Both spectra are background-removed and scaled to a maximum of 1 outside the atmospheric
    windows; the measured one points up, the simulated one (shifted by ``score.offset_nm``) is
    mirrored below. Top peaks are marked: filled circles matched, crosses unmatched.
    Atmospheric windows are shaded. The file is written next to ``path`` and renamed into
    place, so a reader never sees half a PNG.

    Parameters
    ----------
    sim_wl, sim_y, meas_wl, meas_y
        The spectra given to :func:`peak_match_scores`.
    score
        Its result.
    path
        Output PNG path; parent directories are created.
    title
        Figure title; the scores are appended.
    zooms
        ``(lo, hi)`` ranges (nm) drawn as extra panels below the full view.
    background_window_nm, exclude
        As given to :func:`peak_match_scores`.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    windows = exclusion_windows() if exclude is None else list(exclude)
    sim_wl_s, sim_y_s = sorted_pair(sim_wl, sim_y)
    meas_wl_s, meas_y_s = sorted_pair(meas_wl, meas_y)
    mw, my = _normalised_for_plot(
        meas_wl_s, meas_y_s, score.common_range, background_window_nm, windows
    )
    sw, sy = _normalised_for_plot(
        sim_wl_s + score.offset_nm, sim_y_s, score.common_range, background_window_nm, windows
    )

    n_panels = 1 + len(zooms)
    fig = Figure(figsize=(14, 4.2 * n_panels), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_panels, 1, squeeze=False)[:, 0]
    ranges = [score.common_range, *zooms]
    for ax, (lo, hi) in zip(axes, ranges, strict=True):
        ax.plot(mw, my, lw=0.6, color="black", label="measured")
        ax.plot(sw, -sy, lw=0.6, color="tab:blue", label=f"simulated ({score.offset_nm:+.3f} nm)")
        for a, b in windows:
            if b >= lo and a <= hi:
                ax.axvspan(a, b, color="0.85", lw=0, zorder=0)
        for tops, matched, sign, colour in (
            (score.meas_top, score.meas_top_matched, 1.0, "tab:green"),
            (score.sim_top, score.sim_top_matched, -1.0, "tab:green"),
        ):
            y_mark = sign * 1.06
            ax.scatter(tops[matched], np.full(int(matched.sum()), y_mark), s=18, color=colour)
            ax.scatter(
                tops[~matched],
                np.full(int((~matched).sum()), y_mark),
                s=24,
                marker="x",
                color="tab:red",
            )
        ax.axhline(0.0, color="0.5", lw=0.5)
        ax.set_xlim(lo, hi)
        ax.set_ylim(-1.15, 1.15)
        ax.set_xlabel("wavelength in air (nm)")
        ax.set_ylabel("measured  /  -simulated")
    axes[0].legend(loc="lower right", fontsize=8)
    summary = (
        f"recall {score.recall:.2f} (chance {score.recall_chance:.2f}), "
        f"overlap {score.overlap:.2f} (chance {score.overlap_chance:.2f}), "
        f"top {score.n_top}, tol {score.tol_nm} nm"
    )
    axes[0].set_title(f"{title}\n{summary}" if title else summary, fontsize=10)

    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return out
