"""The transfer study: does pre-training on slag help on 10 or 20 carbon steels?

TrCSL's central claim (Ma et al., JAAS 2025, 40, 1810, Fig. 14, Sec. 3.4) is an R2 of 0.98 for Mn
on 20 carbon steels after transfer from slag, where PLSR needs about 90 samples. A 7:3 split of
20 samples tests on 6, and an R2 over 6 points moves by tenths from one split to the next, so one
split decides nothing. Here every sample count gets ``Mode.transfer_repeats`` random draws (a
subset of the samples, then 7:3 by sample, drawn exactly as ``saca-lab compare`` draws them:
:func:`saca_lab.compare.plan.size_split_spec`) and eight models are fitted on every draw:

(a) TrCSL-1D pre-trained on slag, feature extractor frozen, head fine-tuned (the paper's transfer);
(b) the same, all layers fine-tuned from the first epoch, the features at a lower learning rate;
(c) the same network trained from scratch on the draw's carbon-steel training samples;
(d) PLSR (:class:`~saca_lab.baselines.PLSRCV`, components chosen by CV on the training samples);
(e) PCA-PLS;
(f) GLL (the Gaussian-NLL network of TrCSL ref. 35);
(g) slope/bias correction (:class:`~saca_lab.baselines.SlopeBiasPLS`): a PLSR fitted on the slag
    pre-training's training samples, its predictions of the draw's training samples corrected
    by a straight line;
(h) one PLSR on the slag training samples and the draw's training samples together
    (:class:`~saca_lab.baselines.SourceTargetPLS`).

(g) and (h) are the classical ways to reuse a calibration from another domain when no sample
was measured in both (PDS and DS need such transfer standards; slag and steel share none). The
source model sees the slag samples the network was pre-trained on and never its test samples;
neither the source nor the pooled model ever sees a test sample of the draw.

Every model sees the same input: the line windows, airPLS and min-max of the slag pre-training,
read from its checkpoint (the 1D models in every mode: the 2D network has no line-window form,
and GLL and the baselines need one input for all). The deep models fit the four elements
jointly on groups of ``Mode.shots`` shots, as the paper fine-tunes; PLSR, PCA-PLS, (g) and (h)
fit one element at a time on each sample's mean spectrum (slag means too, for (g) and (h)).
Every epoch count is fixed in the Mode; no choice looks at the test samples.

Reported per element (Mn first, then Cr, Cu, C): mean +- std of the per-sample test R2 over the
draws, and paired comparisons of (a) with every other model: the R2 difference on each draw, its
mean, standard deviation, 95 % t-interval and the fraction of draws (a) wins.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np

from saca_lab.errors import InputError
from saca_lab.io import new_figure, save_figure, write_rows_csv
from saca_lab.reproduce import paper
from saca_lab.reproduce.context import Context, FigureResult, fmt
from saca_lab.reproduce.figs_training import MN_FIRST, r2, trcsl_overrides
from saca_lab.reproduce.transfer_report import (
    LABELS,
    MODEL_1D,
    ROW_PAIRS,
    add_rows,
    pick,
    report_text,
)
from saca_lab.reproduce.transfer_stats import MODELS, Draw, plan_draws, summarize
from saca_lab.training.result import RunResult

SHORT = {"head": "(a) TrCSL\nhead", "all": "(b) TrCSL\nall layers", "scratch": "(c) TrCSL\nscratch",
         "plsr": "(d) PLSR", "pca_pls": "(e) PCA-PLS", "gll": "(f) GLL",
         "slope_bias": "(g) slope/\nbias", "source_target": "(h) slag +\nsteel PLSR"}
#: Baselines fitted here (not trained as MLflow runs): study key -> ``make_baseline`` name.
BASELINES = {"plsr": "plsr", "pca_pls": "pca_pls", "slope_bias": "plsr_slope_bias",
             "source_target": "plsr_source_target"}
#: The ones that also read the slag source data.
SOURCE_MODELS = ("slope_bias", "source_target")
COLORS = {"head": "tab:blue", "all": "tab:cyan", "scratch": "tab:gray", "plsr": "tab:orange",
          "pca_pls": "tab:olive", "gll": "tab:green", "slope_bias": "tab:purple",
          "source_target": "tab:brown"}
FIT_COLUMNS = ("size", "draw", "model", "element", "r2", "rmse", "n_train", "n_test",
               "train_samples", "test_samples", "seconds", "run_id")
SUMMARY_COLUMNS = ("size", "element", "model", "other", "n", "mean", "std", "ci_low", "ci_high",
                   "wins")


def _feature_spec(run_id: str) -> dict:
    """The input of the pre-trained network (windows, airPLS, min-max), from its checkpoint."""
    from saca_lab.tracking import resolve_checkpoint
    from saca_lab.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(resolve_checkpoint(run_id))
    spec = ckpt["hyper_parameters"]["feature_spec"]
    if spec["input_kind"] != "lines_1d":
        raise InputError(f"transfer: pre-training run {run_id} is not a line-window model "
                         f"({spec['input_kind']})")
    return spec


def _feature_overrides(spec: dict) -> list[str]:
    """Config overrides that give a network trained from scratch the pre-training's input."""
    lines = None if spec.get("lines") is None else [float(w) for w in spec["lines"]]
    return [f"data.lines={json.dumps(lines)}", f"data.half_width={int(spec['half_width'])}",
            f"data.preprocessing.airpls={json.dumps(spec['airpls'])}",
            f"data.preprocessing.minmax={json.dumps(bool(spec['minmax']))}"]


