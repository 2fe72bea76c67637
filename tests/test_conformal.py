"""Split-conformal intervals of deep models: the quantile, GLL's own sigma, scores stored with a
run, ``saca-lab predict --interval`` and ``compare --interval`` with a deep model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin

from saca_lab.cli import main
from saca_lab.compare import run_compare
from saca_lab.compare.results import interval_summary, read_csv
from saca_lab.config import load_config
from saca_lab.datasets.splits import make_split
from saca_lab.errors import InputError
from saca_lab.training.conformal import (
    COMPARE_CALIBRATION,
    SCORES_ARTIFACT,
    attach_bounds,
    conformal_quantile,
    gaussian_interval,
    is_unbounded,
    split_conformal_interval,
    study_calibration,
)
from saca_lab.training.run import run_experiment

LEVEL = 0.9
GLL_EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "gll_carbon_steel.yaml"


def _coverage_over_draws(quantile, n_cal=10, draws=4000, m=25, seed=0) -> float:
    """Mean coverage of ``pred +- quantile(scores)`` over many calibration draws: the model is
    exact and the noise N(0, 1), so scores are |N(0, 1)| and coverage is known."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(draws):
        q = quantile(np.abs(rng.normal(size=n_cal)), LEVEL)
        hits += int(np.sum(np.abs(rng.normal(size=m)) <= q))
    return hits / (draws * m)


def test_is_unbounded_when_the_rank_exceeds_the_scores():
    # 90 %: rank ceil(0.9 (n + 1)) is 9 for n = 8 (infinite) and 9 for n = 9 (finite)
    assert is_unbounded(8, 0.9) and not is_unbounded(9, 0.9)
    assert is_unbounded(7, 0.9) and not is_unbounded(7, 0.8)


def test_split_conformal_coverage_is_the_known_rank_over_n_plus_one():
    # rank ceil(11 * 0.9) = 10 of n = 10 scores: coverage is exactly 10/11 = 0.909 in
    # expectation. Over 4000 draws the spread of the mean is ~0.0013 (Beta(10, 1) per draw).
    expected, tol = 10 / 11, 0.006
    cov = _coverage_over_draws(conformal_quantile)
    assert abs(cov - expected) < tol and cov >= LEVEL, cov

    # the usual mistake, the ceil(n * level)-th score (rank 9), covers 9/11 = 0.818: the same
    # check must reject it, or the test above could not catch it
    def naive(scores, level):
        return float(np.sort(scores)[math.ceil(len(scores) * level) - 1])

    assert abs(_coverage_over_draws(naive) - expected) >= tol


def test_quantile_edges_and_agreement_with_mapie():
    assert conformal_quantile(np.arange(1.0, 10.0), LEVEL) == 9.0   # n = 9: rank 9, finite
    assert conformal_quantile(np.arange(1.0, 9.0), LEVEL) == math.inf  # n = 8: no guarantee
    with pytest.raises(InputError, match="between 0 and 1"):
        conformal_quantile([1.0], 1.0)
    lo, hi = split_conformal_interval([0.0, 5.0], np.arange(1.0, 9.0), LEVEL)
    assert np.isinf(lo).all() and np.isinf(hi).all()

    from mapie.regression import SplitConformalRegressor

    class Column0(RegressorMixin, BaseEstimator):  # a "fitted" model that predicts column 0
        def fit(self, X, y):
            self.fitted_ = True
            return self

        def predict(self, X):
            return np.asarray(X)[:, 0]

    rng = np.random.default_rng(3)
    pred_cal, pred_test = rng.normal(size=23), rng.normal(size=7)
    y_cal = pred_cal + rng.normal(size=23)
    ours = split_conformal_interval(pred_test, np.abs(y_cal - pred_cal), LEVEL)
    mapie = SplitConformalRegressor(Column0().fit(None, None), confidence_level=LEVEL, prefit=True)
    mapie.conformalize(pred_cal[:, None], y_cal)
    _, bounds = mapie.predict_interval(pred_test[:, None])
    np.testing.assert_allclose(ours[0], bounds[:, 0, 0])
    np.testing.assert_allclose(ours[1], bounds[:, 1, 0])


