"""CV+ intervals of deep models (``compare --conformal cv+``): the calibration folds of the
training samples, the CV+ bounds against a brute-force reference and at a known noise level,
and one tiny study."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import mlflow
import numpy as np
import pytest

from saca_lab.cli import main
from saca_lab.compare.results import read_csv
from saca_lab.config import load_config
from saca_lab.datasets.splits import make_split
from saca_lab.errors import InputError
from saca_lab.training.conformal import cv_plus_bounds

LEVEL = 0.9
SPEC = {"train": 0.7, "val": 0.0, "test": 0.3, "seed": 5}


def test_calibration_folds_are_whole_training_samples_never_test_ones():
    spec = {**SPEC, "subset": 20, "subset_seed": 2}
    plain = make_split(100, spec)
    parts = [make_split(100, {**spec, "calibration": {"folds": 5, "fold": k}}) for k in range(5)]
    calibrated = []
    for part in parts:
        np.testing.assert_array_equal(part.test, plain.test)
        assert not set(part.calibration) & set(part.train)
        assert set(part.calibration) | set(part.train) == set(plain.train)
        assert len(part.calibration) in (2, 3)  # 14 training samples in 5 folds
        calibrated += part.calibration.tolist()
    # each training sample calibrates exactly once over the K runs, and nothing else does
    assert sorted(calibrated) == plain.train.tolist()
    # the folds are shuffled (unshuffled, fold 0 would be the first three training samples)
    assert not np.array_equal(parts[0].calibration, plain.train[:len(parts[0].calibration)])


@pytest.mark.parametrize("bad, message", [
    ({"folds": 1, "fold": 0}, "data.split.calibration.folds must be an integer >= 2"),
    ({"folds": 3, "fold": 3}, r"data.split.calibration.fold must be an integer in \[0, 3\)"),
    ({"folds": 15, "fold": 0}, "data.split.calibration: 15 folds need at least 15 training "
                               "samples, the split has 14"),
])
def test_bad_calibration_folds_name_the_field(bad, message):
    with pytest.raises(InputError, match=message):
        make_split(20, {**SPEC, "calibration": bad})


def test_config_schema_takes_a_share_or_a_fold():
    path = "experiments/gll_carbon_steel.yaml"
    cfg = load_config(path, ["data.split.calibration={folds: 5, fold: 4}"])
    assert cfg["data"]["split"]["calibration"] == {"folds": 5, "fold": 4}
    for bad, message in (("{folds: 5, fold: 5}", "data.split.calibration.fold must be < "),
                         ("{folds: 5}", "data.split.calibration.fold is required"),
                         ("{folds: 1, fold: 0}", "data.split.calibration.folds must be an "
                                                 "integer >= 2"),
                         ("1.5", r"data.split.calibration must be a share in \[0, 0.9\] or "
                                 r"\{folds: K, fold: k\}")):
        with pytest.raises(InputError, match=message):
            load_config(path, [f"data.split.calibration={bad}"])


def _brute_force(fold_pred, residuals, fold_of, level):
    """Barber et al.'s definition, literally: sorted lists and exact ranks."""
    n, alpha = len(residuals), 1 - Fraction(level).limit_denominator(1000)
    lo_rank, hi_rank = math.floor(alpha * (n + 1)), math.ceil((1 - alpha) * (n + 1))
    lo, hi = [], []
    for j in range(fold_pred.shape[1]):
        minus = sorted(fold_pred[fold_of[i], j] - residuals[i] for i in range(n))
        plus = sorted(fold_pred[fold_of[i], j] + residuals[i] for i in range(n))
        lo.append(minus[lo_rank - 1] if lo_rank >= 1 else -math.inf)
        hi.append(plus[hi_rank - 1] if hi_rank <= n else math.inf)
    return np.array(lo), np.array(hi)


@pytest.mark.parametrize("n, k, level", [(7, 3, 0.75), (9, 3, 0.9), (10, 5, 0.9), (8, 2, 0.9),
                                         (12, 4, 0.5), (19, 5, 0.95)])
