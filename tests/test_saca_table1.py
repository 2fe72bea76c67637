"""SACA Table 1 scoring (issue 10 §5): references, RMSE, and verdicts a constant cannot win."""

from __future__ import annotations

import numpy as np
import pytest

from saca_lab.reproduce.saca import (
    constant_predictions,
    plsr_predictions,
    precision_recall,
    scores,
    verdict,
)


def test_a_constant_predictor_is_scored_as_one():
    rng = np.random.default_rng(0)
    y_train = np.column_stack([rng.uniform(60, 75, 30), np.where(rng.random(30) < 0.5, 0.0, 0.2)])
    y_test = np.column_stack([rng.uniform(60, 75, 10), np.where(np.arange(10) < 5, 0.0, 0.3)])
    const = constant_predictions(y_train, len(y_test))
    np.testing.assert_allclose(const, np.repeat(y_train.mean(0, keepdims=True), 10, axis=0))
    s = scores(y_test, const)
    # an always-present prediction: recall 1, precision = share present; R2 <= 0
    assert s["recall"][1] == 1.0 and s["precision"][1] == pytest.approx(0.5)
    assert (s["r2"] <= 0).all()
    np.testing.assert_allclose(s["rmse"], np.sqrt(((y_test - const) ** 2).mean(0)))
    # high precision and recall do not make a row agree when the RMSE does not beat the constant
    assert verdict(1.0, 1.0, (0.99, 0.99), rmse=s["rmse"][0], constant_rmse=s["rmse"][0]) == "differs"
    assert verdict(1.0, 1.0, (0.99, 0.99), rmse=0.5 * s["rmse"][0], constant_rmse=s["rmse"][0]) == "agrees"
    assert verdict(0.9, 1.0, (0.99, 0.99), rmse=0.0, constant_rmse=1.0) == "differs"


def test_scores_match_precision_recall_and_r2():
    truth = np.array([[0.5, 0.0], [0.005, 0.2], [0.3, 0.3], [0.0, 0.0]])
    pred = np.array([[0.4, 0.02], [0.02, 0.1], [0.001, 0.3], [0.0, 0.0]])
    s = scores(truth, pred, limit=0.01)
    p, r = precision_recall(truth, pred, limit=0.01)
    np.testing.assert_array_equal(s["precision"], p)
    np.testing.assert_array_equal(s["recall"], r)
    ss = ((truth - truth.mean(0)) ** 2).sum(0)
    np.testing.assert_allclose(s["r2"], 1 - ((truth - pred) ** 2).sum(0) / ss)
    assert np.isnan(scores(np.ones((3, 1)), np.ones((3, 1)))["r2"][0])  # constant truth


def test_absent_median_is_the_median_prediction_over_samples_without_the_element():
    truth = np.array([[0.0, 0.2], [0.0, 0.3], [0.0, 0.1], [0.4, 0.5]])
    pred = np.array([[0.03, 0.2], [0.01, 0.3], [0.02, 0.1], [0.35, 0.5]])
    s = scores(truth, pred, limit=0.01)
    assert s["absent_median"][0] == pytest.approx(0.02)  # over the three zeros, not the 0.35
    assert np.isnan(s["absent_median"][1])  # the element is in every sample
    # above the limit: every absent sample is called present, so precision is the prevalence
    assert s["precision"][0] == pytest.approx(0.25)


def test_plsr_reference_beats_the_constant_on_linear_spectra():
    rng = np.random.default_rng(1)
    y = rng.uniform(0, 1, (40, 2))
    basis = rng.normal(size=(2, 60))
    x = y @ basis + 0.01 * rng.normal(size=(40, 60))
    groups = np.arange(40)
    pred = plsr_predictions(x[:30], y[:30], groups[:30], x[30:], max_components=5)
    assert (scores(y[30:], pred)["rmse"] < scores(y[30:], constant_predictions(y[:30], 10))["rmse"]).all()


def test_predictions_are_averaged_over_the_items_a_sample_was_reduced_to():
    from saca_lab.reproduce.saca import predict_samples

    items = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)  # 2 samples x 3 items x 4 points
    pred = predict_samples(lambda x: x[:, :2], items)
    np.testing.assert_allclose(pred, items[:, :, :2].mean(axis=1))
