"""The realism metric: peak recall and top overlap under a global wavelength offset."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from saca_lab.spectra.realism._atmosphere import exclusion_windows
from saca_lab.spectra.realism._peaks import (
    DEFAULT_BACKGROUND_WINDOW_NM,
    DEFAULT_NOISE_K,
    DEFAULT_REL_PROMINENCE,
    PeakSet,
    find_prominent_peaks,
    in_windows,
    remove_background,
    segment_bounds,
)


@dataclass(frozen=True)
class RealismScore:
    """Outcome of :func:`peak_match_scores`.

    Attributes
    ----------
    recall
        Share of the top measured peaks with a detected simulated peak within tolerance.
    overlap
        Share of the top simulated peaks with a detected measured peak within tolerance.
    offset_nm
        Global shift added to the simulated wavelengths that maximises ``recall + overlap``.
    common_range
        ``(lo, hi)`` of the compared wavelengths (nm); gaps inside it are left out too.
    meas_top, sim_top
        Top measured and top simulated peak wavelengths (simulated ones after the shift), by
        decreasing prominence.
    meas_top_matched, sim_top_matched
        Boolean masks over ``meas_top`` and ``sim_top``.
    meas_peaks, sim_peaks
        All detected peaks (simulated ones shifted), by decreasing prominence.
    recall_chance, overlap_chance
        What recall and overlap would be by coincidence: the share of positions near each top
        peak (shifted by 0.45-5 nm, i.e. away from its own counterpart) that fall within
        tolerance of a detected peak of the other spectrum, at a fixed offset. Dense line
        forests (the UV of a basalt) make this tens of percent; the offset search lifts a
        chance score somewhat above it.
    n_top, tol_nm
        Settings used.
    """

    recall: float
    overlap: float
    offset_nm: float
    common_range: tuple[float, float]
    meas_top: NDArray[np.float64]
    sim_top: NDArray[np.float64]
    meas_top_matched: NDArray[np.bool_]
    sim_top_matched: NDArray[np.bool_]
    meas_peaks: NDArray[np.float64] = field(repr=False)
    sim_peaks: NDArray[np.float64] = field(repr=False)
    recall_chance: float = 0.0
    overlap_chance: float = 0.0
    n_top: int = 30
    tol_nm: float = 0.15

    @property
    def combined(self) -> float:
        """``recall + overlap``, the quantity the offset search maximises."""
        return self.recall + self.overlap

    def as_dict(self) -> dict[str, float]:
        """Scalar summary for logging."""
        return {
            "recall": self.recall,
            "overlap": self.overlap,
            "offset_nm": self.offset_nm,
            "recall_chance": self.recall_chance,
            "overlap_chance": self.overlap_chance,
            "n_meas_peaks": float(self.meas_peaks.size),
            "n_sim_peaks": float(self.sim_peaks.size),
        }


def _coverage(wl: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(k, 2)`` array of the wavelength intervals a grid covers, one per segment."""
    return np.array([(wl[a], wl[b - 1]) for a, b in segment_bounds(wl)], dtype=np.float64)


