"""The in-memory form of a spectral dataset, shared by the simulator, the readers and the store."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from saca_lab.errors import InputError


@dataclass
class SpectralTable:
    """Spectra of ``n_samples`` samples, ``n_shots`` shots each, on one wavelength grid.

    Attributes
    ----------
    wavelengths : (n_points,) float64, nm in air, strictly increasing.
    spectra : (n_samples, n_shots, n_points) float32.
    sample_ids : one string per sample, unique.
    targets : species name (element symbol or oxide formula) -> (n_samples,) mass %.
        May be empty for unlabelled spectra.
    source : where the data came from (file names, preset), for the manifest.
    """

    wavelengths: np.ndarray
    spectra: np.ndarray
    sample_ids: list[str]
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        self.wavelengths = np.asarray(self.wavelengths, dtype=np.float64)
        if self.spectra.ndim == 2:
            self.spectra = self.spectra[:, None, :]
        if self.spectra.ndim != 3:
            raise InputError(f"{self.source}: spectra must be 2D or 3D, got {self.spectra.shape}")
        n, _, p = self.spectra.shape
        if self.wavelengths.shape != (p,):
            raise InputError(
                f"{self.source}: {p} intensity columns but {self.wavelengths.size} wavelengths"
            )
        if len(self.sample_ids) != n:
            raise InputError(f"{self.source}: {n} spectra but {len(self.sample_ids)} sample ids")
        if len(set(self.sample_ids)) != n:
            raise InputError(f"{self.source}: sample ids are not unique")
        for name, values in self.targets.items():
            if np.shape(values) != (n,):
                raise InputError(f"{self.source}: target {name!r} has {np.size(values)} values, expected {n}")

    @property
    def n_samples(self) -> int:
        return self.spectra.shape[0]

    @property
    def n_shots(self) -> int:
        return self.spectra.shape[1]

    @property
    def n_points(self) -> int:
        return self.spectra.shape[2]