def test_gaussian_interval_coverage_and_its_row_beside_the_conformal_one():
    rng = np.random.default_rng(4)
    n = 4000
    mean, sigma = rng.normal(size=n), rng.uniform(0.5, 2.0, size=n)
    y = mean + sigma * rng.normal(size=n)
    preds = [{"model": "gll", "dataset": "d", "size": 10, "repeat": i % 4, "sample_id": str(i),
              "y_true": float(t), "y_pred": float(p)} for i, (t, p) in enumerate(zip(y, mean, strict=True))]
    attach_bounds(preds, mean, np.abs(rng.normal(size=40)) * 1.0, LEVEL, sigma)
    # an over-confident model: half its true sigma
    over = [dict(p) for p in preds]
    attach_bounds(over, mean, np.zeros(40), LEVEL, sigma / 2)
    rows = interval_summary(preds, "Mn", LEVEL, 5)
    assert [(r["model"], r["method"]) for r in rows] == [("gll", "split"), ("gll", "gaussian")]
    own = rows[1]
    # calibrated sigma: 0.9 within the binomial tolerance of 4000 points (sd 0.0047)
    assert own["n_pred"] == n and abs(own["coverage"] - LEVEL) < 0.02, own
    assert own["coverage_ci_lo"] < LEVEL < own["coverage_ci_hi"]
    assert own["mean_width"] == pytest.approx(2 * 1.6449 * sigma.mean(), rel=1e-3)
    assert rows[0]["n_calibration"] == 40 and rows[0]["folds"] == 0
    lo, hi = gaussian_interval(0.0, 1.0, 0.6827)
    assert (lo, hi) == (pytest.approx(-1.0, abs=1e-3), pytest.approx(1.0, abs=1e-3))
    bad = interval_summary(over, "Mn", LEVEL, 5)[1]
    assert abs(bad["coverage"] - 0.59) < 0.03  # P(|z| < 0.82) = 0.59: visibly miscalibrated


def test_study_calibration_share_from_set_items():
    assert study_calibration([]) == COMPARE_CALIBRATION
    assert study_calibration(["train.lr=0.1", "data.split.calibration=0.5"]) == 0.5
    for bad in ("0", "1.0", "half"):
        with pytest.raises(InputError, match="data.split.calibration must"):
            study_calibration([f"data.split.calibration={bad}"])


def test_calibration_samples_are_carved_from_training_samples_only():
    spec = {"train": 0.7, "val": 0.0, "test": 0.3, "seed": 5}
    plain, carved = make_split(40, spec), make_split(40, {**spec, "calibration": 0.3})
    np.testing.assert_array_equal(plain.test, carved.test)
    assert len(carved.calibration) == round(0.3 * len(plain.train))
    assert set(carved.calibration) | set(carved.train) == set(plain.train)
    assert not set(carved.calibration) & set(carved.train)
    sub = make_split(100, {**spec, "subset": 20, "subset_seed": 2, "calibration": 0.5})
    assert set(sub.calibration) <= set(make_split(100, {**spec, "subset": 20, "subset_seed": 2}).train)


def _gll_run(dataset, extra=()):
    cfg = load_config(GLL_EXPERIMENT, [f"data.dataset={dataset}", "train.max_epochs=2",
                                       "data.shots=average", "data.targets=[Mn]", *extra])
    return run_experiment(cfg, progress=False)


