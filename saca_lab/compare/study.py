"""The sample-count study (TrCSL Fig. 14 and 15) and grouped CV on any dataset.

For every sample count, ``repeats`` random subsets of samples are drawn and each is split 70/30
by sample; every model is fitted on the same training samples and scored on the same test
samples (R2 and RMSE of per-sample predictions, shots averaged). TrCSL draws one split per size
(Ma et al., JAAS 2025, 40, 1810, Sec. 3.5); repeating the draws gives the error bars that show
how much of a difference between models at 10 or 20 samples is luck of the draw. With ``cv``
instead of sizes, the whole dataset is split into K folds by sample (real data, few samples).

Baselines run in parallel worker processes (joblib) with one BLAS thread each; deep models
train in this process one after the other, each an MLflow run nested under the study.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from saca_lab.baselines import SOURCE_BASELINES
from saca_lab.baselines.intervals import DEFAULT_FOLDS
from saca_lab.compare import deep as deep_mod
from saca_lab.compare import features as feat
from saca_lab.compare import plan as plan_mod
from saca_lab.compare.fitting import Progress, child_metrics, resolve_jobs, run_baselines, run_deep
from saca_lab.compare.plots import cv_figure, fig14, fig15
from saca_lab.compare.results import (
    FIT_COLUMNS,
    INTERVAL_COLUMNS,
    INTERVAL_PREDICTION_COLUMNS,
    PREDICTION_COLUMNS,
    SUMMARY_COLUMNS,
    interval_summary,
    summarize,
    write_csv,
)
from saca_lab.compare.runs import StudyRuns
from saca_lab.errors import InputError
from saca_lab.models import model_info
from saca_lab.training import conformal as conformal_mod


@dataclass
class CompareResult:
    """What :func:`run_compare` produced."""

    fits: list[dict]
    summary: list[dict]
    predictions: list[dict]
    paths: dict[str, Path]
    parent_run_id: str
    skipped: list[str] = field(default_factory=list)
    #: ``--interval``: coverage and width per model and size (intervals.csv)
    intervals: list[dict] = field(default_factory=list)


def build_plan(dataset, element: str, models, *, sizes=None, repeats: int = 5, cv=None,
               seed: int = 0, features: str | None = None, airpls: bool = True,
               normalize: str = "minmax", overrides=(),
               transfer_dataset="carbon-steel", data_root=None, source_dataset=None
               ) -> tuple[plan_mod.StudyPlan, dict[str, deep_mod.DeepModel]]:
    """Validate every argument and lay out every fit; raises InputError, writes nothing
    (except a preset dataset simulated on first use)."""
    baselines, deep = plan_mod.split_models(models, deep_mod.deep_model_names())
    if (sizes is None) == (cv is None):
        raise InputError("give either --sizes (sample-count study) or --cv K (grouped CV), not both"
                         if sizes is not None else "give --sizes or --cv")
    features = feat.choose_features(features, {n: model_info(n).input_kind for n in deep})
    if normalize not in plan_mod.NORMALIZATIONS:
        raise InputError(f"--normalize {normalize!r}: expected one of {plan_mod.NORMALIZATIONS}")
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise InputError(f"--repeats must be a positive integer, got {repeats!r}")
    baseline_params, deep_overrides = plan_mod.split_overrides(overrides)
    plan_mod.check_scoped_overrides(deep_overrides, deep)
    ds = plan_mod.resolve_study_dataset(dataset, data_root)
    plan_mod.check_element(ds, element)
    size_list = plan_mod.parse_sizes(sizes) if sizes is not None else None
    if size_list is not None:
        plan_mod.check_sizes(size_list, ds)
    else:
        cv = plan_mod.check_cv(cv, ds)
    plan = plan_mod.StudyPlan(ds, element, baselines, deep, size_list, cv, repeats, seed,
                              features, airpls, normalize, baseline_params, deep_overrides)
    for name in baselines:
        plan.fits += plan_mod.plan_fits(name, ds, size_list, cv, repeats, seed)
    needs_source = [n for n in baselines if n in SOURCE_BASELINES]
    if needs_source and source_dataset is None:
        raise InputError(f"--models {','.join(needs_source)}: calibration transfer needs "
                         "--source-dataset (the source instrument's or domain's dataset)")
    if source_dataset is not None and not needs_source:
        raise InputError("--source-dataset is read by the calibration-transfer models only ("
                         + ", ".join(SOURCE_BASELINES) + "); add one to --models or drop it")
    if needs_source:
        plan_mod.check_source(plan, plan_mod.resolve_study_dataset(source_dataset, data_root))
    deep_models = {name: deep_mod.resolve_deep_model(name, plan.deep_overrides_for(name))
                   for name in deep}
    if any(m.is_transfer for m in deep_models.values()):
        tds = plan_mod.resolve_study_dataset(transfer_dataset, data_root)
        plan_mod.check_element(tds, element, "--transfer-dataset")
        plan.transfer_dataset = tds
    for name, model in deep_models.items():
        target = plan.transfer_dataset if model.is_transfer else ds
        if cv:
            plan.fits += plan_mod.plan_fits(name, target, None, plan_mod.check_cv(cv, target),
                                            repeats, seed)
            continue
        usable = [s for s in size_list if s <= target.shape[0]]
        plan.skipped += [f"{name}: size {s} > {target.shape[0]} samples of {target.path}"
                         for s in size_list if s > target.shape[0]]
        if not usable:
            raise InputError(f"--models {name}: no size fits its dataset {target.path} "
                             f"({target.shape[0]} samples); sizes {size_list}")
        plan.fits += plan_mod.plan_fits(name, target, usable, None, repeats, seed)
    configs, sources = {}, {}
    for name, model in deep_models.items():  # every deep config must load before anything runs
        fit = next(f for f in plan.fits if f.model == name)
        target = plan.transfer_dataset if model.is_transfer else ds
        cfg = deep_mod.build_config(model, dataset_path=str(target.path), element=element,
                                    split_spec=fit.split_spec, seed=seed, run_name="check",
                                    experiment="check", overrides=plan.deep_overrides_for(name),
                                    airpls=airpls, minmax=normalize == "minmax")
        shots = cfg["data"]["shots"]
        if isinstance(shots, int) and shots > target.shape[1]:
            raise InputError(f"--models {name}: {model.base} groups data.shots={shots} shots per "
                             f"item but {target.path} has {target.shape[1]} per sample; "
                             f"add --set data.shots=average")
        if model.is_transfer:
            sources[name] = feat.transfer_feature_spec(model)
            feat.check_preprocessing(name, sources[name], airpls, normalize)
        else:
            configs[name] = cfg
    if features == "lines":
        plan.lines = feat.line_setting(configs, sources, _data_defaults(plan.deep_overrides))
        datasets = {plan_mod.dataset_label(d): d for d in (ds, plan.transfer_dataset) if d is not None}
        for fit in plan.fits:  # every model of a draw reads the windows resolved once for it
            key = (fit.dataset, feat.split_key(fit.split_spec))
            if key not in plan.fit_lines:
                plan.fit_lines[key] = feat.resolve_lines(plan.lines, datasets[fit.dataset], element,
                                                         fit.split_spec, airpls,
                                                         normalize == "minmax")
    return plan, deep_models


def check_conformal(plan: plan_mod.StudyPlan, conformal: str, cv_folds, overrides
                    ) -> tuple[str, int]:
    """``--conformal`` and ``--cv-folds``, checked against the plan (InputError naming the
    option): they need ``--interval``; K >= 2 and, for deep CV+, at most the training samples
    of every deep draw; ``--set data.split.calibration`` is refused with CV+."""
    if conformal not in conformal_mod.DEEP_METHODS:
        raise InputError(f"--conformal {conformal!r}: expected one of "
                         f"{', '.join(conformal_mod.DEEP_METHODS)}")
    if plan.interval is None and (conformal != conformal_mod.DEEP_METHODS[0]
                                  or cv_folds is not None):
        raise InputError("--conformal and --cv-folds set how --interval is computed; "
                         "add --interval LEVEL (e.g. 0.9)")
    k = DEFAULT_FOLDS if cv_folds is None else cv_folds
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise InputError(f"--cv-folds must be an integer >= 2, got {cv_folds!r}")
    if conformal == "cv+":
        # a baseline's CV+ caps K at its training samples; a deep fold run cannot be skipped
        fewest = min((len(f.split.train) for f in plan.fits if f.model in plan.deep), default=k)
        if k > fewest:
            raise InputError(f"--cv-folds {k}: a deep model's draw has only {fewest} training "
                             "samples; each fold needs at least one (lower --cv-folds)")
        from saca_lab.config import parse_override

        keys = [(parse_override(o) if isinstance(o, str) else o)[0] for o in overrides or ()]
        if any(key.endswith("data.split.calibration") for key in keys):
            raise InputError("--set data.split.calibration is the split-conformal share; "
                             "--conformal cv+ carves its own folds of the training samples: "
                             "drop one of them")
    return conformal, int(k)


def _data_defaults(deep_overrides: list[str]) -> dict:
    """The ``data`` section a study without deep models takes its line setting from: the
    defaults with the study's unscoped ``--set data.*`` items."""
    from saca_lab.config import DEFAULTS, apply_overrides

    items = [o for o in deep_overrides if o.startswith("data.")]
    return apply_overrides({"data": dict(DEFAULTS["data"])}, items)["data"]


