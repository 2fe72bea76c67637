"""GLL (TrCSL ref. 35): the mean + std model, its Gaussian-NLL training and the std outputs."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from saca_lab.cli import main
from saca_lab.config import load_config
from saca_lab.errors import InputError
from saca_lab.models import create_model, list_models, model_info
from saca_lab.models.gll import MeanLogVar, split_mean_logvar
from saca_lab.training.module import SpectraRegressor
from saca_lab.training.predictor import Predictor
from saca_lab.training.run import run_experiment

EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "gll_carbon_steel.yaml"
TARGETS = ["C", "Cu", "Mn", "Cr"]


@pytest.mark.parametrize(("name", "length"), [("gll", 143), ("gll_spectrum", 300)])
def test_model_contract_mean_and_positive_std(name, length):
    assert name in list_models() and model_info(name).description
    torch.manual_seed(0)
    model = create_model(name, n_outputs=3)
    assert model.predicts_std and model.input_kind == model_info(name).input_kind
    x = torch.randn(5, length)
    model.train()
    mean, logvar = split_mean_logvar(model(x))
    assert mean.shape == logvar.shape == (5, 3)
    assert torch.all(torch.exp(0.5 * logvar) > 0)
    model.eval()
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(model.head(model.features(x)), out)
        torch.testing.assert_close(model(x.unsqueeze(1)), out)
    # the log-variance rows start at zero: training starts from the targets' own variance
    torch.testing.assert_close(split_mean_logvar(out)[1], torch.zeros(5, 3), atol=1e-2, rtol=0)
    config = json.loads(json.dumps(model.config))
    assert create_model(name, **config).config == model.config


def test_logvar_bound_is_smooth_and_bad_arguments_are_input_errors():
    raw = torch.tensor([[0.0, 0.0, -100.0, 100.0]], requires_grad=True)
    out = MeanLogVar(-10.0, 5.0)(raw)
    assert out[0, 0] == 0.0 and -10.0 <= out[0, 2] < -9.9 and 4.9 < out[0, 3] <= 5.0
    out[0, 2:].sum().backward()
    assert torch.all(raw.grad[0, 2:] > 0)  # never stuck at a bound
    with pytest.raises(InputError, match="143 points, got 100"):
        create_model("gll")(torch.rand(2, 100))
    for name, overrides in [("gll", {"n_bins": 64}), ("gll_spectrum", {"in_length": 143}),
                            ("gll", {"hidden": []}), ("gll", {"hidden": [8, 0]}),
                            ("gll", {"dropout": 1.0}), ("gll", {"activation": "swish"}),
                            ("gll", {"logvar_min": 2.0, "logvar_max": 1.0}),
                            ("gll", {"input_kind": "image_2d"})]:
        with pytest.raises(InputError):
            create_model(name, **overrides)


def _module(n_in: int, y: np.ndarray, **config) -> SpectraRegressor:
    return SpectraRegressor("gll", {"in_length": n_in, "n_outputs": y.shape[1], **config},
                            [f"t{j}" for j in range(y.shape[1])], y.mean(0).tolist(),
                            y.std(0).tolist(), feature_spec={}, lr=0.01, lr_step=12)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_nll_training_learns_where_the_noise_is_larger():
    """t0 = 2 x0 + noise of sd 0.05 where x1 < 0 and 0.5 where x1 > 0; t1 has constant noise."""
    pl.seed_everything(0, verbose=False)
    gen = np.random.default_rng(0)

    def draw(n):
        x = gen.uniform(-1, 1, (n, 8)).astype(np.float32)
        sd0 = np.where(x[:, 1] > 0, 0.5, 0.05)
        y = np.stack([2 * x[:, 0] + sd0 * gen.standard_normal(n),
                      x[:, 2] - x[:, 3] + 0.2 * gen.standard_normal(n)], 1).astype(np.float32)
        return torch.from_numpy(x), torch.from_numpy(y)

    x, y = draw(2048)
    module = _module(8, y.numpy(), dropout=0.0)
    # MSE training would leave the zero-initialised log-variance rows at zero: one std everywhere
    with torch.no_grad():
        z = module.model(x[:4])
        torch.testing.assert_close(module.training_step((x[:4], y[:4]), 0),
                                   torch.nn.functional.gaussian_nll_loss(
                                       split_mean_logvar(z)[0], (y[:4] - module.target_mean)
                                       / module.target_std, split_mean_logvar(z)[1].exp()))
    trainer = pl.Trainer(max_epochs=20, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, deterministic=True)
    trainer.fit(module, DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True))

    xt, yt = draw(2000)
    module.eval()
    with torch.no_grad():
        mean, std = module.predict_with_std(xt)
        torch.testing.assert_close(module(xt), mean)
    # a smooth network cannot follow the step at x1 = 0 exactly: judge it away from the step
    noisy, quiet = xt[:, 1] > 0.3, xt[:, 1] < -0.3
    s_noisy, s_quiet = std[noisy, 0].median().item(), std[quiet, 0].median().item()
    assert s_noisy > 3 * s_quiet, (s_noisy, s_quiet)
    assert 0.3 < s_noisy < 0.7 and s_quiet < 0.12
    noisy = xt[:, 1] > 0
    ratio = std[noisy, 1].mean().item() / std[~noisy, 1].mean().item()
    assert 0.7 < ratio < 1.4 and 0.12 < std[:, 1].mean().item() < 0.3

    metrics = trainer.test(module, DataLoader(TensorDataset(xt, yt), batch_size=500), verbose=False)[0]
    mse = (((mean - yt) / module.target_std) ** 2).mean().item()
    assert metrics["test_loss"] == pytest.approx(mse, rel=1e-4)  # MSE of the means, as other models
    assert np.isfinite(metrics["test_nll"]) and metrics["test_nll"] < 0
    for j in range(2):  # a well-specified problem: close to the Gaussian 68 % / 95 %
        assert 0.55 < metrics[f"test_coverage1_t{j}"] < 0.8
        assert 0.85 < metrics[f"test_coverage2_t{j}"] <= 1.0
    assert metrics["test_pred_std_t0"] == pytest.approx(std[:, 0].mean().item(), rel=1e-4)


def test_predict_with_std_refuses_a_model_without_std():
    module = SpectraRegressor("trcnn_1d", {"n_outputs": 1}, ["Mn"], [0.0], [1.0], feature_spec={})
    assert not module.predicts_std
    with pytest.raises(ValueError, match="does not predict a standard deviation"):
        module.predict_with_std(torch.rand(2, 143))


def test_experiment_logs_calibration_and_predict_writes_std_columns(train_data, mlflow_tmp):
    dataset = train_data["carbon-steel"]
    cfg = load_config(EXPERIMENT, [f"data.dataset={dataset}", "train.max_epochs=3", "data.shots=5"])
    assert cfg["model"]["name"] == "gll" and cfg["data"]["targets"] == TARGETS
    assert cfg["transfer"] is None and cfg["data"]["split"]["test"] == 0.3
    result = run_experiment(cfg, progress=False)
    test = result.test
    # data.lines: nist finds no detectable, unblended C line in steel: C is left out
    targets = result.targets
    assert targets == [t for t in TARGETS if t != "C"]
    for key in ("pred_std", "coverage1", "coverage2"):
        values = [test[f"test_{key}_{t}"] for t in targets]
        assert np.isfinite(values).all() and np.isfinite(test[f"test_{key}_mean"])
    assert all(test[f"test_pred_std_{t}"] > 0 for t in targets)
    assert all(0 <= test[f"test_coverage1_{t}"] <= test[f"test_coverage2_{t}"] <= 1 for t in targets)
    assert np.isfinite(test["test_nll"]) and np.isfinite(test["test_r2_mean"])
    run = mlflow.search_runs(experiment_names=["gll_carbon_steel"]).iloc[0]
    assert np.isfinite(run["metrics.test_coverage2_mean"]) and np.isfinite(run["metrics.test_nll"])
    # the 7:3 split has no validation part: no validation loop, so no val_nll (never a test score)
    assert "metrics.val_nll" not in run or not np.isfinite(run["metrics.val_nll"])

    out = mlflow_tmp / "pred.csv"
    assert main(["predict", "--model", result.run_id, "--input", str(dataset), "--out", str(out)]) == 0
    pred = pd.read_csv(out)
    assert list(pred.columns) == ["sample_id", *[c for t in targets for c in (t, f"{t}_std")]]
    assert len(pred) == 6 and np.isfinite(pred.iloc[:, 1:].to_numpy()).all()
    assert (pred[[f"{t}_std" for t in targets]] > 0).all().all()

    from saca_lab.data.store import open_dataset

    ds = open_dataset(dataset)
    raw = np.asarray(ds.spectra, dtype=np.float64).mean(axis=1)
    predictor = Predictor(result.checkpoint)
    mean, std = predictor.predict_with_std(ds.wavelengths, raw)
    np.testing.assert_allclose(pred[targets].to_numpy(), mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(predictor.predict(ds.wavelengths, raw), mean)
    model = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/model")
    frame = model.predict(pd.DataFrame(raw[:3], columns=[f"{w:.5f}" for w in ds.wavelengths]))
    assert list(frame.columns) == list(pred.columns[1:])
    np.testing.assert_allclose(frame[[f"{t}_std" for t in targets]].to_numpy(), std[:3], rtol=1e-5)
