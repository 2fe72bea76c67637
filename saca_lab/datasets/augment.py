"""SACA's training-time augmentation (Sec. 2: wavelength shifting, spectral jittering), done so
that it does not destroy the spectrum.

On the ``saca`` grid (0.1 nm) a line's FWHM is about 2 pixels, so an integer-pixel ``roll``
halves a line's peak pixel and wraps the spectrum's ends around, and noise added before the
per-pixel standardisation is blown up on quiet pixels (whose training std is tiny). Here:

* the **shift** is sub-pixel, drawn per spectrum (uniform in ``[-shift_nm, shift_nm]``), applied
  by linear interpolation with the edge values held (no wrap-around), in the raw (min-max)
  space, where it models the instrument's own wavelength jitter;
* the **jitter** is Gaussian noise in *standardised* units, i.e. a fraction of each pixel's
  training standard deviation, added after the per-pixel standardisation;
* there is no intensity scaling: per-spectrum min-max normalisation already removes a spectrum's
  overall intensity, so a random scale after it only makes spectra no instrument can produce.

:class:`Augment` is held by the data module (``data.augment``) and applied by
:class:`~saca_lab.training.module.SpectraRegressor` in its training step, because the jitter has
to come after the module's input standardisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from saca_lab.errors import InputError

#: Fields ``data.augment`` accepts.
FIELDS = ("shift_nm", "jitter")


def shift_spectra(x: torch.Tensor, shift_px: torch.Tensor) -> torch.Tensor:
    """Shift each spectrum along its last axis by a (fractional) number of pixels.

    ``out[..., i] = x[..., i - s]`` with linear interpolation between pixels; positions before
    the first or after the last pixel take the edge value (the spectrum is padded, not wrapped).
    A positive shift moves features to higher indices (longer wavelengths).

    Parameters
    ----------
    x : Tensor of shape (B, L) or (B, 1, L)
    shift_px : Tensor of shape (B,)
        Shift of each spectrum, in pixels; need not be an integer.

    Returns
    -------
    Tensor of the shape of ``x``
    """
    flat = x.reshape(x.shape[0], -1)
    length = flat.shape[1]
    pos = torch.arange(length, device=x.device, dtype=flat.dtype)[None, :] - shift_px[:, None].to(flat.dtype)
    pos = pos.clamp(0, length - 1)
    left = pos.floor().long().clamp(max=length - 2) if length > 1 else pos.floor().long()
    w = (pos - left).to(flat.dtype)
    right = (left + 1).clamp(max=length - 1)
    out = flat.gather(1, left) * (1 - w) + flat.gather(1, right) * w
    return out.reshape(x.shape)


@dataclass
class Augment:
    """Random perturbations of training spectra.

    Parameters
    ----------
    shift_nm : float, default=0.0
        Largest wavelength shift (nm); each spectrum gets its own, uniform in
        ``[-shift_nm, shift_nm]``, sub-pixel (interpolated).
    jitter : float, default=0.0
        Standard deviation of the added noise in units of each pixel's training standard
        deviation (applied to standardised inputs).
    step_nm : float, default=0.1
        Grid step, to convert ``shift_nm`` to pixels (the data module sets it from the dataset).
    """

    shift_nm: float = 0.0
    jitter: float = 0.0
    step_nm: float = 0.1

    @classmethod
    def from_config(cls, config: dict, step_nm: float) -> Augment:
        """From ``data.augment`` (``{shift_nm:, jitter:}``), with clear errors for old fields."""
        unknown = set(config) - set(FIELDS)
        if unknown:
            hint = (" (shift_px and scale were replaced: shift_nm is a sub-pixel shift in nm, "
                    "jitter a fraction of each pixel's std; see saca_lab.datasets.augment)"
                    if unknown & {"shift_px", "scale"} else "")
            raise InputError(f"data.augment: unknown field(s) {sorted(unknown)}; expected "
                             f"{list(FIELDS)}{hint}")
        values = {}
        for key in FIELDS:
            v = config.get(key, 0.0)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0:
                raise InputError(f"data.augment.{key} must be a number >= 0, got {v!r}")
            values[key] = float(v)
        if not step_nm > 0:
            raise InputError(f"data.augment: the wavelength grid step must be positive, got {step_nm}")
        return cls(step_nm=float(step_nm), **values)

    def shift(self, x: torch.Tensor) -> torch.Tensor:
        """Raw (pre-standardisation) spectra, each shifted by its own random sub-pixel amount."""
        if not self.shift_nm:
            return x
        px = self.shift_nm / self.step_nm
        shifts = (torch.rand(x.shape[0], device=x.device) * 2 - 1) * px
        return shift_spectra(x, shifts)

    def noise(self, z: torch.Tensor) -> torch.Tensor:
        """Standardised spectra with Gaussian noise of ``jitter`` standard deviations added."""
        return z + self.jitter * torch.randn_like(z) if self.jitter else z