def _intersect(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Intersection of two unions of intervals, sorted."""
    lo = np.maximum(a[:, None, 0], b[None, :, 0])
    hi = np.minimum(a[:, None, 1], b[None, :, 1])
    ok = hi > lo
    out = np.stack([lo[ok], hi[ok]], axis=1)
    return out[np.argsort(out[:, 0])]


def _nearest_distance(
    query: NDArray[np.float64], ref_sorted: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Distance from each query point to the nearest reference point (inf if there is none)."""
    if ref_sorted.size == 0:
        return np.full(query.shape, np.inf)
    j = np.searchsorted(ref_sorted, query)
    left = ref_sorted[np.clip(j - 1, 0, ref_sorted.size - 1)]
    right = ref_sorted[np.clip(j, 0, ref_sorted.size - 1)]
    return np.minimum(np.abs(query - left), np.abs(query - right))


def _chance_rate(
    top: NDArray[np.float64],
    pool_sorted: NDArray[np.float64],
    tol: float,
    inner: float,
    allowed: NDArray[np.float64],
    excluded: Sequence[tuple[float, float]],
    outer: float = 5.0,
    step: float = 0.01,
) -> float:
    """Share of shifted top-peak positions within ``tol`` of a pool peak (see RealismScore)."""
    if top.size == 0:
        return 0.0
    u = np.arange(inner, outer + step / 2, step)
    q = (top[:, None] + np.r_[-u[::-1], u][None, :]).ravel()
    # Positions where the other spectrum could not have a peak (gaps, excluded windows) would
    # dilute the rate, so only comparable positions count.
    valid = in_windows(q, allowed) & ~in_windows(q, excluded)
    if not valid.any():
        return 0.0
    return float((_nearest_distance(q[valid], pool_sorted) <= tol).mean())


def sorted_pair(wl: ArrayLike, y: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    wl = np.asarray(wl, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if wl.shape != y.shape:
        raise ValueError(f"wavelength and intensity lengths differ: {wl.size} vs {y.size}")
    ok = np.isfinite(wl) & np.isfinite(y)
    order = np.argsort(wl[ok], kind="stable")
    return wl[ok][order], y[ok][order]


def peak_match_scores(
    sim_wl: ArrayLike,
    sim_y: ArrayLike,
    meas_wl: ArrayLike,
    meas_y: ArrayLike,
    *,
    n_top: int = 30,
    tol_nm: float = 0.15,
    max_offset_nm: float = 0.3,
    offset_step_nm: float = 0.005,
    background_window_nm: float = DEFAULT_BACKGROUND_WINDOW_NM,
    exclude: Sequence[tuple[float, float]] | None = None,
    noise_k: float = DEFAULT_NOISE_K,
    rel_prominence: float = DEFAULT_REL_PROMINENCE,
) -> RealismScore:
    """Score how well a simulated spectrum reproduces the peaks of a measured one.

    Both spectra must use the same wavelength medium (air throughout this module); their grids
    may differ. Steps: keep the wavelength intervals both grids cover; remove each background
    (:func:`remove_background`); detect peaks (:func:`find_prominent_peaks`) outside the
    atmospheric windows; try every global shift of the simulated peaks on a grid of
    ``offset_step_nm`` in ``[-max_offset_nm, +max_offset_nm]`` and keep the one with the
    largest ``recall + overlap`` (ties: smallest summed distance of the matched pairs, then
    smallest shift). Swapping the two spectra swaps recall and overlap and negates the offset
    (unless +d and -d tie exactly on both criteria).

    Parameters
    ----------
    sim_wl, sim_y
        Simulated spectrum.
    meas_wl, meas_y
        Measured spectrum.
    n_top
        Number of most prominent peaks scored on each side.
    tol_nm
        Match tolerance (nm).
    max_offset_nm, offset_step_nm
        Range and step of the global offset search (nm).
    background_window_nm
        Window of :func:`remove_background`.
    exclude
        Exclusion windows; ``None`` uses :func:`exclusion_windows` (atmospheric O, N, H, Ar).
        ``()`` excludes nothing.
    noise_k, rel_prominence
        Detection threshold of :func:`find_prominent_peaks`.

    Returns
    -------
    RealismScore
        Recall, overlap, offset, chance levels and the peak lists behind them.
    """
    sim_wl, sim_y = sorted_pair(sim_wl, sim_y)
    meas_wl, meas_y = sorted_pair(meas_wl, meas_y)
    common = _intersect(_coverage(sim_wl), _coverage(meas_wl))
    if common.size == 0:
        raise ValueError("simulated and measured spectra do not overlap in wavelength")
    windows = exclusion_windows() if exclude is None else list(exclude)

    def peaks(wl: NDArray[np.float64], y: NDArray[np.float64]) -> PeakSet:
        # Crop before the background and the threshold, so that nothing outside the comparison
        # (a strong line the other spectrum does not cover) sets the dynamic range.
        m = in_windows(wl, common)
        wl, y = wl[m], y[m]
        return find_prominent_peaks(
            wl,
            remove_background(wl, y, background_window_nm),
            n_top,
            windows,
            noise_k=noise_k,
            rel_prominence=rel_prominence,
        )

    meas = peaks(meas_wl, meas_y)
    sim = peaks(sim_wl, sim_y)

    n_steps = int(round(max_offset_nm / offset_step_nm)) if offset_step_nm > 0 else 0
    # k * step is exactly -(-k * step), so swapping the spectra finds the negated offset.
    offsets = offset_step_nm * np.arange(-n_steps, n_steps + 1, dtype=np.float64)
    meas_all = np.sort(meas.wavelengths)
    sim_all = np.sort(sim.wavelengths)
    # Shifting the simulation by +d is the same as shifting the measurement by -d; build the
    # (n_offsets, n_top) distance tables for all offsets at once.
    d_rec = _nearest_distance((meas.top[None, :] - offsets[:, None]).ravel(), sim_all)
    d_ovl = _nearest_distance((sim.top[None, :] + offsets[:, None]).ravel(), meas_all)
    d_rec = d_rec.reshape(offsets.size, meas.top.size)
    d_ovl = d_ovl.reshape(offsets.size, sim.top.size)
    eps = 1e-9  # a peak exactly at the tolerance counts, whatever the float rounding
    hit_rec = d_rec <= tol_nm + eps
    hit_ovl = d_ovl <= tol_nm + eps
    recall = hit_rec.sum(axis=1) / max(meas.top.size, 1)
    overlap = hit_ovl.sum(axis=1) / max(sim.top.size, 1)
    spread = np.where(hit_rec, d_rec, 0.0).sum(axis=1) + np.where(hit_ovl, d_ovl, 0.0).sum(axis=1)
    best = int(np.lexsort((np.abs(offsets), np.round(spread, 9), -(recall + overlap)))[0])
    off = float(offsets[best])

    inner = max_offset_nm + tol_nm
    return RealismScore(
        recall=float(recall[best]),
        overlap=float(overlap[best]),
        offset_nm=off,
        common_range=(float(common[0, 0]), float(common[-1, 1])),
        meas_top=meas.top.copy(),
        sim_top=sim.top + off,
        meas_top_matched=hit_rec[best].copy(),
        sim_top_matched=hit_ovl[best].copy(),
        meas_peaks=meas.wavelengths.copy(),
        sim_peaks=sim.wavelengths + off,
        recall_chance=_chance_rate(meas.top, sim_all + off, tol_nm, inner, common, windows),
        overlap_chance=_chance_rate(sim.top + off, meas_all, tol_nm, inner, common, windows),
        n_top=n_top,
        tol_nm=tol_nm,
    )