def test_predict_interval_round_trip_and_the_missing_scores_error(train_data, mlflow_tmp, capsys):
    dataset = train_data["slag"]  # 8 samples: 2 test, 6 training of which 3 calibrate
    result = _gll_run(dataset, ["data.split.calibration=0.5"])
    record = result.calibration
    assert record is not None and len(record["sample_ids"]) == 3
    split = json.loads(open(mlflow.artifacts.download_artifacts(
        run_id=result.run_id, artifact_path="split.json")).read())
    assert sorted(split["calibration"]) == sorted(record["sample_ids"])
    assert not set(split["calibration"]) & (set(split["train"]) | set(split["test"]))
    stored = json.loads(open(mlflow.artifacts.download_artifacts(
        run_id=result.run_id, artifact_path=SCORES_ARTIFACT)).read())
    assert stored["scores"] == record["scores"]
    np.testing.assert_allclose(stored["scores"]["Mn"], np.abs(np.subtract(
        stored["y_true"]["Mn"], stored["y_pred"]["Mn"])))

    out = mlflow_tmp / "pred.csv"
    args = ["predict", "--model", result.run_id, "--input", str(dataset), "--out", str(out)]
    assert main([*args, "--interval", "0.5"]) == 0
    pred = pd.read_csv(out)
    assert list(pred.columns) == ["sample_id", "Mn", "Mn_std", "Mn_lo", "Mn_hi"]
    q = np.sort(stored["scores"]["Mn"])[1]  # rank ceil(4 * 0.5) = 2 of 3
    np.testing.assert_allclose(pred["Mn_hi"] - pred["Mn"], q, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred["Mn"] - pred["Mn_lo"], q, rtol=1e-5, atol=1e-6)
    # the calibration samples' predictions from raw spectra are the stored ones (to the
    # difference of the cached float32 training features and predict's float64 preprocessing)
    rows = pred.set_index("sample_id").loc[stored["sample_ids"]]
    np.testing.assert_allclose(rows["Mn"], stored["y_pred"]["Mn"], rtol=1e-2)
    # the pyfunc model carries the scores: params={"interval": ...} gives the same columns
    from saca_lab.data.store import open_dataset

    ds = open_dataset(dataset)
    raw = np.asarray(ds.spectra, dtype=np.float64).mean(axis=1)
    frame = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/model").predict(
        pd.DataFrame(raw, columns=[f"{w:.5f}" for w in ds.wavelengths]), params={"interval": 0.5})
    assert list(frame.columns) == list(pred.columns[1:])
    np.testing.assert_allclose(frame.to_numpy(), pred.iloc[:, 1:].to_numpy(), rtol=1e-4, atol=1e-5)
    assert main([*args, "--interval", "0.9"]) == 0  # 3 scores: no finite 90 % interval
    assert np.isinf(pd.read_csv(out)["Mn_hi"]).all()
    capsys.readouterr()

    bare = _gll_run(dataset, ["train.max_epochs=1", "tracking.log_model=false"])
    assert bare.calibration is None
    assert main(["predict", "--model", bare.run_id, "--input", str(dataset), "--out",
                 str(mlflow_tmp / "never.csv"), "--interval", "0.9"]) == 2
    err = capsys.readouterr().err
    assert f"run {bare.run_id} has no calibration scores" in err
    assert "--set data.split.calibration=0.2" in err
    assert not (mlflow_tmp / "never.csv").exists()
    assert main(["predict", "--model", bare.checkpoint, "--input", str(dataset), "--out",
                 str(mlflow_tmp / "never.csv"), "--interval", "0.9"]) == 2
    assert "give --model RUN_ID" in capsys.readouterr().err


@pytest.mark.slow  # a study with a deep model (~40 s on 2 cores); the parts are tested above
def test_compare_interval_gives_deep_models_split_conformal_and_gll_sigma(train_data, mlflow_tmp):
    out = mlflow_tmp / "study"
    res = run_compare(train_data["slag"], "Mn", "plsr,gll", sizes="8", repeats=1, out_dir=out,
                      n_jobs=1, epochs=1, progress=False, interval=0.5,
                      overrides=["data.shots=average", "data.split.calibration=0.5"])
    rows = read_csv(out / "intervals.csv")
    assert [(r["model"], r["method"]) for r in rows] == [
        ("plsr", "cv+"), ("gll", "split"), ("gll", "gaussian")]
    split_row = rows[1]
    assert split_row["n_calibration"] == 3 and split_row["n_pred"] == 2
    preds = [p for p in read_csv(out / "predictions.csv") if p["model"] == "gll"]
    run_id = next(f["run_id"] for f in res.fits if f["model"] == "gll")
    stored = json.loads(open(mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=SCORES_ARTIFACT)).read())
    q = np.sort(stored["scores"]["Mn"])[1]
    for p in preds:
        assert p["y_hi"] - p["y_pred"] == pytest.approx(q, rel=1e-4, abs=1e-6)
        assert p["y_sigma"] > 0 and p["y_lo_sigma"] < p["y_pred"] < p["y_hi_sigma"]
        assert p["sample_id"] not in stored["sample_ids"]  # test samples never calibrate
    with pytest.raises(InputError, match="data.split.calibration must be in"):
        run_compare(train_data["slag"], "Mn", "gll", sizes="8", repeats=1, out_dir=out, n_jobs=1,
                    epochs=1, progress=False, interval=0.5,
                    overrides=["data.shots=average", "data.split.calibration=0"])


def test_too_few_scores_are_named_with_the_highest_finite_level():
    from saca_lab.training.conformal import finite_levels, unbounded_note

    assert unbounded_note(9, 0.9) is None  # rank ceil(10 * 0.9) = 9 <= 9
    note = unbounded_note(8, 0.9)
    assert note and "8 calibration scores" in note and "0.889" in note
    assert finite_levels(14) == pytest.approx(14 / 15)
    assert unbounded_note(3, 0.75) is None and unbounded_note(3, 0.76)