def default_out_dir(plan: plan_mod.StudyPlan) -> Path:
    return Path("reports") / f"compare-{plan.dataset.path.name}-{plan.element}"


def run_compare(dataset, element: str, models, sizes=None, repeats: int = 5, cv=None,
                seed: int = 0, out_dir=None, n_jobs: int | None = None, features: str | None = None,
                overrides=(), transfer_dataset="carbon-steel", progress: bool = True, *,
                epochs: int | None = None, experiment: str = "compare", airpls: bool = True,
                normalize: str = "minmax", data_root=None, source_dataset=None,
                interval: float | None = None, conformal: str = conformal_mod.DEEP_METHODS[0],
                cv_folds: int | None = None) -> CompareResult:
    """Run a comparison study and write its CSVs and figures; everything logged to MLflow.

    Parameters
    ----------
    dataset : str or path
        A dataset directory (simulated or imported) or a preset name (``slag``, ...).
    element : str
        Target column (element or oxide).
    models : str or list of str
        Baselines (``plsr``, ``pso_svr``, ``pca_pls``) and registered deep models.
    sizes : str or list of int, optional
        Sample counts (``"10:100:10"`` or ``"10,20"``); exclusive with ``cv``.
    repeats : int, default=5
        Random subsets per size.
    cv : int, optional
        K-fold CV by sample over the whole dataset instead of sizes.
    seed : int, default=0
        Seed of the draws and splits (repeat r uses ``seed + r``).
    out_dir : path, optional
        Default ``reports/compare-<dataset>-<element>``.
    n_jobs : int, optional
        Worker processes for the baselines (default all cores).
    features : {"spectrum", "lines"}, optional
        What every model of the study reads: the full spectrum (baselines; ``spectrum_1d`` and
        ``image_2d`` deep models) or the same line windows (baselines; ``lines_1d`` deep
        models). Default: what the deep models read (``spectrum`` without any); another pair
        is refused. See :mod:`saca_lab.compare.features`.
    overrides : sequence of str
        ``KEY=VALUE``: ``plsr.max_components=8`` (baseline parameter) or a deep config field
        (``train.max_epochs=20``).
    transfer_dataset : str or path, default "carbon-steel"
        What transfer models (``trcsl`` ...) are fine-tuned on.
    progress : bool
        One line per finished fit.
    epochs : int, optional
        ``train.max_epochs`` of every deep fit.
    experiment : str, default "compare"
        MLflow experiment of the parent run.
    airpls : bool, default=True
        airPLS baseline correction (baselines and non-transfer deep models).
    normalize : {"minmax", "sum", "none"}, default "minmax"
        Per-spectrum scaling after airPLS: TrCSL's min-max, total intensity (baselines only;
        deep models then get none, and standardise each input feature as always), or none.
    data_root : path, optional
        Where presets live (default ``$SACA_LAB_DATA`` or ``./data``).
    source_dataset : str or path, optional
        What the calibration-transfer baselines (``plsr_pds``, ``plsr_ds``, ``plsr_slope_bias``,
        ``plsr_source_target``) calibrate on besides each draw's training samples: the same
        samples on another instrument (required by ``plsr_pds`` / ``plsr_ds``, whose transfer
        standards are the training samples) or another domain (slag for carbon steel). A
        source measurement of a draw's test sample is never used by that draw.
    interval : float, optional
        Nominal level (e.g. 0.9) of cross-conformal CV+ prediction intervals for the
        single-dataset baselines (:mod:`saca_lab.baselines.intervals`; K =
        :data:`~saca_lab.baselines.intervals.DEFAULT_FOLDS` folds of training samples).
        Adds ``y_lo`` / ``y_hi`` to predictions.csv and writes intervals.csv: per model and
        size, the empirical coverage over all test predictions of all draws with its binomial
        confidence interval, the mean width, and how many intervals were infinite (too few
        training samples for the level; counted as not covering). Deep models get split
        conformal intervals (:mod:`saca_lab.training.conformal`): each fit keeps
        ``data.split.calibration`` of its training samples aside (default
        :data:`~saca_lab.training.conformal.COMPARE_CALIBRATION`; ``--set`` changes it) and is
        trained on the rest; a model that predicts sigma (GLL) also gets its own Gaussian
        interval's row (``method`` ``gaussian``). Calibration-transfer models get no interval.
    conformal : {"split", "cv+"}, default "split"
        How deep models get their intervals: split conformal (above), or CV+ (``cv+``): each
        draw's point prediction is the usual run on all training samples, and ``cv_folds`` more
        runs, fold ``k`` of the training samples calibrating the run fitted on the others
        (``data.split.calibration: {folds: K, fold: k}``), give the out-of-fold residuals and
        the fold predictions of the test samples
        (:func:`~saca_lab.training.conformal.cv_plus_bounds`). K + 1 trainings per draw, but
        finite 90 % intervals from 9 training samples up (split conformal needs 9
        *calibration* samples); a draw with fewer trains no fold run, and its infinite
        intervals count as misses.
    cv_folds : int, optional
        K of every CV+ interval of the study (baselines and, with ``conformal="cv+"``, deep
        models); default :data:`~saca_lab.baselines.intervals.DEFAULT_FOLDS`. Needs
        ``interval``; at most the training samples of the smallest draw.
    """
    jobs = resolve_jobs(n_jobs)
    if interval is not None and (isinstance(interval, bool) or not isinstance(interval, (int, float))
                                 or not 0.0 < float(interval) < 1.0):
        raise InputError(f"--interval must be a level between 0 and 1 (e.g. 0.9), got {interval!r}")
    if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
        raise InputError(f"--epochs must be a positive integer, got {epochs!r}")
    plan, deep_models = build_plan(dataset, element, models, sizes=sizes, repeats=repeats, cv=cv,
                                   seed=seed, features=features, airpls=airpls,
                                   normalize=normalize, overrides=overrides,
                                   transfer_dataset=transfer_dataset, data_root=data_root,
                                   source_dataset=source_dataset)
    plan.interval = None if interval is None else float(interval)
    plan.conformal, plan.cv_folds = check_conformal(plan, conformal, cv_folds, overrides)
    calibration = {}
    if plan.interval is not None and plan.conformal == "split":  # before anything runs
        calibration = {n: conformal_mod.study_calibration(plan.deep_overrides_for(n))
                       for n in plan.deep}
    out = Path(out_dir) if out_dir is not None else default_out_dir(plan)
    if progress:
        for line in plan.skipped:
            print(f"skipped {line}", flush=True)
        for model in deep_models.values():
            print(f"deep model {deep_mod.base_summary(model)}", flush=True)
        print(f"features: {feat.describe(plan)}", flush=True)
        if plan.interval is not None:
            without = [m for m in plan.models if m in SOURCE_BASELINES]
            print(f"intervals: CV+ at {plan.interval:g} with {plan.cv_folds} folds of training "
                  f"samples" + (f"; none for {', '.join(without)}" if without else ""), flush=True)
            if plan.conformal == "cv+" and plan.deep:
                print(f"intervals: {', '.join(plan.deep)}: CV+ with K = {plan.cv_folds} folds of "
                      f"each draw's training samples: {plan.cv_folds} fold runs besides the run "
                      f"on all of them ({plan.cv_folds + 1} trainings per draw)", flush=True)
                short = sorted({len(f.split.train) for f in plan.fits if f.model in plan.deep
                                and conformal_mod.is_unbounded(len(f.split.train), plan.interval)})
                if short:
                    print(f"intervals: no CV+ interval at {plan.interval:g} is finite with "
                          f"{', '.join(map(str, short))} training samples (the rank "
                          f"ceil((n + 1) x {plan.interval:g}) exceeds n): those draws train no "
                          "fold runs, and their infinite intervals count as misses", flush=True)
            for name, share in calibration.items():
                print(f"intervals: {name}: split conformal, {share:g} of each draw's training "
                      "samples kept aside as calibration samples", flush=True)
    params = {"dataset": plan.dataset.path, "element": element, "models": ",".join(plan.models),
              "mode": plan.mode, "sizes": plan.sizes, "repeats": repeats, "cv": cv, "seed": seed,
              "features": feat.describe(plan), "airpls": airpls, "normalize": normalize, "n_jobs": jobs,
              "epochs": epochs,
              "transfer_dataset": plan.transfer_dataset.path if plan.transfer_dataset else "",
              "source_dataset": plan.source_dataset.path if plan.source_dataset else "",
              "overrides": " ".join(overrides), "out_dir": out, "interval": interval}
    if plan.interval is not None:
        params.update(conformal=plan.conformal, cv_folds=plan.cv_folds)
    runs = StudyRuns(experiment, f"compare-{plan.dataset.path.name}-{element}", params,
                     {"compare.mode": plan.mode})
    try:
        counter = Progress(len(plan.fits), progress)
        rows, preds = run_baselines(plan, jobs, counter)
        summary = summarize(rows, preds)
        for s in summary:
            child = runs.child(f"{s['model']}-{s['dataset']}-n{s['size']}",
                               {"model": s["model"], "dataset": s["dataset"], "size": s["size"]},
                               {"compare.model": s["model"]})
            runs.finish(child, child_metrics(s))
        deep_rows, deep_preds = run_deep(plan, deep_models, runs, epochs, counter)
        rows, preds = rows + deep_rows, preds + deep_preds
        summary = summarize(rows, preds)
        intervals = ([] if plan.interval is None else
                     interval_summary(preds, element, plan.interval, plan.cv_folds))
        paths = write_outputs(out, plan, rows, summary, preds, intervals)
        runs.log_artifacts(paths.values())
    except BaseException:
        runs.finish(runs.parent_id, status="FAILED")
        raise
    runs.finish(runs.parent_id, {"n_fits": len(rows)})
    return CompareResult(rows, summary, preds, paths, runs.parent_id, plan.skipped, intervals)


def write_outputs(out: Path, plan, rows, summary, preds, intervals=()) -> dict[str, Path]:
    """fits.csv, summary.csv, predictions.csv (intervals.csv) and the figures, each written
    atomically."""
    os.makedirs(out, exist_ok=True)
    paths = {"fits": out / "fits.csv", "summary": out / "summary.csv",
             "predictions": out / "predictions.csv"}
    write_csv(paths["fits"], rows, FIT_COLUMNS)
    write_csv(paths["summary"], summary, SUMMARY_COLUMNS)
    write_csv(paths["predictions"], preds,
              PREDICTION_COLUMNS if plan.interval is None else INTERVAL_PREDICTION_COLUMNS)
    if plan.interval is not None:
        paths["intervals"] = out / "intervals.csv"
        write_csv(paths["intervals"], list(intervals), INTERVAL_COLUMNS)
    label = plan.dataset.path.name
    if plan.mode == "cv":
        paths["cv"] = Path(cv_figure(preds, summary, out / "cv.png", plan.element, label))
    else:
        paths["fig14"] = Path(fig14(summary, out / "fig14.png", plan.element, label))
        paths["fig15"] = Path(fig15(summary, out / "fig15.png", plan.element, label))
    return paths
