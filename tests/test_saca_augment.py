"""SACA augmentation (issue 10 §1): sub-pixel shifts, edge padding, noise in standardised units."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saca_lab.datasets.augment import Augment, shift_spectra
from saca_lab.errors import InputError


def _line(length: int = 200, centre: float = 100.0, fwhm_px: float = 2.0) -> torch.Tensor:
    x = torch.arange(length, dtype=torch.float64)
    return torch.exp(-0.5 * ((x - centre) / (fwhm_px / 2.3548)) ** 2)


def _centroid(y: torch.Tensor) -> float:
    x = torch.arange(y.shape[-1], dtype=y.dtype)
    w = y.clamp(min=0)
    return float((w * x).sum() / w.sum())


@pytest.mark.parametrize("shift", [0.5, -0.5, 0.3, 1.7])
def test_sub_pixel_shift_moves_a_line_centroid_by_the_requested_amount(shift):
    line = _line()[None]
    moved = shift_spectra(line, torch.tensor([shift]))
    assert _centroid(moved[0]) - _centroid(line[0]) == pytest.approx(shift, abs=1e-6)
    # integral kept: interpolation neither creates nor destroys signal away from the edges
    assert float(moved.sum()) == pytest.approx(float(line.sum()), rel=1e-9)


def test_shift_is_per_spectrum_and_pads_edges_instead_of_wrapping():
    x = torch.zeros(2, 50, dtype=torch.float64)
    x[:, 0] = 5.0  # a bright first pixel: a roll would carry it to the other end
    x[:, -1] = 7.0
    out = shift_spectra(x, torch.tensor([-3.0, 3.0]))
    # shifted left: the last value is held at the right end, the first pixel leaves
    assert torch.all(out[0, -4:] == 7.0) and out[0, 0] == 0.0
    # shifted right: the first value is held at the left end, nothing wraps to the right end
    assert torch.all(out[1, :4] == 5.0) and torch.all(out[1, -3:] == 0.0)


def test_augment_converts_nm_with_the_grid_step_and_keeps_spectra_finite():
    torch.manual_seed(0)
    aug = Augment.from_config({"shift_nm": 0.05, "jitter": 0.05}, step_nm=0.1)
    x = torch.rand(64, 1, 300)
    shifted = aug.shift(x)
    assert shifted.shape == x.shape and torch.isfinite(shifted).all()
    # 0.05 nm on a 0.1 nm grid is at most half a pixel: each value lies between its neighbours'
    lo = torch.minimum(x, torch.roll(x, 1, -1)).minimum(torch.roll(x, -1, -1))
    hi = torch.maximum(x, torch.roll(x, 1, -1)).maximum(torch.roll(x, -1, -1))
    inner = (slice(None), slice(None), slice(1, -1))
    assert torch.all(shifted[inner] >= lo[inner] - 1e-6) and torch.all(shifted[inner] <= hi[inner] + 1e-6)
    assert not torch.equal(shifted[0], shifted[1] - x[1] + x[0])  # shifts differ per spectrum
    z = torch.zeros(20_000)
    noise = aug.noise(z)
    assert float(noise.std()) == pytest.approx(0.05, rel=0.05)


def test_training_step_applies_augmentation_after_standardisation():
    from saca_lab.training.module import SpectraRegressor

    module = SpectraRegressor("resnet_dcnn_small", {"n_outputs": 2, "head_type": "regression"}, ["a", "b"],
                              [0, 0], [1, 1], {}, input_mean=np.zeros(64), input_std=np.full(64, 1e-3))
    seen = []
    module.model.forward = lambda z: (seen.append(z), torch.zeros(len(z), 2))[1]
    x = torch.zeros(4, 64)
    module._standardised(x, Augment(jitter=0.5))
    # noise of 0.5 standardised units, not 0.5 / 1e-3 as noise added before the scaling would be
    assert 0.3 < float(seen[0].std()) < 0.7


def test_bad_augment_config_names_the_field():
    with pytest.raises(InputError, match="shift_px"):
        Augment.from_config({"shift_px": 2}, 0.1)
    with pytest.raises(InputError, match="data.augment.jitter"):
        Augment.from_config({"jitter": -1}, 0.1)
    assert Augment.from_config({"shift_nm": 0.05, "jitter": 0.05}, 0.1).shift_nm == 0.05