def test_cv_plus_bounds_equal_the_definition(n, k, level):
    rng = np.random.default_rng(n * 100 + k)
    fold_pred = rng.normal(size=(k, 6))
    residuals = np.abs(rng.normal(size=n))
    fold_of = rng.permutation(np.arange(n) % k)
    lo, hi = cv_plus_bounds(fold_pred, residuals, fold_of, level)
    ref_lo, ref_hi = _brute_force(fold_pred, residuals, fold_of, level)
    np.testing.assert_array_equal(lo, ref_lo)
    np.testing.assert_array_equal(hi, ref_hi)
    assert np.isinf(lo).all() == (n < 9 and level == 0.9)  # ceil(0.9 * 9) = 9 > 8


def test_cv_plus_bounds_refuse_bad_input():
    with pytest.raises(InputError, match="between 0 and 1"):
        cv_plus_bounds(np.zeros((2, 1)), np.ones(4), [0, 1, 0, 1], 1.0)
    with pytest.raises(ValueError, match="fold models"):
        cv_plus_bounds(np.zeros((2, 1)), np.ones(4), [0, 1, 2, 1], 0.5)


def _linear_cv_plus(rng, n, k, m, level, rank_shift=0):
    """One draw: y = 2 x + N(0, 1); fold models are least-squares lines fitted without their
    fold. Returns the test truths and CV+ bounds (``rank_shift`` moves both ranks inwards: a
    wrong rank the coverage check must notice)."""
    x, x_test = rng.uniform(-1, 1, n), rng.uniform(-1, 1, m)
    y, y_test = 2 * x + rng.normal(size=n), 2 * x_test + rng.normal(size=m)
    fold_of = rng.permutation(np.arange(n) % k)
    fold_pred, residuals = np.empty((k, m)), np.empty(n)
    for f in range(k):
        fit = fold_of != f
        slope, icpt = np.polyfit(x[fit], y[fit], 1)
        fold_pred[f] = slope * x_test + icpt
        residuals[~fit] = np.abs(y[~fit] - (slope * x[~fit] + icpt))
    if rank_shift:  # the ceil(n * level)-th value instead of ceil((n + 1) * level)-th
        mu = fold_pred[fold_of]
        r = math.ceil(n * level)
        return (y_test, np.sort(mu - residuals[:, None], axis=0)[n - r],
                np.sort(mu + residuals[:, None], axis=0)[r - 1])
    return (y_test, *cv_plus_bounds(fold_pred, residuals, fold_of, level))


def _coverage(level, draws=1500, rank_shift=0, n=20, k=5, m=10):
    rng = np.random.default_rng(7)
    hits, widths = 0, []
    for _ in range(draws):
        y, lo, hi = _linear_cv_plus(rng, n, k, m, level, rank_shift)
        hits += int(np.sum((lo <= y) & (y <= hi)))
        widths.append(np.mean(hi - lo))
    return hits / (draws * m), float(np.mean(widths))


def test_cv_plus_covers_at_the_nominal_level_with_gaussian_noise():
    # 20 training samples in 5 folds, as 20 carbon steels' 14 training samples nearly are
    cov, width = _coverage(LEVEL)
    # CV+ guarantees 1 - 2a (and a little less); in practice it is close to 1 - a (Barber et al.
    # 2021, Sec. 6). 15,000 predictions: binomial sd 0.0025, more with the draws' correlation
    assert 0.895 <= cov <= 0.935, cov
    # the oracle interval 2 z sigma = 3.29; fold lines fitted on 16 points are a little off
    assert 3.29 < width < 1.35 * 3.29, width
    # the same check catches the ceil(n * level) rank (one rank too low: ~1/21 less coverage)
    assert _coverage(LEVEL, rank_shift=1)[0] < 0.885
    cov, _ = _coverage(0.5, draws=500)
    assert 0.5 <= cov <= 0.56, cov  # ranks 10 and 11 of 20: a little over one half


