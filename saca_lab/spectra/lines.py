"""Net line intensities and their shot-to-shot scatter (TrCSL Fig. 13)."""

from __future__ import annotations

import numpy as np

from saca_lab.errors import InputError


def net_line_intensity(wavelengths: np.ndarray, spectra: np.ndarray, line_nm: float,
                       window_nm: float = 0.4, peak_pixels: int = 2) -> np.ndarray:
    """Peak height above the local background, for every spectrum (last axis = wavelength).

    The peak is the maximum within ``peak_pixels`` of the line's nearest pixel (it absorbs the
    wavelength jitter); the background is the 10th percentile within ``window_nm`` of the line.
    """
    wl = np.asarray(wavelengths)
    if not wl[0] <= line_nm <= wl[-1]:
        raise InputError(f"line {line_nm} nm is outside the grid {wl[0]:.3f}-{wl[-1]:.3f} nm")
    y = np.asarray(spectra, dtype=np.float64)
    i = int(np.argmin(np.abs(wl - line_nm)))
    peak = y[..., max(i - peak_pixels, 0): i + peak_pixels + 1].max(axis=-1)
    window = (wl > line_nm - window_nm) & (wl < line_nm + window_nm)
    return peak - np.percentile(y[..., window], 10, axis=-1)


def line_rsd(wavelengths: np.ndarray, shots: np.ndarray, line_nm: float, **kwargs) -> float:
    """Relative standard deviation of a line's net intensity over shots (n_shots, n_points)."""
    net = net_line_intensity(wavelengths, shots, line_nm, **kwargs)
    return float(net.std(ddof=1) / net.mean())
