"""``Predictor``: batched inference equals one spectrum at a time; the precision follows the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saca_lab.errors import InputError
from saca_lab.runtime import BF16, FP32, NATIVE_BF16_ENV
from saca_lab.training.module import SpectraRegressor
from saca_lab.training.predictor import Predictor

# the TrCSL 2D input (16,375 points folded to 125 x 131) with airPLS on: the predict path of
# the paper's model, at a few spectra
GRID = np.linspace(216.589, 942.568, 16375)
SPEC = {"input_kind": "image_2d", "airpls": {"lam": 1e4, "max_iter": 50}, "minmax": True,
        "lines": None, "half_width": 5, "image_shape": [125, 131]}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    module = SpectraRegressor("trcsl", {"n_outputs": 2}, ["Mn", "Cr"], [0.5, 1.0], [0.2, 0.3], SPEC,
                              GRID.tolist())
    # an untrained network answers nearly the same for every input (measured 7e-8 of the
    # output between these spectra); larger weights make its predictions depend on the
    # spectrum (2e-3), so that a mix-up of rows would show
    with torch.no_grad():
        for layer in module.model.modules():
            if isinstance(layer, torch.nn.Linear):
                layer.weight.normal_(0.0, 1.0)
            elif isinstance(layer, torch.nn.Conv2d):
                layer.weight.mul_(3.0)
    path = tmp_path_factory.mktemp("ckpt") / "trcsl.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


@pytest.fixture(scope="module")
def raw():
    rng = np.random.default_rng(1)
    x = (GRID - GRID[0]) / np.ptp(GRID)

    def lines():
        return sum(h * np.exp(-0.5 * ((GRID - c) / 0.05) ** 2)
                   for c, h in zip(rng.uniform(220, 940, 40), rng.lognormal(0, 1, 40), strict=True))

    # five spectra with their own lines and backgrounds (so airPLS iterates differently on each)
    return np.stack([100 * (1 + s * np.sin(3 * x + s) ** 2) + 50 * lines()
                     + rng.normal(0, 0.5, GRID.size) for s in range(5)])


def test_batched_predictions_equal_one_spectrum_at_a_time(checkpoint, raw):
    predictor = Predictor(checkpoint, precision=FP32)
    batched = predictor.predict(GRID, raw)
    assert batched.shape == (5, 2) and np.isfinite(batched).all()
    one_by_one = np.concatenate([predictor.predict(GRID, y) for y in raw])
    # the features are bit-identical (airPLS treats each spectrum on its own); the network's
    # fp32 kernels may sum in another order at another batch size
    np.testing.assert_array_equal(
        predictor._features(GRID, raw), np.concatenate([predictor._features(GRID, y) for y in raw]))
    tol = 1e-6 * np.abs(batched).max()
    np.testing.assert_allclose(batched, one_by_one, rtol=0, atol=tol)
    np.testing.assert_allclose(predictor.predict(GRID, raw, batch_size=2), batched, rtol=0, atol=tol)
    # the rows differ by far more than that tolerance, so a mix-up of rows would show
    assert np.ptp(batched, axis=0).min() > 100 * tol


def test_auto_precision_follows_the_cpu(checkpoint, raw, monkeypatch):
    monkeypatch.setenv(NATIVE_BF16_ENV, "0")
    plain = Predictor(checkpoint)
    assert plain.precision == FP32 and not plain.module.hparams.channels_last
    reference = plain.predict(GRID, raw)
    np.testing.assert_array_equal(reference, Predictor(checkpoint, precision=FP32).predict(GRID, raw))

    monkeypatch.setenv(NATIVE_BF16_ENV, "1")
    native = Predictor(checkpoint)
    # bf16 autocast, and the 2D model in channels_last as training would run it
    assert native.precision == BF16 and native.module.hparams.channels_last
    conv = next(m for m in native.module.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    fast = native.predict(GRID, raw)
    assert fast.dtype == np.float32
    # bf16 keeps 8 bits of mantissa: predictions agree to bf16 rounding, not to fp32's
    np.testing.assert_allclose(fast, reference, rtol=0, atol=2e-2 * np.abs(reference).max())
    one_by_one = np.concatenate([native.predict(GRID, y) for y in raw])
    np.testing.assert_allclose(one_by_one, fast, rtol=0, atol=2e-2 * np.abs(reference).max())


def test_bad_precision_names_the_field(checkpoint):
    with pytest.raises(InputError, match="precision"):
        Predictor(checkpoint, precision="fp8")