def _deep_runs(ctx: Context, draw: Draw, pre: RunResult, spec: dict) -> dict[str, tuple[RunResult, float]]:
    """Models (a), (b), (c) and (f) on one draw: run result and seconds (0 when reused)."""
    m = ctx.mode
    base = [f"data.dataset={json.dumps(m.carbon_steel)}", f"data.shots={m.shots}",
            f"data.split={json.dumps(draw.spec)}", f"seed={draw.spec['seed']}",
            "tracking.log_model=false"]
    targets = f"data.targets={json.dumps(list(pre.targets))}"
    features = _feature_overrides(spec)
    finetune = f"{MODEL_1D}_finetune_carbon_steel"
    jobs = {
        "head": (finetune, [f"train.max_epochs={m.finetune_epochs}", f"transfer.from={pre.run_id}"]),
        "all": (finetune, [f"train.max_epochs={m.finetune_epochs}", f"transfer.from={pre.run_id}",
                           "transfer.unfreeze_at_epoch=0",
                           f"transfer.unfreeze_lr={m.transfer_unfreeze_lr}"]),
        "scratch": (finetune, ["transfer=null", f"train.max_epochs={m.transfer_scratch_epochs}",
                               targets, *features]),
        "gll": ("compare_gll", [f"train.max_epochs={m.gll_epochs}", targets, *features]),
    }
    out = {}
    for model, (experiment, extra) in jobs.items():
        name = f"name=transfer-{model}-n{draw.size}-d{draw.repeat}"
        start = time.perf_counter()
        result = ctx.train(experiment, [*base, *extra, name], figure="transfer")
        out[model] = (result, 0.0 if result.reused else time.perf_counter() - start)
    return out


def _mean_features(ds, spec: dict) -> np.ndarray:
    """Each sample's mean spectrum in the pre-training's input (windows, airPLS, min-max)."""
    from saca_lab.datasets.features import FeatureSpec, dataset_features

    return np.asarray(dataset_features(ds, FeatureSpec.from_dict(spec), "average")[:, 0], dtype=np.float64)


