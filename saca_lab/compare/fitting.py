"""Fitting a study's models: baselines in worker processes, deep models one after the other.

Baseline fits are independent and small, so they run in a joblib pool with one BLAS thread
per fit: on a shared 2-core machine a PLS fit of 16,375-point spectra was 4-13x slower with
OpenBLAS's default two threads than with one (thread hand-offs dominate such thin matrix-vector
products; BENCHMARKS.md, "baselines"). Deep models
train in this process, each an MLflow run nested under its (model, size) child run.
"""

from __future__ import annotations

import math
import time
import warnings
from functools import partial

import numpy as np

from saca_lab.baselines.intervals import DEFAULT_FOLDS
from saca_lab.compare import deep as deep_mod
from saca_lab.compare import plan as plan_mod
from saca_lab.compare.features import baseline_matrix
from saca_lab.compare.results import fit_row, prediction_rows, summarize
from saca_lab.compare.runs import StudyRuns
from saca_lab.errors import InputError
from saca_lab.training import conformal


def baseline_features(plan: plan_mod.StudyPlan, fit: plan_mod.Fit | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample features (shots averaged, airPLS, min-max; cached on disk) and targets.

    With ``features == "lines"`` they are the windows the deep models read on ``fit``'s draw
    (:meth:`StudyPlan.lines_of`).
    """
    lines, half_width = None, 5
    if plan.features == "lines":
        if fit is None:
            raise ValueError("line features are resolved per draw: pass the fit")
        lines, half_width = plan.lines_of(fit), plan.half_width
    x = baseline_matrix(plan.dataset, plan.features, lines, half_width, plan.airpls, plan.normalize)
    return x, plan.dataset.target_matrix([plan.element])[:, 0]


def fitted_params(est) -> dict:
    """What a fitted baseline chose (logged with every fit)."""
    out = {}
    for attr in ("n_pca_", "n_components_"):
        if hasattr(est, attr):
            out[attr.rstrip("_")] = int(getattr(est, attr))
    if hasattr(est, "best_params_"):
        out.update(est.best_params_)
        out["cv_rmse"] = float(est.cv_rmse_)
    for attr in ("slope_", "bias_"):  # slope/bias correction
        if hasattr(est, attr):
            out[attr.rstrip("_")] = float(getattr(est, attr))
    return out


def source_fit_kwargs(plan: plan_mod.StudyPlan, fit: plan_mod.Fit, X_source: np.ndarray,
                      y_source: np.ndarray) -> dict:
    """The source data a calibration-transfer baseline fits on for this draw.

    Source samples: all but the source measurements of the draw's test samples
    (:func:`~saca_lab.compare.plan.source_rows`). Transfer standards of ``plsr_pds`` /
    ``plsr_ds``: the draw's training samples as the source instrument measured them. Group
    labels tie a training sample to its own source measurement, so the pooled PLS's CV never
    scores a sample with its twin in the training fold.
    """
    from saca_lab.baselines import SOURCE_BASELINES

    pairs = plan.source_pairs
    rows = plan_mod.source_rows(pairs, fit.split.test, X_source.shape[0])
    kwargs = {"X_source": X_source[rows], "y_source": y_source[rows]}
    if SOURCE_BASELINES[fit.model] == "paired":
        kwargs["X_source_standards"] = X_source[pairs[fit.split.train]]
    if fit.model == "plsr_source_target":
        train_pairs = pairs[fit.split.train]
        kwargs["groups"] = np.where(train_pairs >= 0, np.char.add("s", train_pairs.astype(str)),
                                    np.char.add("t", np.asarray(fit.split.train).astype(str)))
        kwargs["source_groups"] = np.char.add("s", rows.astype(str))
    return kwargs


def _fit_baseline(index: int, name: str, params: dict, X, y, train, test, one_thread: bool,
                  fit_kwargs: dict | None = None, interval: float | None = None,
                  interval_seed: int = 0, interval_folds: int = DEFAULT_FOLDS):
    """One baseline fit (runs in a worker): predictions of the test samples, the time, and
    with ``interval`` the CV+ bounds of the test predictions (folds of training samples)."""
    from threadpoolctl import threadpool_limits

    from saca_lab.baselines import make_baseline

    with threadpool_limits(1 if one_thread else None), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "y residual is constant")
        est = make_baseline(name, **params)
        start = time.perf_counter()
        est.fit(np.asarray(X[train], dtype=np.float64), y[train], **(fit_kwargs or {}))
        seconds = time.perf_counter() - start
        pred = est.predict(np.asarray(X[test], dtype=np.float64))
        bounds = None
        if interval is not None:
            from saca_lab.baselines.intervals import cv_plus_interval

            # rows are shot-averaged samples here, so each row is its own group
            bounds = cv_plus_interval(make_baseline(name, **params),
                                      np.asarray(X[train], dtype=np.float64), y[train],
                                      np.asarray(X[test], dtype=np.float64), interval,
                                      folds=interval_folds, random_state=interval_seed)
    return index, pred, seconds, fitted_params(est), bounds


def resolve_jobs(n_jobs: int | None) -> int:
    from joblib import cpu_count

    if n_jobs is None or n_jobs == -1:
        return max(1, cpu_count(only_physical_cores=False))
    if not isinstance(n_jobs, int) or n_jobs < 1:
        raise InputError(f"--jobs must be a positive integer, got {n_jobs!r}")
    return n_jobs


def run_baselines(plan: plan_mod.StudyPlan, n_jobs: int | None = None, progress=True,
                  one_thread: bool = True) -> tuple[list[dict], list[dict]]:
    """Fit every baseline of the plan; rows of fits.csv and predictions.csv."""
    from joblib import Parallel, delayed

    fits = [f for f in plan.fits if f.model in plan.baselines]
    if not fits:
        return [], []
    if not callable(progress):
        progress = Progress(len(fits), progress)

    def x_key(fit):
        return plan.lines_of(fit) if plan.features == "lines" else None

    inputs: dict = {}  # line windows -> X: one matrix per distinct set of windows
    source_inputs: dict = {}  # the same for the source dataset of the transfer baselines
    for fit in fits:
        if x_key(fit) not in inputs:
            inputs[x_key(fit)] = baseline_features(plan, fit)[0]
        if plan.source_dataset is not None and x_key(fit) not in source_inputs:
            source_inputs[x_key(fit)] = source_features(plan, fit)
    y = plan.dataset.target_matrix([plan.element])[:, 0]
    y_source = (plan.source_dataset.target_matrix([plan.element])[:, 0]
                if plan.source_dataset is not None else None)

    def fit_kwargs(fit):
        if fit.model not in plan_mod.SOURCE_BASELINES:
            return None
        return source_fit_kwargs(plan, fit, source_inputs[x_key(fit)], y_source)

    def interval_of(fit):
        # CV+ refits the model on folds of the training samples; a transfer baseline's source
        # data and transfer standards would have to follow each fold, which is not done
        return None if fit.model in plan_mod.SOURCE_BASELINES else plan.interval

    # the slowest first (large sizes, the swarm), so no worker idles at the end
    order = sorted(range(len(fits)), key=lambda i: (-fits[i].size, fits[i].model != "pso_svr"))
    jobs = resolve_jobs(n_jobs)
    calls = (delayed(_fit_baseline)(i, fits[i].model, plan.baseline_params.get(fits[i].model, {}),
                                    inputs[x_key(fits[i])], y, fits[i].split.train, fits[i].split.test,
                                    one_thread, fit_kwargs(fits[i]), interval_of(fits[i]),
                                    plan.seed + fits[i].repeat, plan.cv_folds)
             for i in order)
    if jobs == 1:
        results = (call[0](*call[1], **call[2]) for call in calls)
    else:
        results = Parallel(n_jobs=jobs, return_as="generator_unordered")(calls)
    rows: dict[int, dict] = {}
    preds: dict[int, list[dict]] = {}
    for i, pred, seconds, params, bounds in results:
        fit = fits[i]
        rows[i] = fit_row(fit, plan.element, plan.mode, y[fit.split.test], pred, seconds,
                          {**params, **feature_params(plan, x_key(fit)), **source_params(plan, fit)})
        preds[i] = prediction_rows(fit, plan.dataset.sample_ids, fit.split.test,
                                   y[fit.split.test], pred)
        if bounds is not None:
            for row, lo, hi in zip(preds[i], *bounds, strict=True):
                row["y_lo"], row["y_hi"] = float(lo), float(hi)
        progress(rows[i])
    return [rows[i] for i in range(len(fits))], [p for i in range(len(fits)) for p in preds[i]]


class Progress:
    """One line per finished fit, numbered over the whole study."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, 0, enabled

    def __call__(self, row: dict) -> None:
        self.done += 1
        if self.enabled:
            _print_fit(self.done, self.total, row)


def _print_fit(done: int, total: int, row: dict) -> None:
    what = f"fold {row['repeat']}" if row["mode"] == "cv" else f"n={row['size']} rep {row['repeat']}"
    print(f"[{done}/{total}] {row['model']} ({row['dataset']}) {what}: R2 {row['r2']:.3f}  "
          f"RMSE {row['rmse']:.4g}  ({row['fit_seconds']:.1f} s)", flush=True)


def run_deep(plan, deep_models, runs: StudyRuns, epochs, progress=True
             ) -> tuple[list[dict], list[dict]]:
    """Train every deep fit of the plan in turn; each (model, size) is a child run."""
    rows, preds = [], []
    fits = [f for f in plan.fits if f.model in plan.deep]
    if not callable(progress):
        progress = Progress(len(fits), progress)
    for key in dict.fromkeys((f.model, f.dataset, f.size) for f in fits):
        name, label, size = key
        model = deep_models[name]
        ds = plan.transfer_dataset if model.is_transfer else plan.dataset
        params = {"model": name, "dataset": str(ds.path), "size": size,
                  "base_config": model.base, "transfer_from": model.transfer_from or ""}
        child = runs.child(f"{name}-{label}-n{size}", params, {"compare.model": name})
        group = []
        try:
            for fit in (f for f in fits if (f.model, f.dataset, f.size) == key):
                what = f"fold{fit.repeat}" if plan.mode == "cv" else f"n{fit.size}-r{fit.repeat}"
                tags = {"compare.model": name, "compare.size": str(fit.size),
                        "compare.repeat": str(fit.repeat)}
                fit_config = partial(deep_fit_config, plan, model, ds, fit, epochs,
                                     runs.experiment_name)
                cv_plus = plan.interval is not None and plan.conformal == "cv+"
                # split conformal: scores from training samples kept aside; CV+: the point
                # prediction's run fits every training sample, the fold runs calibrate
                cfg = fit_config(f"{name}-{what}", None if plan.interval is None or cv_plus else
                                 conformal.study_calibration(plan.deep_overrides_for(name)))
                out = deep_mod.run_deep_fit(cfg, plan.element, child, tags)
                check_deep_test(plan, fit, out)
                extra = {}
                if cv_plus:
                    lo, hi, n_res, seconds = cv_plus_fit(plan, fit, ds, out, fit_config,
                                                         f"{name}-{what}", child, tags)
                    extra = {"cv_plus_folds": plan.cv_folds, "cv_plus_seconds": seconds}
                row = fit_row(fit, plan.element, plan.mode, out.y_true, out.y_pred, out.seconds,
                              {"epochs": cfg["train"]["max_epochs"], "targets": out.targets,
                               **feature_params(plan, out.feature_spec.get("lines")), **extra},
                              out.run_id)
                group.append(row)
                fit_preds = prediction_rows(fit, ds.sample_ids, out.sample_index, out.y_true,
                                            out.y_pred)
                if cv_plus:
                    conformal.attach_cv_plus(fit_preds, lo, hi, n_res, plan.interval, out.y_pred,
                                             out.sigma)
                elif plan.interval is not None:
                    conformal.attach_bounds(fit_preds, out.y_pred, out.scores, plan.interval,
                                            out.sigma)
                preds += fit_preds
                progress(row)
        except BaseException:
            runs.finish(child, status="FAILED")
            raise
        rows += group
        runs.finish(child, child_metrics(summarize(group, preds)[0]))
    return rows, preds


def deep_fit_config(plan, model, ds, fit, epochs, experiment: str, run_name: str,
                    calibration) -> dict:
    """The config of one deep run of a draw; ``calibration`` is its ``data.split.calibration``
    (None: none)."""
    return deep_mod.build_config(
        model, dataset_path=str(ds.path), element=plan.element, split_spec=fit.split_spec,
        seed=plan.seed + fit.repeat, epochs=epochs, run_name=run_name, experiment=experiment,
        overrides=plan.deep_overrides_for(model.name), airpls=plan.airpls,
        minmax=plan.normalize == "minmax", calibration=calibration,
        windows=(plan.lines_of(fit), plan.half_width) if plan.features == "lines" else None)


def check_deep_test(plan, fit, out) -> None:
    """A deep run must have tested exactly the draw's test samples and read its inputs."""
    if not np.array_equal(np.sort(out.sample_index), fit.split.test):
        raise RuntimeError(f"{fit.model}: the run tested other samples than the split")
    check_deep_inputs(plan, fit, out)


def cv_plus_fit(plan, fit, ds, out, fit_config, run_name: str, parent: str, tags: dict
                ) -> tuple[np.ndarray, np.ndarray, int, float]:
    """The K fold runs of one draw and its CV+ bounds (``compare --conformal cv+``).

    Run ``k`` is the draw's config with ``data.split.calibration: {folds: K, fold: k}``: it
    fits the training samples outside fold ``k`` (same test samples, features and seed as the
    draw's other models) and scores fold ``k``. Returns the bounds of ``out``'s test samples,
    in its order (:func:`~saca_lab.training.conformal.cv_plus_bounds`), the number of
    out-of-fold residuals (the training samples) and the fold runs' seconds. With too few
    training samples for the level (``ceil((n + 1) level) > n``) no fold run is trained: the
    bounds are infinite, scored as misses.
    """
    n_train = len(fit.split.train)
    if conformal.is_unbounded(n_train, plan.interval):
        # 90 %: n <= 8, a 7:3 draw of 10 samples; the bounds are infinite whatever the fold
        # runs predict, so they are not trained
        m = len(out.sample_index)
        return np.full(m, -math.inf), np.full(m, math.inf), n_train, 0.0
    k_folds = plan.cv_folds
    row_of = {sid: i for i, sid in enumerate(ds.sample_ids)}
    fold_pred = np.empty((k_folds, len(out.sample_index)))
    residuals, fold_of, calibrated, seconds = [], [], [], 0.0
    for k in range(k_folds):
        cfg = fit_config(f"{run_name}-cvfold{k}", {"folds": k_folds, "fold": k})
        fold = deep_mod.run_deep_fit(cfg, plan.element, parent, {**tags, "compare.cv_fold": str(k)})
        check_deep_test(plan, fit, fold)
        if fold.scores is None or fold.calibration_ids is None:
            raise RuntimeError(f"{fit.model}: CV+ fold run {k} stored no calibration scores")
        at = {int(i): j for j, i in enumerate(fold.sample_index)}
        fold_pred[k] = fold.y_pred[[at[int(i)] for i in out.sample_index]]
        residuals += list(fold.scores)
        fold_of += [k] * len(fold.scores)
        calibrated += [row_of[sid] for sid in fold.calibration_ids]
        seconds += fold.seconds
    # every training sample calibrates exactly once, and nothing else does
    if sorted(calibrated) != fit.split.train.tolist():
        raise RuntimeError(f"{fit.model}: the CV+ folds calibrated samples {sorted(calibrated)}, "
                           f"not the draw's training samples {fit.split.train.tolist()}")
    lo, hi = conformal.cv_plus_bounds(fold_pred, residuals, fold_of, plan.interval)
    return lo, hi, len(residuals), seconds


def source_features(plan: plan_mod.StudyPlan, fit: plan_mod.Fit) -> np.ndarray:
    """The source dataset's per-sample features, preprocessed as the study's (same windows)."""
    lines, half_width = None, 5
    if plan.features == "lines":
        lines, half_width = plan.lines_of(fit), plan.half_width
    return baseline_matrix(plan.source_dataset, plan.features, lines, half_width, plan.airpls,
                           plan.normalize)


def source_params(plan, fit) -> dict:
    """What a transfer baseline calibrated on besides the draw, for its row of fits.csv."""
    if fit.model not in plan_mod.SOURCE_BASELINES:
        return {}
    n = len(plan_mod.source_rows(plan.source_pairs, fit.split.test, plan.source_dataset.shape[0]))
    return {"source": plan_mod.dataset_label(plan.source_dataset), "n_source": n}


def feature_params(plan, lines) -> dict:
    """What a fit read, for its row of fits.csv: the features and, for lines, the windows."""
    if plan.features != "lines":
        return {"features": plan.features}
    return {"features": "lines", "half_width": plan.half_width,
            "lines": None if lines is None else [round(float(v), 4) for v in lines]}


def check_deep_inputs(plan, fit, out) -> None:
    """The run must have read what the baselines of its draw read, for the element alone."""
    if out.targets != [plan.element]:
        raise RuntimeError(f"{fit.model}: fine-tuned on {out.targets}, not on {plan.element} alone")
    if plan.features != "lines":
        return
    got, want = out.feature_spec.get("lines"), plan.lines_of(fit)
    same = (got is None and want is None) or (
        got is not None and want is not None and np.allclose(got, want, rtol=0, atol=1e-9))
    if not same or out.feature_spec.get("half_width") != plan.half_width:
        raise RuntimeError(f"{fit.model}: the run read line windows {got} (half width "
                           f"{out.feature_spec.get('half_width')}), the study's draw {want}")


def child_metrics(s: dict) -> dict:
    return {k: s[k] for k in ("r2_mean", "r2_std", "rmse_mean", "rmse_std", "pooled_r2",
                              "pooled_rmse", "fit_seconds_mean", "n_fits")}
