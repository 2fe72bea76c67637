"""Grid segments, background removal, noise level and prominence-based peak detection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage, signal

DEFAULT_BACKGROUND_WINDOW_NM = 5.0
DEFAULT_NOISE_K = 5.0
DEFAULT_REL_PROMINENCE = 0.005


def segment_bounds(wl: ArrayLike, gap_factor: float = 2.0) -> list[tuple[int, int]]:
    """Split a wavelength grid into contiguous detector segments.

    Multi-spectrometer instruments leave gaps (ChemCam 341-382 nm, SuperCam 464-538 nm, CSA
    0.3-1.2 nm gaps between its channels). Backgrounds and peak prominences must not bridge a
    gap, so every later step works per segment.

    Parameters
    ----------
    wl
        Increasing wavelengths.
    gap_factor
        A step larger than ``gap_factor`` times the local pixel step (median of the 11 steps
        around it) starts a new segment.

    Returns
    -------
    list of (start, stop)
        Slice bounds of each segment.
    """
    wl = np.asarray(wl, dtype=np.float64)
    if wl.size < 3:
        return [(0, wl.size)] if wl.size else []
    dw = np.diff(wl)
    local = ndimage.median_filter(dw, size=11, mode="nearest")
    cuts = np.flatnonzero(dw > gap_factor * local) + 1
    edges = np.r_[0, cuts, wl.size]
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def remove_background(
    wl: ArrayLike, y: ArrayLike, window_nm: float = DEFAULT_BACKGROUND_WINDOW_NM
) -> NDArray[np.float64]:
    """Subtract a slowly varying background (continuum, stray light, dark offset).

    The background is the morphological opening of the spectrum (rolling minimum, then rolling
    maximum, over ``window_nm``), smoothed by a moving average over the same window. The
    opening follows everything broader than the window and cuts off every line narrower than
    it, so lines keep their height while the continuum goes. Each detector segment is treated
    on its own, with the window converted to pixels at that segment's median step.

    Parameters
    ----------
    wl
        Increasing wavelengths (nm); may be non-uniform and have gaps.
    y
        Intensities.
    window_nm
        Structuring-element width: wider than any line with its wings (a few tenths of a nm to
        ~2 nm for Stark-broadened H alpha), narrower than the continuum's curvature.

    Returns
    -------
    numpy.ndarray
        ``y`` minus the background, same shape.
    """
    wl = np.asarray(wl, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    out = np.empty_like(y)
    for a, b in segment_bounds(wl):
        seg = y[a:b]
        if b - a < 3:
            out[a:b] = seg - seg.min()
            continue
        step = float(np.median(np.diff(wl[a:b])))
        size = max(3, int(round(window_nm / step)) | 1)
        opened = ndimage.grey_opening(seg, size=size, mode="nearest")
        # The opening is a staircase; averaging it makes the base as smooth as a continuum is,
        # so its steps do not turn into spurious peaks in the residual.
        out[a:b] = seg - ndimage.uniform_filter1d(opened, size=size, mode="nearest")
    return out


def robust_noise_sigma(y: ArrayLike) -> float:
    """Robust per-pixel noise level from the MAD of first differences.

    Differencing removes everything that varies slowly compared with a pixel and the median
    ignores the few large jumps at line flanks, so what is left is white noise of variance
    ``2 sigma^2``.

    Parameters
    ----------
    y
        Intensities.

    Returns
    -------
    float
        Estimated noise standard deviation.
    """
    d = np.diff(np.asarray(y, dtype=np.float64))
    if d.size == 0:
        return 0.0
    mad = np.median(np.abs(d - np.median(d)))
    return float(1.4826 * mad / np.sqrt(2.0))


@dataclass(frozen=True)
class PeakSet:
    """Peaks of one spectrum after background removal and atmospheric exclusion.

    Attributes
    ----------
    wavelengths
        Wavelengths (nm) of all detected peaks, by decreasing prominence.
    prominences
        Their prominences, same order.
    n_top
        How many of the leading entries form the top set.
    threshold
        Prominence threshold used for detection.
    """

    wavelengths: NDArray[np.float64]
    prominences: NDArray[np.float64]
    n_top: int
    threshold: float

    @property
    def top(self) -> NDArray[np.float64]:
        """Wavelengths of the ``n_top`` most prominent peaks."""
        return self.wavelengths[: self.n_top]


def in_windows(pos: NDArray[np.float64], windows: ArrayLike) -> NDArray[np.bool_]:
    """Whether each position lies in any ``(lo, hi)`` window."""
    win = np.asarray(windows, dtype=np.float64).reshape(-1, 2)
    if win.size == 0 or pos.size == 0:
        return np.zeros(pos.shape, dtype=bool)
    return ((pos[:, None] >= win[None, :, 0]) & (pos[:, None] <= win[None, :, 1])).any(axis=1)


def find_prominent_peaks(
    wl: ArrayLike,
    y: ArrayLike,
    n: int = 30,
    exclude: Sequence[tuple[float, float]] = (),
    *,
    noise_k: float = DEFAULT_NOISE_K,
    rel_prominence: float = DEFAULT_REL_PROMINENCE,
    background_removed: bool = True,
) -> PeakSet:
    """Detect peaks by prominence, leaving out excluded windows.

    A peak is detected when its prominence exceeds ``max(noise_k * sigma, rel_prominence *
    p_max)``: ``sigma`` is the robust noise (:func:`robust_noise_sigma`) and ``p_max`` the
    largest prominence outside the excluded windows. The noise term keeps noise spikes out; the
    relative term sets a finite dynamic range, which a noise-free simulation otherwise lacks
    (it would "detect" thousands of NIST lines and any composition would then have a line next
    to every measured peak). Prominences are computed per detector segment, and positions are
    refined to sub-pixel precision by a parabola through the three top pixels, because pixel
    steps of 0.05-0.2 nm are comparable with the matching tolerance.

    Parameters
    ----------
    wl
        Increasing wavelengths (nm).
    y
        Background-removed intensities (see ``background_removed``).
    n
        Size of the top set.
    exclude
        ``(lo, hi)`` windows whose peaks are dropped (atmospheric lines).
    noise_k, rel_prominence
        Detection threshold factors (see above).
    background_removed
        If False, :func:`remove_background` is applied first with its default window.

    Returns
    -------
    PeakSet
        All detected peaks by decreasing prominence; the first ``n`` form the top set.
    """
    wl = np.asarray(wl, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if not background_removed:
        y = remove_background(wl, y)
    idx_parts: list[NDArray[np.intp]] = [np.empty(0, dtype=np.intp)]
    prom_parts: list[NDArray[np.float64]] = [np.empty(0)]
    for a, b in segment_bounds(wl):
        if b - a < 3:
            continue
        pk, props = signal.find_peaks(y[a:b], prominence=0.0)
        idx_parts.append(pk + a)
        prom_parts.append(props["prominences"])
    idx = np.concatenate(idx_parts)
    prom = np.concatenate(prom_parts)
    pos = _refine_peak_positions(wl, y, idx)
    outside = ~in_windows(pos, exclude)
    pos, prom = pos[outside], prom[outside]
    # The dynamic range is set after exclusion: H alpha or O I 777 may be the strongest peak of
    # a measured spectrum and must not decide which sample lines count.
    p_max = float(prom.max()) if prom.size else 0.0
    threshold = max(noise_k * robust_noise_sigma(y), rel_prominence * p_max)
    keep = prom > threshold
    pos, prom = pos[keep], prom[keep]
    order = np.argsort(-prom, kind="stable")
    return PeakSet(pos[order], prom[order], min(n, pos.size), threshold)


def _refine_peak_positions(
    wl: NDArray[np.float64], y: NDArray[np.float64], idx: NDArray[np.intp]
) -> NDArray[np.float64]:
    """Sub-pixel peak centres from a parabola through the maximum and its two neighbours."""
    if idx.size == 0:
        return np.empty(0)
    ym, y0, yp = y[idx - 1], y[idx], y[idx + 1]
    den = ym - 2.0 * y0 + yp
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(den < 0, 0.5 * (ym - yp) / den, 0.0)
    frac = np.clip(frac, -0.5, 0.5)
    step = np.where(frac >= 0, wl[idx + 1] - wl[idx], wl[idx] - wl[idx - 1])
    return wl[idx] + frac * step