@pytest.mark.parametrize("n, k, level", [(14, 5, 0.9), (9, 3, 0.9), (12, 4, 0.5)])
def test_cv_plus_bounds_agree_with_mapie(n, k, level):
    from mapie.regression import CrossConformalRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import PredefinedSplit

    rng = np.random.default_rng(n)
    X, X_test = rng.normal(size=(n, 2)), rng.normal(size=(6, 2))
    y = X @ np.array([1.0, 2.0]) + rng.normal(size=n)
    fold_of = rng.permutation(np.arange(n) % k)
    fold_pred, residuals = np.empty((k, 6)), np.empty(n)
    for f in range(k):  # what the K deep fold runs give: test predictions, out-of-fold residuals
        model = LinearRegression().fit(X[fold_of != f], y[fold_of != f])
        fold_pred[f] = model.predict(X_test)
        residuals[fold_of == f] = np.abs(y[fold_of == f] - model.predict(X[fold_of == f]))
    lo, hi = cv_plus_bounds(fold_pred, residuals, fold_of, level)
    mapie = CrossConformalRegressor(LinearRegression(), confidence_level=level, method="plus",
                                    cv=PredefinedSplit(fold_of))
    mapie.fit_conformalize(X, y)
    _, bounds = mapie.predict_interval(X_test, aggregate_point_predictions=None,
                                       allow_infinite_bounds=True)
    np.testing.assert_allclose(lo, bounds[:, 0, 0], rtol=1e-12)
    np.testing.assert_allclose(hi, bounds[:, 1, 0], rtol=1e-12)


def _mlflow_runs(tag: str) -> list:
    return mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.`{tag}` != ''",
                              output_format="list")


def _gll_cv_plus_args(dataset, out, level: float) -> list[str]:
    """A one-draw GLL study of 8 samples (6 training) with CV+ intervals from K = 2 folds."""
    return ["compare", "--dataset", str(dataset), "--element", "Mn", "--models", "gll",
            "--sizes", "8", "--repeats", "1", "--jobs", "1", "--epochs", "1", "--out", str(out),
            "--set", "data.shots=average", "--interval", str(level), "--conformal", "cv+",
            "--cv-folds", "2"]


def _split_of(run_id: str) -> dict:
    return json.loads(open(mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="split.json")).read())


def test_compare_cv_plus_gives_finite_intervals_to_a_deep_model(train_data, mlflow_tmp, capsys):
    out = mlflow_tmp / "cvplus"
    # 8 samples: 2 test and 6 training per draw; level 0.5 needs rank ceil(7 * 0.5) = 4 <= 6
    args = _gll_cv_plus_args(train_data["slag"], out, level=0.5)
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "CV+ with K = 2 folds" in printed and "CV+ (K=2)" in printed
    rows = read_csv(out / "intervals.csv")
    assert [(r["model"], r["method"]) for r in rows] == [("gll", "cv+"), ("gll", "gaussian")]
    cv = rows[0]
    assert cv["folds"] == 2 and cv["n_calibration"] == 6 and cv["n_pred"] == 2
    assert cv["n_infinite"] == 0 and 0 < cv["mean_width"] < math.inf
    preds = read_csv(out / "predictions.csv")
    assert all(np.isfinite([p["y_lo"], p["y_hi"]]).all() and p["y_lo"] < p["y_hi"] for p in preds)

    main_run = read_csv(out / "fits.csv")[0]
    fold_runs = _mlflow_runs("compare.cv_fold")
    assert sorted(r.data.tags["compare.cv_fold"] for r in fold_runs) == ["0", "1"]
    draw = _split_of(main_run["run_id"])
    assert "calibration" not in draw  # the point prediction fits every training sample
    calibrated = []
    for run in fold_runs:
        assert run.data.tags["mlflow.parentRunId"] == mlflow.get_run(
            main_run["run_id"]).data.tags["mlflow.parentRunId"]
        split = _split_of(run.info.run_id)
        assert split["test"] == draw["test"]
        assert not set(split["calibration"]) & (set(split["train"]) | set(split["test"]))
        calibrated += split["calibration"]
    assert sorted(calibrated) == sorted(draw["train"])


