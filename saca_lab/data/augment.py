"""SACA's training-time augmentation, applied to whole batches: jitter, shift, intensity scale."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import default_collate


@dataclass
class Augment:
    """Random perturbations of training batches (SACA Sec. 2: spectral jittering, wavelength
    shifting, intensity scaling).

    Parameters
    ----------
    jitter : standard deviation of added Gaussian noise, relative to each spectrum's max.
    shift_px : largest wavelength shift in pixels (uniform integer in [-shift_px, shift_px]).
    scale : standard deviation of a multiplicative intensity factor around 1.
    """

    jitter: float = 0.0
    shift_px: int = 0
    scale: float = 0.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        flat = x.reshape(n, -1)
        if self.shift_px:
            # One shift per batch keeps this a single vectorised roll; batches differ.
            shift = int(torch.randint(-self.shift_px, self.shift_px + 1, ()).item())
            flat = torch.roll(flat, shifts=shift, dims=1)
        if self.scale:
            flat = flat * (1.0 + self.scale * torch.randn(n, 1))
        if self.jitter:
            peak = flat.abs().amax(dim=1, keepdim=True)
            flat = flat + self.jitter * peak * torch.randn_like(flat)
        return flat.reshape(x.shape)

    def collate(self, batch):
        x, *rest = default_collate(batch)
        return [self(x), *rest]
