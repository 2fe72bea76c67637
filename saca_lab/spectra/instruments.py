"""Spectrometers: wavelength grids, resolution, response curves and detector constants.

An :class:`Instrument` is a chain of :class:`Channel` s (e.g. the three CCD channels of the
TrCSL spectrometer). Each channel has its own uniform air-wavelength grid, Gaussian resolution
and a response curve that falls off towards its edges, so a seam shows where two channels meet,
as in real multi-channel LIBS spectrometers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from saca_lab.errors import InputError


@dataclass(frozen=True)
class Channel:
    """One detector channel.

    Parameters
    ----------
    start_nm, stop_nm : air wavelength of the first point and the point after the last
        (the last channel includes ``stop_nm``).
    n_points : number of pixels.
    fwhm_nm : Gaussian instrumental FWHM.
    gain : relative sensitivity of the channel (grating x detector efficiency at its centre).
    edge_rolloff : fraction of the channel width over which the response falls towards the edges.
    edge_floor : response at the very edge, relative to the centre.
    dark_offset : detector offset in counts (removed by baseline correction, not by the detector).
    tilt : linear change of response across the channel (e.g. CCD quantum efficiency rising
        out of the UV): response x ``1 + tilt * (x - 0.5)`` for ``x`` from 0 to 1.
    """

    start_nm: float
    stop_nm: float
    n_points: int
    fwhm_nm: float
    gain: float = 1.0
    edge_rolloff: float = 0.15
    edge_floor: float = 0.55
    dark_offset: float = 0.0
    tilt: float = 0.0


@dataclass(frozen=True)
class Instrument:
    """A spectrometer.

    Parameters
    ----------
    name : registry name.
    channels : channels in increasing wavelength.
    counts_per_unit : converts libskit spectral irradiance to detector counts at gain 1.
    read_noise : readout noise, counts rms.
    photon_gain : counts per photo-electron; shot-noise variance is ``counts * photon_gain``.
    full_scale : ADC saturation in counts.
    jitter_nm : shot-to-shot wavelength jitter (standard deviation).
    lorentz_nm : Lorentzian half width added to the Gaussian instrument profile.
    """

    name: str
    channels: tuple[Channel, ...]
    counts_per_unit: float = 1e-10
    read_noise: float = 6.0
    photon_gain: float = 1.0
    full_scale: float = 65535.0
    jitter_nm: float = 0.006
    lorentz_nm: float = 0.002

    def channel_grids(self) -> list[np.ndarray]:
        """Air-wavelength grid of each channel."""
        last = len(self.channels) - 1
        return [np.linspace(c.start_nm, c.stop_nm, c.n_points, endpoint=(i == last))
                for i, c in enumerate(self.channels)]

    def wavelengths(self) -> np.ndarray:
        """The full air-wavelength grid (nm), strictly increasing."""
        return np.concatenate(self.channel_grids())

    def channel_index(self) -> np.ndarray:
        """Channel number of every pixel."""
        return np.concatenate([np.full(c.n_points, i) for i, c in enumerate(self.channels)])

    def response(self) -> np.ndarray:
        """Relative spectral response of every pixel (channel gain x edge roll-off)."""
        parts = []
        for c, grid in zip(self.channels, self.channel_grids(), strict=True):
            x = (grid - c.start_nm) / (c.stop_nm - c.start_nm)
            # Distance from the nearer edge, in units of the roll-off zone.
            d = np.clip(np.minimum(x, 1.0 - x) / c.edge_rolloff, 0.0, 1.0)
            edge = c.edge_floor + (1.0 - c.edge_floor) * np.sin(0.5 * np.pi * d) ** 2
            parts.append(c.gain * (1.0 + c.tilt * (x - 0.5)) * edge)
        return np.concatenate(parts)

    def dark_offsets(self) -> np.ndarray:
        return np.concatenate([np.full(c.n_points, c.dark_offset) for c in self.channels])

    @property
    def n_points(self) -> int:
        return sum(c.n_points for c in self.channels)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> Instrument:
        return dataclasses.replace(self, **changes)


def _trcsl() -> Instrument:
    # Three CCD channels over 216.589-942.568 nm, 16,375 points in all (TrCSL Sec. 2.1).
    # Channel edges and resolutions are typical of such Czerny-Turner triples.
    return Instrument(
        name="trcsl",
        channels=(
            Channel(216.589, 361.2, 5458, fwhm_nm=0.075, gain=0.4, tilt=1.4, dark_offset=180.0),
            Channel(361.2, 604.8, 5458, fwhm_nm=0.12, gain=1.0, dark_offset=210.0),
            Channel(604.8, 942.568, 5459, fwhm_nm=0.17, gain=0.8, tilt=-0.6, dark_offset=195.0),
        ),
        counts_per_unit=1.2e-10,
        photon_gain=0.25,
    )


#: How the second TrCSL-type unit (``trcsl-b``) differs from ``trcsl``: wavelength calibration
#: offset (nm, every channel), resolution (FWHM factor), and per-channel gain, tilt and dark offset.
TRCSL_B_OFFSET_NM = 0.05
TRCSL_B_FWHM_FACTOR = 1.4
TRCSL_B_CHANNELS = ({"gain": 0.55, "tilt": 1.0, "dark_offset": 160.0},
                    {"gain": 0.9, "tilt": 0.3, "dark_offset": 230.0},
                    {"gain": 0.6, "tilt": -0.9, "dark_offset": 205.0})


def _trcsl_b() -> Instrument:
    # A second spectrometer of the TrCSL design, for calibration transfer (PDS/DS) studies: the
    # same pixel counts, so pixel i of both units sees nearly the same line, as with two units of
    # one model, but a wavelength offset of 0.05 nm (0.8-1.9 pixels over the three channels, the
    # shift PDS windows are meant to absorb), a 1.4x broader instrument profile, another
    # response curve and dark offsets, and a 20 % lower overall sensitivity.
    base = _trcsl()
    channels = tuple(
        dataclasses.replace(c, start_nm=c.start_nm + TRCSL_B_OFFSET_NM,
                            stop_nm=c.stop_nm + TRCSL_B_OFFSET_NM,
                            fwhm_nm=c.fwhm_nm * TRCSL_B_FWHM_FACTOR, edge_floor=0.45, **changes)
        for c, changes in zip(base.channels, TRCSL_B_CHANNELS, strict=True))
    return base.replace(name="trcsl-b", channels=channels,
                        counts_per_unit=base.counts_per_unit * 0.8)


def _saca() -> Instrument:
    # Spark OES as in SACA: 300-700 nm at 0.1 nm (4,001 points), one channel.
    return Instrument(
        name="saca",
        channels=(Channel(300.0, 700.0, 4001, fwhm_nm=0.2, gain=1.0, edge_rolloff=0.08,
                          edge_floor=0.7, dark_offset=100.0),),
        counts_per_unit=1.2e-10,
        jitter_nm=0.01,
    )


INSTRUMENTS = {"trcsl": _trcsl, "trcsl-b": _trcsl_b, "saca": _saca}


def get_instrument(name: str, **overrides) -> Instrument:
    """Instrument by registry name, with optional field overrides."""
    if name not in INSTRUMENTS:
        raise InputError(f"unknown instrument {name!r}; choose from {sorted(INSTRUMENTS)}")
    inst = INSTRUMENTS[name]()
    return inst.replace(**overrides) if overrides else inst
