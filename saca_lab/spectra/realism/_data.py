"""Measured spectra (CSV loading, air/vacuum media) and the plain-LTE reference simulation."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from saca_lab.spectra.plasma import line_database
from saca_lab.spectra.realism._peaks import segment_bounds

#: Certified composition of USGS BHVO-2 in mass %, oxygen as the balance (the rock is oxides).
BHVO2_COMPOSITION: dict[str, float] = {
    "Si": 23.33,
    "Ti": 1.64,
    "Al": 7.14,
    "Fe": 8.61,
    "Mn": 0.13,
    "Mg": 4.36,
    "Ca": 8.15,
    "Na": 1.65,
    "K": 0.43,
    "P": 0.12,
}
BHVO2_COMPOSITION["O"] = round(100.0 - sum(BHVO2_COMPOSITION.values()), 10)

#: Wavelength medium of each instrument's files, keyed by the file-name prefix (see the package doc).
INSTRUMENT_MEDIUM: dict[str, str] = {"chemcam": "vacuum", "supercam": "vacuum", "csa": "air"}


def load_measured(path: str | os.PathLike[str]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Read a two-column ``wavelength,intensity`` CSV with one header row.

    Parameters
    ----------
    path
        CSV file.

    Returns
    -------
    wl, y
        Wavelengths (nm, in the file's own medium) and intensities, sorted by wavelength.
    """
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    order = np.argsort(data[:, 0], kind="stable")
    return data[order, 0], data[order, 1]


def load_measured_air(
    path: str | os.PathLike[str], medium: str | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Read a measured spectrum and return its wavelengths in standard air.

    Parameters
    ----------
    path
        CSV file as for :func:`load_measured`.
    medium
        ``"air"`` or ``"vacuum"``: the medium of the file's wavelengths. ``None`` looks the
        instrument up in :data:`INSTRUMENT_MEDIUM` by the file-name prefix.

    Returns
    -------
    wl_air, y
        Air wavelengths (nm) and intensities.
    """
    if medium is None:
        prefix = Path(path).name.split("_", 1)[0].lower()
        if prefix not in INSTRUMENT_MEDIUM:
            raise ValueError(
                f"{path}: unknown instrument prefix {prefix!r}; pass medium='air' or 'vacuum'"
            )
        medium = INSTRUMENT_MEDIUM[prefix]
    wl, y = load_measured(path)
    if medium == "vacuum":
        import libskit

        wl = np.asarray(libskit.vacuum_to_air(wl), dtype=np.float64)
    elif medium != "air":
        raise ValueError(f"medium must be 'air' or 'vacuum', got {medium!r}")
    return wl, y


def plain_lte_spectrum(
    composition: Mapping[str, float],
    wl_air: ArrayLike,
    temperature: float = 10_000.0,
    ne: float = 1e23,
    length: float = 1e-3,
    sigma_nm: float | None = None,
    gamma_nm: float = 0.0,
) -> NDArray[np.float64]:
    """The reference "plain libskit LTE spectrum" on a measured (air) wavelength grid.

    One homogeneous LTE plasma with radiative transfer over ``length`` and a Voigt instrument
    profile; no continuum, no noise, no instrument response.

    Parameters
    ----------
    composition
        Element -> mass fraction or mass %; normalised to sum 1 here.
    wl_air
        Increasing air wavelengths (nm) to evaluate on; converted to vacuum for libskit.
    temperature, ne, length
        Plasma temperature (K), electron density (m^-3) and column length (m).
    sigma_nm
        Gaussian sigma of the instrument profile (nm). ``None`` uses, per detector segment
        (:func:`segment_bounds`), the median pixel step there: a Nyquist-sampled spectrometer
        has a resolution FWHM of about 2.4 pixels, i.e. a sigma of about one pixel. It also
        keeps lines narrower than a pixel from falling between the grid points at which libskit
        samples the broadened spectrum (ChemCam's VNIR pixels are 0.2 nm wide).
    gamma_nm
        Lorentzian HWHM of the instrument profile (nm).

    Returns
    -------
    numpy.ndarray
        Spectral radiance on ``wl_air`` (arbitrary units).
    """
    import libskit

    line_database()
    total = float(sum(composition.values()))
    if total <= 0:
        raise ValueError("composition must have a positive total")
    ratios = {el: float(v) / total for el, v in composition.items() if v > 0}
    wl_air = np.asarray(wl_air, dtype=np.float64)
    wl_vac = np.asarray(libskit.air_to_vacuum(wl_air), dtype=np.float64)
    model = libskit.LTEModel(ratios, float(temperature), float(ne), float(length))
    if sigma_nm is not None:
        spectrometer = libskit.GenericSpectrometer(float(sigma_nm), float(gamma_nm))
        return np.asarray(spectrometer.calculate_spectrum(wl_vac, model), dtype=np.float64).ravel()
    out = np.zeros_like(wl_air)
    for a, b in segment_bounds(wl_air):
        step = float(np.median(np.diff(wl_air[a:b]))) if b - a > 1 else 0.05
        spectrometer = libskit.GenericSpectrometer(step, float(gamma_nm))
        out[a:b] = np.asarray(spectrometer.calculate_spectrum(wl_vac[a:b], model)).ravel()
    return out
