"""Calibration transfer: DS/PDS recover a known instrument transform, slope/bias a known bias,
the estimators' scikit-learn contract, and the compare study with a source dataset."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from saca_lab.baselines import SOURCE_BASELINES, list_transfer_baselines, make_baseline
from saca_lab.baselines.calibration_transfer import (
    DSPLS,
    PDSPLS,
    DirectStandardization,
    PiecewiseDirectStandardization,
    SlopeBiasPLS,
    SourceTargetPLS,
)
from saca_lab.cli import main
from saca_lab.compare import run_compare
from saca_lab.compare.plan import pair_samples, source_rows
from saca_lab.compare.results import read_csv
from saca_lab.data.store import open_dataset
from saca_lab.errors import InputError

N_CHANNELS = 240
CENTRES = (40, 95, 150, 205)  # four lines whose intensities vary independently


def _spectra(rng, n: int, noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Source-like spectra: four Gaussian lines on a flat background (rank 4 plus an offset)."""
    grid = np.arange(N_CHANNELS)
    profiles = np.stack([np.exp(-0.5 * ((grid - c) / 2.5) ** 2) for c in CENTRES])
    amps = rng.uniform(0.5, 2.0, size=(n, len(CENTRES)))
    return amps @ profiles + 0.1 + noise * rng.normal(size=(n, N_CHANNELS)), amps


def _instrument_transform() -> tuple[np.ndarray, np.ndarray]:
    """A known band-diagonal map (shift by one channel, broadening, a response varying along the
    spectrum) and an additive offset: target spectrum = source @ F + offset."""
    grid = np.arange(N_CHANNELS)
    kernel = {0: 0.15, 1: 0.45, 2: 0.25, 3: 0.15}   # centre of mass moved by 1.4 channels
    gain = 0.8 + 0.3 * np.sin(grid / 40)
    F = np.zeros((N_CHANNELS, N_CHANNELS))
    for j in grid:
        for shift, w in kernel.items():
            if j + shift < N_CHANNELS:
                F[j, j + shift] = w * gain[j + shift]
    return F, 0.05 + 0.03 * grid / N_CHANNELS


def _rel_err(a, b) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(b ** 2)))


@pytest.mark.parametrize("noise", [0.0, 2e-3])
def test_pds_and_ds_recover_a_known_instrument_transform(noise):
    rng = np.random.default_rng(0)
    F, offset = _instrument_transform()
    source_std, _ = _spectra(rng, 10, noise)
    target_std = source_std @ F + offset
    source_new, _ = _spectra(rng, 30, noise)
    target_new = source_new @ F + offset
    untransferred = _rel_err(target_new, source_new)
    assert untransferred > 0.3  # the instruments differ: an identity map fails the tolerance
    tol = 1e-6 if noise == 0 else 0.02
    pds = PiecewiseDirectStandardization(window_length=4, n_components=5)
    pds.fit(target_std, X_source=source_std)
    assert pds.n_components_ == 5
    assert _rel_err(pds.transform(target_new), source_new) < tol
    ds = DirectStandardization().fit(target_std, X_source=source_std)
    assert _rel_err(ds.transform(target_new), source_new) < tol
    # the offset is what the centring is for: DS on uncentred spectra misses it on new spectra
    shifted = ds.transform(target_new + 0.0)
    assert np.allclose(shifted.mean(axis=0), source_new.mean(axis=0), atol=0.05)


def test_pds_caps_its_components_at_what_the_standards_allow():
    rng = np.random.default_rng(1)
    X, _ = _spectra(rng, 3)
    pds = PiecewiseDirectStandardization(window_length=2, n_components=9).fit(X * 1.1, X_source=X)
    assert pds.n_components_ == 2  # three centred standards span two directions
    assert np.allclose(pds.transform(X * 1.1), X, atol=1e-8)


def _linear_source(rng, n, noise=0.0):
    X, amps = _spectra(rng, n, noise)
    return X, amps @ np.array([0.8, -0.3, 0.5, 0.2]) + 1.0  # y: a linear function of the lines


def test_slope_bias_recovers_a_known_linear_bias():
    rng = np.random.default_rng(2)
    X_source, y_source = _linear_source(rng, 40)
    X_target, y_master = _linear_source(rng, 8)
    slope, bias = 1.3, -0.4
    est = SlopeBiasPLS(max_components=6).fit(X_target, bias + slope * y_master,
                                             X_source=X_source, y_source=y_source)
    assert est.slope_ == pytest.approx(slope, abs=1e-6)
    assert est.bias_ == pytest.approx(bias, abs=1e-6)
    X_new, y_new = _linear_source(rng, 10)
    assert np.allclose(est.predict(X_new), bias + slope * y_new, atol=1e-6)
    # bias only: with slope=False, or too few target samples for a line
    for kwargs, n in (({"slope": False}, 8), ({}, 2)):
        only = SlopeBiasPLS(max_components=6, **kwargs).fit(
            X_target[:n], y_master[:n] + 0.25, X_source=X_source, y_source=y_source)
        assert only.slope_ == 1.0 and only.bias_ == pytest.approx(0.25, abs=1e-6)


