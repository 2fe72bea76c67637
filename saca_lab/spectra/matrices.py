"""Sample matrices: how a steel, a slag or a rock turns into a plasma.

Matrix effects come from here. A metal and an oxide pellet absorb the laser differently, so their
plasmas differ in temperature, electron density and ablated mass; the same Mn % therefore gives
different Mn line intensities in slag and steel. Within a matrix, easily ionised elements (Na, K,
Ca, Mg) cool the plasma, a second, composition-dependent matrix effect.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from saca_lab.errors import InputError
from saca_lab.spectra.plasma import PlasmaState

EASILY_IONISED = ("Na", "K", "Ca", "Mg", "Li")


@dataclass(frozen=True)
class Matrix:
    """Plasma conditions and background of one kind of sample.

    Parameters
    ----------
    name : registry name.
    balance : element that fills the composition to 100 % (Fe for steel, O for oxides).
    temperature : nominal plasma temperature (K) of a sample with no easily ionised elements.
    electron_density : nominal electron density (m^-3) at ``temperature``.
    length : plasma length (m), sets the optical depth and so the self-absorption.
    ablation : ablated mass relative to steel (scales all emission).
    eie_cooling : relative temperature drop per unit mass fraction of easily ionised elements.
    sample_temperature_rsd : sample-to-sample spread of the plasma temperature (surface, density).
    shot_temperature_rsd, shot_mass_rsd : shot-to-shot spreads of temperature and ablated mass.
    ne_temperature_exponent : ne follows T as ``ne0 * (T/T0)**exponent`` (Saha coupling).
    heterogeneity : shot-to-shot RSD of an element's local concentration at 1 %; it scales as
        ``1/sqrt(c)`` (sampling statistics of segregates and inclusions), so trace lines scatter more.
    background : matrix background shape: ``"arch"``, ``"plateau"`` or ``"none"``.
    background_center_nm, background_width_nm : where the background sits.
    background_level : its height relative to the 99.9th percentile of the line emission.
    ambient : fraction of emission from the surrounding atmosphere (air lines: N, O, Ar, H).
    """

    name: str
    balance: str
    temperature: float
    electron_density: float
    length: float
    ablation: float = 1.0
    eie_cooling: float = 0.25
    sample_temperature_rsd: float = 0.02
    shot_temperature_rsd: float = 0.012
    shot_mass_rsd: float = 0.035
    ne_temperature_exponent: float = 1.5
    heterogeneity: float = 0.02
    background: str = "none"
    background_center_nm: float = 0.0
    background_width_nm: float = 0.0
    background_level: float = 0.0
    ambient: float = 0.0

    def sample_state(self, composition_pct: Mapping[str, float], z: float) -> PlasmaState:
        """Nominal plasma state of one sample; ``z`` is its standard-normal sample effect."""
        eie = sum(composition_pct.get(el, 0.0) for el in EASILY_IONISED) / 100.0
        t = self.temperature * (1.0 - self.eie_cooling * eie) * (1.0 + self.sample_temperature_rsd * z)
        return self.state_at(t)

    def state_at(self, temperature: float) -> PlasmaState:
        ne = self.electron_density * (temperature / self.temperature) ** self.ne_temperature_exponent
        return PlasmaState(float(temperature), float(ne), self.length)

    def heterogeneity_rsd(self, composition_pct: Mapping[str, float], elements: list[str]) -> np.ndarray:
        """Per-element RSD of local concentration, capped at 25 %."""
        c = np.array([max(composition_pct.get(el, 0.0), 1e-6) for el in elements])
        return np.minimum(self.heterogeneity / np.sqrt(c), 0.25)

    def background_shape(self, wavelengths: np.ndarray) -> np.ndarray:
        """Unit-height background over the grid (before the instrument response)."""
        wl = np.asarray(wavelengths)
        if self.background == "none":
            return np.zeros_like(wl)
        c, w = self.background_center_nm, self.background_width_nm
        if self.background == "arch":
            # Molecular band emission (CaO/CaOH orange bands in Ca-rich slag), an arch at c.
            return np.clip(1.0 - ((wl - c) / w) ** 2, 0.0, None) ** 1.5
        if self.background == "plateau":
            # Unresolved Fe I blends and FeO bands: a continuous shelf from c - w to c + w.
            edge = 0.08 * w
            return 1.0 / (1.0 + np.exp(-(wl - (c - w)) / edge)) / (1.0 + np.exp((wl - (c + w)) / edge))
        raise InputError(f"matrix {self.name}: unknown background {self.background!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> Matrix:
        return dataclasses.replace(self, **changes)


MATRICES: dict[str, Matrix] = {
    "steel": Matrix(
        name="steel", balance="Fe", temperature=10500.0, electron_density=1.2e23, length=1.0e-3,
        ablation=1.0, background="plateau", background_center_nm=550.0,
        background_width_nm=50.0, background_level=0.06, ambient=0.04,
    ),
    "slag": Matrix(
        name="slag", balance="O", temperature=9800.0, electron_density=7e22, length=1.5e-3,
        ablation=0.55, background="arch", background_center_nm=625.0, background_width_nm=32.0,
        background_level=0.12, ambient=0.06, heterogeneity=0.03,
    ),
    "stainless-spark": Matrix(
        name="stainless-spark", balance="Fe", temperature=9000.0, electron_density=5e22,
        length=0.8e-3, ablation=1.0, sample_temperature_rsd=0.01, shot_temperature_rsd=0.015,
        shot_mass_rsd=0.02, heterogeneity=0.004,
    ),
    "rock": Matrix(
        name="rock", balance="O", temperature=10000.0, electron_density=1e23, length=1.0e-3,
        ablation=0.6, ambient=0.05,
    ),
}

# Dry air, for the atmospheric N, O and Ar lines. H alpha (from humidity) is left out:
# libskit 0.2 crashes on hydrogen (see plasma.UNSUPPORTED).
AIR = {"N": 75.5, "O": 23.1, "Ar": 1.29}


def get_matrix(name: str, **overrides) -> Matrix:
    if name not in MATRICES:
        raise InputError(f"unknown matrix {name!r}; choose from {sorted(MATRICES)}")
    m = MATRICES[name]
    return m.replace(**overrides) if overrides else m
