"""Atmospheric (O, N, H, Ar) lines and the exclusion windows built around them."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from saca_lab.spectra.plasma import line_database

#: Atmospheric species whose neutral lines are left out of both spectra. Mars' CO2 would add
#: C I 247.86 nm; pass ``("O", "N", "H", "Ar", "C")`` to :func:`atmospheric_lines_air` for it
#: (it changes no score on the BHVO-2 files). Ionic air lines (N II 399.5/463.0/500.5/568.0,
#: O II 407-465) are left in: in these files they rank below the top 100 peaks, and windows
#: around the dozens of them would delete sample lines in 370-470 nm.
ATMOSPHERIC_SPECIES: tuple[str, ...] = ("O", "N", "H", "Ar")

_KB_EV = 8.617333262e-5


@lru_cache(maxsize=8)
def atmospheric_lines_air(
    species: tuple[str, ...] = ATMOSPHERIC_SPECIES,
    temperature: float = 10_000.0,
    rel_emissivity: float = 0.03,
) -> tuple[float, ...]:
    """Air wavelengths of the strong neutral lines of atmospheric species (NIST, via libskit).

    Every neutral line in 190-1000 nm is ranked by its optically thin LTE emissivity
    ``g_k A_ki / lambda * exp(-E_k / kT)``; lines with at least ``rel_emissivity`` of the
    species' strongest line are kept. At 10,000 K and 3 % that is 82 lines: O I 615.8,
    777.2/777.4/777.5, 844.6, 926 nm; N I 742-747, 818-824, 856-873, 903-946 nm; H alpha to
    H delta; Ar I 696-966 nm - the atmospheric lines seen in LIBS in air and in Mars' CO2 (which
    carries N2 and Ar).

    Parameters
    ----------
    species
        Element symbols; only their neutral spectra are used.
    temperature
        Excitation temperature (K) for the ranking.
    rel_emissivity
        Keep lines with at least this fraction of the species' strongest emissivity.

    Returns
    -------
    tuple of float
        Sorted air wavelengths (nm).
    """
    import libskit
    import pandas as pd

    lines = pd.read_csv(line_database().path / "lines_processed_all.csv")
    lines = lines[lines["element"].isin(species) & (lines["sp_num"] == 1)]
    lam = lines["ritz_wl_vac(nm)"].to_numpy(dtype=np.float64)
    inside = (lam > 190.0) & (lam < 1000.0)
    lines, lam = lines[inside], lam[inside]
    eps = (
        lines["g_k"].to_numpy(dtype=np.float64)
        * lines["Aki(s^-1)"].to_numpy(dtype=np.float64)
        / lam
        * np.exp(-lines["Ek(eV)"].to_numpy(dtype=np.float64) / (_KB_EV * temperature))
    )
    elements = lines["element"].to_numpy()
    keep = np.zeros(lam.size, dtype=bool)
    for el in species:
        sel = elements == el
        if sel.any():
            keep |= sel & (eps >= rel_emissivity * eps[sel].max())
    air = np.asarray(libskit.vacuum_to_air(lam[keep]), dtype=np.float64)
    return tuple(float(v) for v in np.sort(air))


def exclusion_windows(
    lines_nm: Sequence[float] | None = None, half_width_nm: float = 0.3
) -> list[tuple[float, float]]:
    """Merge ``line +/- half_width_nm`` intervals into disjoint exclusion windows.

    Parameters
    ----------
    lines_nm
        Line wavelengths (nm); ``None`` uses :func:`atmospheric_lines_air` with its defaults.
    half_width_nm
        Half width of each window. The default equals the largest calibration offset the
        metric allows, so an atmospheric line stays excluded however the instrument is shifted.

    Returns
    -------
    list of (lo, hi)
        Sorted, disjoint windows (nm).
    """
    lines = atmospheric_lines_air() if lines_nm is None else lines_nm
    windows: list[tuple[float, float]] = []
    for lam in np.sort(np.asarray(lines, dtype=np.float64)):
        lo, hi = float(lam - half_width_nm), float(lam + half_width_nm)
        if windows and lo <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(windows[-1][1], hi))
        else:
            windows.append((lo, hi))
    return windows
