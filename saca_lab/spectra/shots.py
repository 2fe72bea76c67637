"""Shot-to-shot variation derived from a few plasma states per sample.

A libskit spectrum costs ~0.3 s, so each sample is computed at ``len(NODES)`` plasma temperatures
(in units of the shot-to-shot temperature spread) and every shot is a log-quadratic interpolation
between them: line intensities depend on temperature through Boltzmann and Saha factors, which are
close to exponential, so interpolating log-intensity keeps line ratios right between the nodes.
On top come the ablated mass, the matrix background, the atmosphere, the detector (response,
offset, photon and readout noise, saturation) and a small wavelength jitter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from saca_lab.spectra.instruments import Instrument
from saca_lab.spectra.matrices import Matrix

# Plasma temperature nodes, in standard deviations of the shot-to-shot temperature spread.
NODES = (-2.0, 0.0, 2.0)
Z_CLIP = 2.5
BACKGROUND_SHOT_RSD = 0.12
OFFSET_DRIFT_COUNTS = 2.0


def lagrange_weights(z: np.ndarray, nodes=NODES) -> np.ndarray:
    """Quadratic Lagrange interpolation weights, shape (len(z), len(nodes))."""
    z = np.asarray(z, dtype=np.float64)[:, None]
    nodes = np.asarray(nodes, dtype=np.float64)
    w = np.ones((z.shape[0], nodes.size))
    for j, xj in enumerate(nodes):
        for m, xm in enumerate(nodes):
            if m != j:
                w[:, j] *= (z[:, 0] - xm) / (xj - xm)
    return w


@dataclass
class ShotParameters:
    """Per-shot physical parameters, recorded with the dataset."""

    temperature: np.ndarray
    mass: np.ndarray
    jitter_nm: np.ndarray
    background: np.ndarray
    local_concentration: np.ndarray  # (n_shots, n_elements) relative to the bulk

    def as_dict(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ("temperature", "mass", "jitter_nm", "background")}


def _lognormal(rng: np.random.Generator, rsd, size) -> np.ndarray:
    rsd = np.asarray(rsd, dtype=np.float64)
    return np.exp(rsd * rng.standard_normal(size) - 0.5 * rsd * rsd)


def draw_shot_parameters(rng: np.random.Generator, n_shots: int, nominal_temperature: float,
                         matrix: Matrix, instrument: Instrument,
                         heterogeneity_rsd: np.ndarray) -> tuple[np.ndarray, ShotParameters]:
    """Draw each shot's temperature offset ``z`` (clipped) and its physical parameters.

    ``heterogeneity_rsd`` holds one RSD per element (see ``Matrix.heterogeneity_rsd``).
    """
    z = np.clip(rng.standard_normal(n_shots), -Z_CLIP, Z_CLIP)
    mass = _lognormal(rng, matrix.shot_mass_rsd, n_shots)
    jitter = instrument.jitter_nm * rng.standard_normal(n_shots)
    bg = _lognormal(rng, BACKGROUND_SHOT_RSD, n_shots)
    local = _lognormal(rng, heterogeneity_rsd, (n_shots, len(heterogeneity_rsd)))
    temperature = nominal_temperature * (1.0 + matrix.shot_temperature_rsd * z)
    return z, ShotParameters(temperature, mass, jitter, bg, local)


def derive_shots(node_spectra: np.ndarray, shares: np.ndarray, ambient_nodes: np.ndarray,
                 z: np.ndarray, params: ShotParameters, matrix: Matrix, instrument: Instrument,
                 wavelengths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Detector counts of every shot, float32 (n_shots, n_points).

    Parameters
    ----------
    node_spectra : (len(NODES), n_points) emission of the sample at the node temperatures.
    shares : (n_elements, n_points) share of each pixel's emission per element
        (``plasma.element_shares``), to apply the local concentrations.
    ambient_nodes : (len(NODES), n_points) emission of the atmosphere at the same nodes.
    z, params : from :func:`draw_shot_parameters`.
    """
    weights = lagrange_weights(z)
    floor = 1e-12 * float(node_spectra.max())
    log_nodes = np.log(node_spectra + floor)
    emission = np.exp(weights @ log_nodes) - floor
    # First order in the local-concentration change: lines of an element scale with it.
    emission *= 1.0 + (params.local_concentration - 1.0) @ shares
    emission *= (matrix.ablation * params.mass)[:, None]
    if matrix.ambient > 0:
        emission += matrix.ambient * np.clip(weights @ ambient_nodes, 0.0, None)
    if matrix.background_level > 0:
        # Scaled by the sample's own line emission, so the background/line ratio is matrix-typical.
        height = matrix.background_level * np.percentile(node_spectra[len(NODES) // 2], 99.9)
        shape = matrix.background_shape(wavelengths)
        emission += (height * matrix.ablation * params.mass * params.background)[:, None] * shape
    counts = emission * (instrument.counts_per_unit * instrument.response())
    # Wavelength jitter: first-order shift, y(l + d) ~ y(l) + d * dy/dl (d is a small fraction of a pixel).
    counts += params.jitter_nm[:, None] * np.gradient(counts, wavelengths, axis=1)
    np.clip(counts, 0.0, None, out=counts)
    sigma = np.sqrt(instrument.read_noise ** 2 + instrument.photon_gain * counts)
    counts += sigma * rng.standard_normal(counts.shape)
    counts += instrument.dark_offsets() + OFFSET_DRIFT_COUNTS * rng.standard_normal((counts.shape[0], 1))
    np.clip(counts, 0.0, instrument.full_scale, out=counts)
    return counts.astype(np.float32)