def test_compare_cv_plus_options_are_checked_before_anything_runs(train_data, mlflow_tmp,
                                                                   capsys):
    base = ["compare", "--dataset", str(train_data["slag"]), "--element", "Mn", "--models", "gll",
            "--sizes", "8", "--repeats", "1", "--jobs", "1", "--quiet", "--set",
            "data.shots=average", "--out", str(mlflow_tmp / "never")]
    assert main([*base, "--conformal", "cv+"]) == 2
    assert "add --interval LEVEL" in capsys.readouterr().err
    assert main([*base, "--interval", "0.5", "--conformal", "cv+", "--cv-folds", "7"]) == 2
    assert "--cv-folds 7: a deep model's draw has only 6 training samples" in \
        capsys.readouterr().err
    assert main([*base, "--interval", "0.5", "--cv-folds", "1"]) == 2
    assert "--cv-folds must be an integer >= 2" in capsys.readouterr().err
    assert main([*base, "--interval", "0.5", "--conformal", "cv+", "--set",
                 "data.split.calibration=0.5"]) == 2
    assert "--conformal cv+ carves its own folds" in capsys.readouterr().err
    assert not (mlflow_tmp / "never").exists()


def test_a_transfer_model_from_scratch_is_a_plain_deep_model_of_the_study(train_data, mlflow_tmp):
    # `--set trcsl_1d.transfer=null`: the transfer study's model (c), the TrCSL network trained
    # from scratch on each draw (benchmarks/bench_intervals.py); it needs no pre-training run
    # and fits the study's own dataset, while the fine-tuned one refuses to start without one
    from saca_lab.compare.deep import build_config
    from saca_lab.compare.study import build_plan

    steel = str(train_data["carbon-steel"])
    with pytest.raises(InputError, match="transfer needs a finished pre-training run"):
        build_plan(steel, "Mn", "trcsl_1d", sizes="6", repeats=1)
    overrides = ["trcsl_1d.transfer=null", "data.lines=[257.61, 279.48]", "data.half_width=3",
                 "data.shots=average"]
    plan, models = build_plan(steel, "Mn", "trcsl_1d", sizes="6", repeats=1, overrides=overrides)
    model = models["trcsl_1d"]
    assert not model.is_transfer and plan.transfer_dataset is None
    assert plan.lines_of(plan.fits[0]) == (257.61, 279.48)
    cfg = build_config(model, dataset_path=steel, element="Mn", split_spec=plan.fits[0].split_spec,
                       seed=0, run_name="r", experiment="e",
                       overrides=plan.deep_overrides_for("trcsl_1d"))
    assert cfg["transfer"] is None and cfg["data"]["dataset"] == steel


def test_too_few_training_samples_give_infinite_cv_plus_intervals_scored_as_misses(
        train_data, mlflow_tmp, capsys):
    # 6 training samples at 0.9: the rank ceil(7 * 0.9) = 7 exceeds 6, so every interval is
    # infinite whatever the fold runs would predict; none is trained, and no interval covers
    out = mlflow_tmp / "short"
    args = _gll_cv_plus_args(train_data["slag"], out, level=0.9)
    assert main(args) == 0
    assert "no CV+ interval at 0.9 is finite with 6 training samples" in capsys.readouterr().out
    cv, own = read_csv(out / "intervals.csv")
    assert (cv["method"], own["method"]) == ("cv+", "gaussian")
    assert cv["n_infinite"] == cv["n_pred"] == 2 and cv["coverage"] == 0.0
    assert cv["coverage_ci_hi"] < 0.9 and math.isnan(cv["mean_width"])
    # the model's own sigma interval is finite beside it
    assert own["n_infinite"] == 0 and 0 < own["mean_width"] < math.inf
    preds = read_csv(out / "predictions.csv")
    assert all(p["y_lo"] == -math.inf and p["y_hi"] == math.inf for p in preds)
    assert _mlflow_runs("compare.cv_fold") == []
