"""LTE plasma emission through libskit, sampled by an instrument.

libskit does the physics: Saha-Boltzmann populations of neutral and singly ionised species from
NIST data, Stark and instrumental line shapes, and radiative transfer with self-absorption over
the plasma length. It works in vacuum wavelengths; the rest of saca-lab works in air, so the
conversion happens here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from saca_lab.errors import InputError
from saca_lab.spectra.instruments import Instrument


@dataclass(frozen=True)
class PlasmaState:
    """Temperature (K), electron density (m^-3) and plasma length (m) of one emission state."""

    temperature: float
    electron_density: float
    length: float


# Ground-level statistical weight g = 2J + 1 of 5+ lanthanide ions (4f^n, Hund's-rule ground term)
# that the NIST level list shipped with libskit 0.2 lacks. libskit solves the Saha chain up to
# stage V, which needs the partition function of stage VI; without any "Nd VI" level its C++ lookup
# fails with ``IndexError: unordered_map::at`` in ``get_lines``, ``get_population_fractions`` and
# ``calculate_spectrum`` (``calculate_irradiance`` does not hit it). Stage VI only enters through
# the V -> VI Saha factor, and stage V holds < 1e-13 of Nd or Eu even at 15,000 K (1e-28 at
# 9000 K), so a ground-level-only partition function is exact enough and changes no line.
MISSING_TOP_STAGE_G = {
    "Nd VI": 6.0,   # 4f1  2F5/2
    "Eu VI": 9.0,   # 4f4  5I4
    "Gd VI": 6.0,   # 4f5  6H5/2
    "Tb VI": 1.0,   # 4f6  7F0
    "Dy VI": 8.0,   # 4f7  8S7/2
    "Ho VI": 13.0,  # 4f8  7F6
    "Er VI": 16.0,  # 4f9  6H15/2
    "Yb VI": 16.0,  # 4f11 4I15/2
}


def _add_missing_levels(levels_csv) -> list[str]:
    """Append a ground level for each species of :data:`MISSING_TOP_STAGE_G` absent from the file.

    Parameters
    ----------
    levels_csv : path of a libskit ``levels_processed.csv`` (columns ``g, Level (eV), Sp. Name``).

    Returns
    -------
    list of str
        The species that were added (none when a future database already has them).
    """
    import pandas as pd

    levels = pd.read_csv(levels_csv)
    missing = [sp for sp in MISSING_TOP_STAGE_G if sp not in set(levels["Sp. Name"])]
    if missing:
        extra = pd.DataFrame({"g": [MISSING_TOP_STAGE_G[sp] for sp in missing],
                              "Level (eV)": 0.0, "Sp. Name": missing})
        pd.concat([levels, extra], ignore_index=True).to_csv(levels_csv, index=False)
    return missing


@lru_cache(maxsize=1)
def line_database():
    import libskit

    # The bundled default lacks most Fe, Cr and Ni lines; the extended set has every NIST line.
    # It is materialised in a private temporary directory, so its level list can be completed in
    # place before libskit loads it (see MISSING_TOP_STAGE_G: otherwise Nd, Eu, Gd, Tb, Dy, Ho,
    # Er and Yb crash libskit).
    db = libskit.Database.extended()
    _add_missing_levels(db.path / "levels_processed.csv")
    db.activate()
    return db


def libskit_version() -> str:
    import libskit

    return libskit.__version__


# Elements whose libskit 0.2 model crashes the process (segmentation fault), refused up front.
UNSUPPORTED = frozenset({"H", "D", "T"})


def _fractions(composition_pct: Mapping[str, float]) -> dict[str, float]:
    bad = sorted(UNSUPPORTED & {k for k, v in composition_pct.items() if v > 0})
    if bad:
        raise InputError(f"element(s) {bad} cannot be simulated (libskit 0.2 does not support them)")
    total = sum(v for v in composition_pct.values() if v > 0)
    if total <= 0:
        raise InputError("composition has no positive component")
    # libskit wants mass ratios summing to one; zero entries would only waste time.
    return {el: v / total for el, v in composition_pct.items() if v > 0}


@lru_cache(maxsize=8)
def _vacuum_grids(instrument: Instrument) -> tuple[np.ndarray, ...]:
    import libskit

    return tuple(libskit.air_to_vacuum(g) for g in instrument.channel_grids())


def emission(composition_pct: Mapping[str, float], state: PlasmaState,
             instrument: Instrument) -> np.ndarray:
    """Line plus continuum spectral irradiance on the instrument's grid (libskit units).

    Lines come from ``calculate_spectrum`` (self-absorbed over ``state.length`` and broadened by
    each channel's own resolution); the free-free and free-bound continuum, which libskit keeps
    separate, is added as an optically thin column of the same length.
    """
    import libskit

    line_database()
    model = libskit.LTEModel(_fractions(composition_pct), float(state.temperature),
                             float(state.electron_density), float(state.length))
    parts = []
    for channel, wl_vac in zip(instrument.channels, _vacuum_grids(instrument), strict=True):
        spectrometer = libskit.GenericSpectrometer(channel.fwhm_nm / 2.3548, instrument.lorentz_nm)
        lines = spectrometer.calculate_spectrum(wl_vac, model)
        free_free, free_bound = model.calculate_continuum_emission(wl_vac)
        parts.append(np.asarray(lines) + (np.asarray(free_free) + np.asarray(free_bound)) * state.length)
    return np.concatenate(parts)


def element_shares(composition_pct: Mapping[str, float], state: PlasmaState,
                   instrument: Instrument) -> tuple[list[str], np.ndarray]:
    """Share of each pixel's line emission that comes from each element, shape (n_elements, n_points).

    Built from libskit's line list (optically thin peak emission x width, spread by the channel
    resolution); the continuum counts as nobody's. Used to let one element's local concentration
    vary shot to shot without another plasma computation.
    """
    import libskit
    from scipy.ndimage import gaussian_filter1d

    line_database()
    fractions = _fractions(composition_pct)
    elements = sorted(fractions)
    model = libskit.LTEModel(fractions, float(state.temperature), float(state.electron_density),
                             float(state.length))
    parts = []
    for channel, wl_vac in zip(instrument.channels, _vacuum_grids(instrument), strict=True):
        contrib = np.zeros((len(elements), wl_vac.size))
        lines = model.get_lines(wl_vac)
        if lines:
            ion, wl, peak, fwhm, _ = zip(*lines, strict=True)
            row = np.array([elements.index(name.split()[0]) for name in ion])
            col = np.clip(np.searchsorted(wl_vac, wl), 0, wl_vac.size - 1)
            np.add.at(contrib, (row, col), np.asarray(peak) * np.asarray(fwhm))
        step = (wl_vac[-1] - wl_vac[0]) / (wl_vac.size - 1)
        contrib = gaussian_filter1d(contrib, channel.fwhm_nm / 2.3548 / step, axis=1, mode="constant")
        parts.append(contrib)
    contrib = np.concatenate(parts, axis=1)
    total = contrib.sum(axis=0)
    floor = 1e-9 * float(total.max()) if total.size else 0.0
    return elements, (contrib / (total + floor)).astype(np.float32)