def test_standardized_pls_predicts_target_instrument_spectra():
    rng = np.random.default_rng(3)
    F, offset = _instrument_transform()
    X_source, y_source = _linear_source(rng, 30, noise=1e-3)
    standards = np.arange(6)
    X_target = X_source @ F + offset
    X_new, y_new = _linear_source(rng, 20, noise=1e-3)
    master_alone = DSPLS().fit(X_target[standards], X_source=X_source, y_source=y_source,
                               X_source_standards=X_source[standards]).master_
    raw_rmse = np.sqrt(np.mean((master_alone.predict(X_new @ F + offset).ravel() - y_new) ** 2))
    for est in (PDSPLS(window_length=4, pds_components=4), DSPLS()):
        est.fit(X_target[standards], X_source=X_source, y_source=y_source,
                X_source_standards=X_source[standards])
        rmse = np.sqrt(np.mean((est.predict(X_new @ F + offset) - y_new) ** 2))
        assert rmse < 0.05 < raw_rmse, (type(est).__name__, rmse, raw_rmse)


def test_source_target_pls_pools_both_domains_and_keeps_twins_together():
    rng = np.random.default_rng(4)
    X_source, y_source = _linear_source(rng, 20)
    X_target, y_target = _linear_source(rng, 5)
    est = SourceTargetPLS(max_components=6).fit(X_target, y_target, X_source=X_source,
                                                y_source=y_source)
    assert est.n_source_ == 20 and est.n_components_ >= 4
    X_new, y_new = _linear_source(rng, 10)
    assert np.allclose(est.predict(X_new), y_new, atol=1e-6)
    with pytest.raises(ValueError, match="both groups and source_groups"):
        est.fit(X_target, y_target, X_source=X_source, y_source=y_source, groups=np.arange(5))


ESTIMATORS = [PiecewiseDirectStandardization(), DirectStandardization(), PDSPLS(), DSPLS(),
              SlopeBiasPLS(), SourceTargetPLS()]


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_sklearn_contract_subset(est):
    # scikit-learn's full check_estimator calls fit(X, y) without the source data these
    # estimators require, so only the checks that do not fit run; the rest is checked by hand
    name = type(est).__name__
    check_parameters_default_constructible(name, est)
    check_no_attributes_set_in_init(name, clone(est))
    check_get_params_invariance(name, clone(est))
    check_set_params(name, clone(est))
    rng = np.random.default_rng(5)
    X_source, y_source = _linear_source(rng, 12)
    X, y = X_source[:6] * 1.1, y_source[:6]
    method = "transform" if hasattr(est, "transform") else "predict"
    with pytest.raises(NotFittedError):
        getattr(clone(est), method)(X)
    if hasattr(est, "transform"):
        kwargs = {"X_source": X_source[:6]}
    elif type(est) in (PDSPLS, DSPLS):
        kwargs = {"X_source": X_source, "y_source": y_source, "X_source_standards": X_source[:6]}
    else:
        kwargs = {"X_source": X_source, "y_source": y_source}
    params = est.get_params()
    fitted = clone(est).fit(X, y, **kwargs)
    assert fitted.get_params() == params  # fit does not change parameters
    assert fitted.n_features_in_ == N_CHANNELS
    assert getattr(fitted, method)(X).shape[0] == 6
    with pytest.raises(ValueError, match="features"):
        getattr(fitted, method)(X[:, :-1])
    missing = {k: v for k, v in kwargs.items() if k != "X_source"}
    with pytest.raises(ValueError, match="X_source"):
        clone(est).fit(X, y, **missing)


def test_registry_names_every_transfer_baseline():
    assert set(list_transfer_baselines()) == set(SOURCE_BASELINES)
    assert make_baseline("plsr_pds", window_length=3).window_length == 3
    assert isinstance(make_baseline("plsr_slope_bias"), SlopeBiasPLS)


# --- the compare study with a source dataset ------------------------------------------------


@pytest.fixture(scope="module")
def second_instrument(train_data, tmp_path_factory):
    """The carbon steels of ``train_data`` (6 samples, seed 1) measured on ``trcsl-b``."""
    from saca_lab.spectra.simulate import preset_config, simulate_dataset

    out = tmp_path_factory.mktemp("trcsl-b") / "carbon-steel-b"
    return simulate_dataset(preset_config("carbon-steel", n_samples=6, n_shots=2, seed=1,
                                          instrument="trcsl-b"), out, n_jobs=1,
                            progress=False).path


