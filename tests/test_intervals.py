"""CV+ prediction intervals: coverage at a known noise level, folds by sample, and the study."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import LinearRegression

from saca_lab.baselines import PLSRCV
from saca_lab.baselines.intervals import cv_plus_interval, interval_scores
from saca_lab.cli import main
from saca_lab.compare import run_compare
from saca_lab.compare.results import read_csv

LEVEL = 0.9
NOISE = 0.5


def _draw(rng, n):
    X = rng.normal(size=(n, 4))
    return X, X @ np.array([1.0, -2.0, 0.5, 3.0]) + NOISE * rng.normal(size=n)


def test_coverage_at_a_known_noise_level_over_many_draws():
    rng = np.random.default_rng(0)
    ys, los, his = [], [], []
    for draw in range(120):
        X, y = _draw(rng, 45)
        lo, hi = cv_plus_interval(LinearRegression(), X[:30], y[:30], X[30:], LEVEL,
                                  random_state=draw)
        ys.append(y[30:]), los.append(lo), his.append(hi)
    s = interval_scores(np.concatenate(ys), np.concatenate(los), np.concatenate(his))
    assert s["n_pred"] == 1800 and s["n_infinite"] == 0
    # CV+ guarantees at least 1 - 2a and is close to 1 - a in practice (Barber et al. 2021)
    assert 0.86 <= s["coverage"] <= 0.95, s
    assert s["coverage_ci_lo"] < s["coverage"] < s["coverage_ci_hi"]
    # the width of an oracle interval is 2 z sigma = 1.645 (sigma 0.5); CV+ adds the spread of
    # the fitted models, a few tens of per cent with 30 samples and 4 features
    oracle = 2 * 1.6449 * NOISE
    assert oracle < s["mean_width"] < 1.4 * oracle, s


def test_too_few_samples_give_infinite_intervals_scored_as_misses():
    rng = np.random.default_rng(1)
    X, y = _draw(rng, 12)
    lo, hi = cv_plus_interval(PLSRCV(max_components=3), X[:8], y[:8], X[8:], LEVEL)
    assert np.isinf(lo).all() and np.isinf(hi).all()  # ceil(0.9 * 9) = 9 > 8
    lo, hi = cv_plus_interval(PLSRCV(max_components=3), X[:9], y[:9], X[9:], LEVEL)
    assert np.isfinite(lo).all() and np.isfinite(hi).all() and (hi > lo).all()
    s = interval_scores([0.0, 1.0, 2.0, 3.0], [-1.0, 1.5, -np.inf, 2.0], [1.0, 2.0, np.inf, 4.0])
    assert s["coverage"] == 0.5 and s["n_infinite"] == 1  # the infinite one is not covered
    assert s["mean_width"] == pytest.approx((2.0 + 0.5 + 2.0) / 3)
    with pytest.raises(ValueError, match="level"):
        cv_plus_interval(LinearRegression(), X, y, X, 1.0)


class _Spy(RegressorMixin, BaseEstimator):
    """Records which groups (column 0) each fitted copy saw and which rows it predicted."""

    calls: list = []

    def fit(self, X, y):
        self.groups_ = frozenset(X[:, 0].astype(int).tolist())
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        _Spy.calls.append((self.groups_, X[:, 0].astype(int).tolist()))
        return np.full(len(X), self.mean_)


def test_shots_of_one_sample_never_calibrate_each_other():
    rng = np.random.default_rng(2)
    n_samples, shots = 12, 3
    groups = np.repeat(np.arange(n_samples), shots)
    X = np.column_stack([groups, rng.normal(size=(groups.size, 2))])
    y = rng.normal(size=groups.size)
    X_test = np.column_stack([np.full(4, 1000), rng.normal(size=(4, 2))])
    _Spy.calls = []
    cv_plus_interval(_Spy(), X, y, X_test, LEVEL, groups=groups, folds=4)
    every = frozenset(range(n_samples))
    calibration = [(fitted, rows) for fitted, rows in _Spy.calls
                   if fitted != every and all(r < 1000 for r in rows)]
    assert len(calibration) == 4
    calibrated = []
    for fitted, rows in calibration:
        assert not fitted & set(rows)  # no sample calibrates a model fitted on its own shots
        assert all(rows.count(g) == shots for g in set(rows))  # whole samples, every shot
        calibrated += sorted(set(rows))
    assert sorted(calibrated) == list(range(n_samples))  # each sample calibrates exactly once


def test_compare_reports_coverage_and_width(train_data, mlflow_tmp):
    out = mlflow_tmp / "iv"
    res = run_compare(train_data["slag"], "Mn", "plsr,pca_pls", sizes="8", repeats=2,
                      out_dir=out, n_jobs=1, progress=False, interval=0.5)
    rows = read_csv(out / "intervals.csv")
    assert [r["model"] for r in rows] == ["plsr", "pca_pls"]
    for r, mem in zip(rows, res.intervals, strict=True):
        assert r["coverage"] == pytest.approx(mem["coverage"]) and r["n_pred"] == mem["n_pred"]
    for r in rows:
        assert r["n_pred"] == 2 * 2 and r["n_fits"] == 2 and r["folds"] == 5
        assert r["n_infinite"] == 0 and r["mean_width"] > 0
        assert r["coverage_ci_lo"] <= r["coverage"] <= r["coverage_ci_hi"]
    preds = read_csv(out / "predictions.csv")
    assert all(p["y_lo"] < p["y_hi"] for p in preds)
    by_model = {m: sum(p["y_lo"] <= p["y_true"] <= p["y_hi"] for p in preds if p["model"] == m)
                for m in ("plsr", "pca_pls")}
    assert by_model == {r["model"]: round(r["coverage"] * r["n_pred"]) for r in rows}


def test_compare_interval_too_high_for_six_training_samples(train_data, mlflow_tmp, capsys):
    out = mlflow_tmp / "iv9"
    base = ["compare", "--dataset", str(train_data["slag"]), "--element", "Mn", "--models",
            "plsr", "--sizes", "8", "--repeats", "1", "--jobs", "1", "--quiet"]
    assert main([*base, "--interval", "0.9", "--out", str(out)]) == 0
    row = read_csv(out / "intervals.csv")[0]
    assert row["n_infinite"] == row["n_pred"] == 2 and row["coverage"] == 0.0
    assert math.isnan(row["mean_width"])
    assert "infinite" in capsys.readouterr().out
    assert main([*base, "--interval", "1.5", "--out", str(mlflow_tmp / "never")]) == 2
    assert "--interval must be a level between 0 and 1" in capsys.readouterr().err