def _source_data(ctx: Context, pre: RunResult, spec: dict, elements) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Slag features, targets and sample ids of the pre-training's training samples: the
    calibration set of (g) and (h), the slag the network learned from (its test samples are
    never used)."""
    import tempfile

    from saca_lab import tracking

    ds = ctx.dataset("slag")
    with tempfile.TemporaryDirectory() as tmp:
        path = tracking.client().download_artifacts(pre.run_id, "split.json", tmp)
        train_ids = [str(s) for s in json.loads(Path(path).read_text())["train"]]
    index = {str(s): i for i, s in enumerate(ds.sample_ids)}
    missing = [s for s in train_ids if s not in index]
    if missing:
        raise InputError(f"transfer: the pre-training's training samples {missing[:3]} are not in "
                         f"{ds.path}: the slag dataset changed since run {pre.run_id}")
    rows = np.array([index[s] for s in train_ids], dtype=int)
    return _mean_features(ds, spec)[rows], ds.target_matrix(list(elements))[rows], train_ids


def _baseline_scores(x: np.ndarray, y: np.ndarray, source: tuple[np.ndarray, np.ndarray], draw: Draw,
                     elements) -> dict[tuple[str, str], tuple[float, float, float]]:
    """PLSR, PCA-PLS, (g) and (h) on one draw, one element at a time: (R2, RMSE, seconds).

    ``x``, ``y``: carbon-steel mean features and targets (columns in ``elements`` order) of every
    sample; ``source``: the slag features and targets of :func:`_source_data`. Every fit reads
    the draw's training rows only (and the slag); the test rows are predicted, never fitted.
    """
    from sklearn.metrics import mean_squared_error
    from threadpoolctl import threadpool_limits

    from saca_lab.baselines import make_baseline
    from saca_lab.training.reporting import r2_or_nan

    x_source, y_source = source
    train, test = draw.split.train, draw.split.test
    out = {}
    # one BLAS thread: these fits are thin, and thread hand-offs dominate (see compare.fitting)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "y residual is constant")
        for key, name in BASELINES.items():
            for j, el in enumerate(elements):
                start = time.perf_counter()
                kwargs = ({"X_source": x_source, "y_source": y_source[:, j]}
                          if key in SOURCE_MODELS else {})
                est = make_baseline(name).fit(x[train], y[train, j], **kwargs)
                pred = est.predict(x[test])
                out[(key, el)] = (r2_or_nan(y[test, j], pred),
                                   float(np.sqrt(mean_squared_error(y[test, j], pred))),
                                   time.perf_counter() - start)
    return out


def plot(fits: list[dict], summary: list[dict], sizes, elements, path: Path, label: str) -> Path:
    """Bars (mean +- std over draws, a dot per draw) per element and size; the last column the
    paired R2 differences of Mn (or the first element), (a) minus each model of ``ROW_PAIRS``."""
    ncol = len(elements) + 1
    fig, axes = new_figure(len(sizes), ncol, figsize=(3.3 * ncol, 3.6 * len(sizes)), squeeze=False)
    x = np.arange(len(MODELS))
    for i, size in enumerate(sizes):
        for ax, el in zip(axes[i], elements, strict=False):
            stats_ = [pick(summary, size, el, mdl) for mdl in MODELS]
            ax.bar(x, [s["mean"] for s in stats_], yerr=[np.nan_to_num(s["std"]) for s in stats_],
                   capsize=3, color=[COLORS[m] for m in MODELS], alpha=0.8)
            for k, mdl in enumerate(MODELS):
                vals = [f["r2"] for f in fits if f["size"] == size and f["element"] == el and f["model"] == mdl]
                ax.plot(np.full(len(vals), k), vals, "k.", ms=3, alpha=0.6)
            if el == "Mn" and size == 20:
                ax.axhline(paper.FIG14["trcsl_at20"], color="r", ls="--", lw=0.8, label="paper TrCSL")
                ax.legend(fontsize=7, loc="lower left")
            ax.axhline(0, color="k", lw=0.5)
            ax.set_ylim(max(-1.5, min(-0.1, np.nanmin([s["mean"] for s in stats_]) - 0.3)), 1.05)
            ax.set_xticks(x, [SHORT[m] for m in MODELS], fontsize=7, rotation=60)
            ax.set_title(f"{el}, {size} samples", fontsize=9)
            ax.set_ylabel("test R2 per draw" if el == elements[0] else "")
        ax = axes[i][-1]
        el = elements[0]
        for k, other in enumerate(ROW_PAIRS):
            per = {}
            for f in fits:
                if f["size"] == size and f["element"] == el and f["model"] in ("head", other):
                    per.setdefault(f["draw"], {})[f["model"]] = f["r2"]
            d = [v["head"] - v[other] for v in per.values() if len(v) == 2]
            ax.plot(np.full(len(d), k) + np.linspace(-0.1, 0.1, len(d)), d, "k.", ms=4)
            s = pick(summary, size, el, "head", other)
            if s["n"] > 1:
                ax.errorbar(k + 0.25, s["mean"], yerr=[[s["mean"] - s["ci_low"]], [s["ci_high"] - s["mean"]]],
                            fmt="o", color="tab:red", capsize=3)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xticks(range(len(ROW_PAIRS)), [f"(a) - {LABELS[o].split(')')[0]})" for o in ROW_PAIRS],
                      fontsize=8)
        ax.set_xlim(-0.5, len(ROW_PAIRS) - 0.4)
        ax.set_title(f"{el}, {size}: paired R2 difference\n(mean, 95% CI in red)", fontsize=9)
    fig.suptitle(f"Transfer study on {label}: same draws for every model", fontsize=10)
    fig.tight_layout()
    out = save_figure(fig, path)
    return out


def transfer(ctx: Context) -> FigureResult:
    """The transfer study (see the module docstring); writes transfer.csv,
    transfer_summary.csv and transfer.png into the report folder."""
    from saca_lab.reproduce.figs_training import ELEMENTS as PRETRAIN_ELEMENTS

    m = ctx.mode
    t0 = time.perf_counter()
    res = FigureResult("transfer", "Transfer study: slag pre-training vs training on carbon steel "
                                   "alone vs PLSR / PCA-PLS / GLL vs calibration transfer "
                                   "(slope/bias, slag + steel PLSR) (1D line windows, same draws)")
    ds = ctx.dataset("carbon_steel")
    draws, notes = plan_draws(ds.shape[0], m.transfer_sizes, m.transfer_repeats)
    sizes = list(dict.fromkeys(d.size for d in draws))
    for size in sizes:
        n_test = {d.split.test.size for d in draws if d.size == size}
        if max(n_test) <= 2:
            # issue 15 asks for k = 5: say what its score is worth
            notes.append(f"at {size} samples each draw trains on {size - max(n_test)} and tests on "
                         f"{'/'.join(map(str, sorted(n_test)))}: an R2 over so few points swings "
                         "wildly and only its spread over the draws means anything")
    pre = ctx.train(f"{MODEL_1D}_pretrain_slag",
                    trcsl_overrides(ctx, "slag", m.seeds[0], m.pretrain_epochs), figure="transfer")
    spec = _feature_spec(pre.run_id)
    targets = list(pre.targets)
    elements = [el for el in MN_FIRST if el in targets and el in ds.targets]
    missing = [el for el in PRETRAIN_ELEMENTS if el not in elements]
    if not elements:
        raise InputError(f"transfer: none of {MN_FIRST} is a target of both the pre-training "
                         f"({targets}) and {ds.path}")
    x_steel, y_steel = _mean_features(ds, spec), ds.target_matrix(elements)
    x_slag, y_slag, slag_ids = _source_data(ctx, pre, spec, elements)
    fits: list[dict] = []
    seconds = {mdl: [] for mdl in MODELS}
    for draw in draws:
        ids = ds.sample_ids
        common = {"size": draw.size, "draw": draw.repeat, "n_train": draw.split.train.size,
                  "n_test": draw.split.test.size,
                  "train_samples": ";".join(str(ids[i]) for i in draw.split.train),
                  "test_samples": ";".join(str(ids[i]) for i in draw.split.test)}
        for mdl, (result, sec) in _deep_runs(ctx, draw, pre, spec).items():
            seconds[mdl].append(sec)
            for el in elements:
                rmse = float(result.test_sample.get(f"test_sample_rmse_{el}", float("nan")))
                fits.append({**common, "model": mdl, "element": el, "r2": r2(result, el),
                             "rmse": rmse, "seconds": sec, "run_id": result.run_id})
        base = _baseline_scores(x_steel, y_steel, (x_slag, y_slag), draw, elements)
        for (mdl, el), (score, rmse, sec) in base.items():
            fits.append({**common, "model": mdl, "element": el, "r2": score, "rmse": rmse,
                         "seconds": sec, "run_id": ""})
        for mdl in BASELINES:
            seconds[mdl].append(sum(v[2] for (b, _), v in base.items() if b == mdl))
        mn = {f["model"]: f["r2"] for f in fits if f["size"] == draw.size and f["draw"] == draw.repeat
              and f["element"] == elements[0]}
        ctx.log(f"transfer: n={draw.size} draw {draw.repeat}: {elements[0]} R2 "
                + ", ".join(f"{k} {fmt(v, 2)}" for k, v in mn.items()))
    summary = summarize(fits, sizes, elements)
    csv_fits = write_rows_csv(ctx.out_dir / "transfer.csv", fits, FIT_COLUMNS)
    csv_summary = write_rows_csv(ctx.out_dir / "transfer_summary.csv", summary, SUMMARY_COLUMNS)
    res.images.append(plot(fits, summary, sizes, elements, ctx.out_dir / "transfer.png", ds.path.name))
    if ctx.parent_run_id:
        from saca_lab import tracking

        for path in (csv_fits, csv_summary):
            tracking.client().log_artifact(ctx.parent_run_id, str(path))
    add_rows(res, summary, sizes, elements, len([d for d in draws if d.size == sizes[-1]]))
    elapsed = time.perf_counter() - t0
    res.text = report_text(m, summary, sizes, elements, seconds, elapsed, notes, missing, pre, len(draws),
                     len(slag_ids))
    return res