def test_same_seed_on_another_instrument_pairs_every_sample(train_data, second_instrument):
    a, b = open_dataset(train_data["carbon-steel"]), open_dataset(second_instrument)
    assert a.provenance["instrument"]["name"] == "trcsl"
    assert b.provenance["instrument"]["name"] == "trcsl-b"
    assert not np.allclose(a.wavelengths, b.wavelengths)
    assert np.array_equal(pair_samples(b, a), np.arange(6))
    assert (pair_samples(b, open_dataset(train_data["slag"])) == -1).all()
    # a draw's test samples never reach the source calibration set
    assert np.array_equal(source_rows(np.arange(6), np.array([1, 4]), 6), [0, 2, 3, 5])
    assert np.array_equal(source_rows(np.full(6, -1), np.array([1, 4]), 8), np.arange(8))


def test_compare_transfer_baselines_on_two_instruments(train_data, second_instrument, mlflow_tmp):
    out = mlflow_tmp / "xfer"
    run_compare(second_instrument, "Mn", "plsr,plsr_ds,plsr_slope_bias,plsr_source_target",
                sizes="5,6", repeats=2, out_dir=out, n_jobs=1, progress=False,
                source_dataset=train_data["carbon-steel"])
    fits = read_csv(out / "fits.csv")
    assert len(fits) == 4 * 2 * 2
    for f in fits:
        params = json.loads(f["params"])
        if f["model"] == "plsr":
            assert "source" not in params
            continue
        assert params["source"] == "carbon-steel"
        assert params["n_source"] == 6 - f["n_test"]  # the test samples' twins are left out
        assert np.isfinite(f["rmse"])
    assert all("slope" in json.loads(f["params"]) for f in fits if f["model"] == "plsr_slope_bias")
    by_model = {}
    for p in read_csv(out / "predictions.csv"):
        by_model.setdefault(p["model"], set()).add((p["size"], p["repeat"], p["sample_id"]))
    assert len({frozenset(v) for v in by_model.values()}) == 1  # the same test samples


def test_compare_pds_on_line_windows_from_the_cli(train_data, second_instrument, mlflow_tmp,
                                                  capsys):
    # PDS on the full 16,375 channels takes tens of seconds; on line windows it is quick
    out = mlflow_tmp / "pds"
    argv = ["compare", "--dataset", str(second_instrument), "--source-dataset",
            str(train_data["carbon-steel"]), "--element", "Mn", "--models", "plsr,plsr_pds",
            "--sizes", "5", "--repeats", "1", "--features", "lines", "--set", "data.lines=paper",
            "--set", "plsr_pds.window_length=3", "--out", str(out), "--jobs", "1", "--quiet"]
    assert main(argv) == 0
    fits = read_csv(out / "fits.csv")
    assert [f["model"] for f in fits] == ["plsr", "plsr_pds"]
    pds = json.loads(fits[1]["params"])
    assert pds["features"] == "lines" and pds["n_source"] == 6 - fits[1]["n_test"]
    assert "plsr_pds" in capsys.readouterr().out


@pytest.mark.parametrize(("models", "source", "message"), [
    ("plsr,plsr_ds", None, "plsr_ds: calibration transfer needs --source-dataset"),
    ("plsr", "carbon-steel", "--source-dataset is read by the calibration-transfer models only"),
    ("plsr_pds", "slag", r"6 of 6 samples .* are not in --source-dataset"),
    ("plsr_slope_bias", "stainless", "'Mn' is not a target of --source-dataset|channels"),
])
def test_bad_source_arguments_exit_2(train_data, second_instrument, stainless_data, mlflow_tmp,
                                     capsys, models, source, message):
    paths = {"carbon-steel": train_data["carbon-steel"], "slag": train_data["slag"],
             "stainless": stainless_data}
    argv = ["compare", "--dataset", str(second_instrument), "--element", "Mn", "--models", models,
            "--sizes", "5", "--out", str(mlflow_tmp / "never")]
    if source:
        argv += ["--source-dataset", str(paths[source])]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert not (mlflow_tmp / "never").exists()


def test_too_small_a_source_is_refused(train_data, second_instrument, mlflow_tmp):
    with pytest.raises(InputError, match="fewer than 2 remain"):
        run_compare(second_instrument, "Mn", "plsr_slope_bias", sizes="6", repeats=1,
                    source_dataset=_subset(train_data["carbon-steel"], 1), progress=False,
                    out_dir=mlflow_tmp / "never")
    assert not (mlflow_tmp / "never").exists()


def _subset(path, n):
    """A dataset of the first ``n`` samples (the store's own writer)."""
    from saca_lab.data.store import DatasetWriter

    ds = open_dataset(path)
    out = path.parent / f"{path.name}-first{n}"
    if not out.exists():
        with DatasetWriter(out, ds.wavelengths, n, ds.shape[1]) as w:
            w.append(np.asarray(ds.spectra[:n]))
            w.add_table("targets", ds.sample_ids[:n], {k: v[:n] for k, v in ds.targets.items()})
            w.close({"kind": "subset"})
    return out
