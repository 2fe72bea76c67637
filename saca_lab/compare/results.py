"""Rows of a comparison study: one per fit, a summary per model and size, CSV files, a table."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence

import numpy as np

from saca_lab.io import write_rows_csv
from saca_lab.training.reporting import r2_or_nan

FIT_COLUMNS = ("model", "dataset", "element", "mode", "size", "repeat", "n_train", "n_test",
               "r2", "rmse", "fit_seconds", "params", "run_id")
SUMMARY_COLUMNS = ("model", "dataset", "element", "mode", "size", "n_fits", "r2_mean", "r2_std",
                   "rmse_mean", "rmse_std", "pooled_r2", "pooled_rmse", "fit_seconds_mean")
PREDICTION_COLUMNS = ("model", "dataset", "size", "repeat", "sample_id", "y_true", "y_pred")
#: predictions.csv with ``--interval``: the conformal bounds (CV+ for baselines, split
#: conformal for deep models; empty for models without intervals) and, for a model that
#: predicts a standard deviation (GLL), that sigma and its own Gaussian bounds
INTERVAL_PREDICTION_COLUMNS = PREDICTION_COLUMNS + ("y_lo", "y_hi", "y_sigma", "y_lo_sigma",
                                                    "y_hi_sigma")
#: ``method``: ``cv+`` (``folds`` = K; for a deep model ``n_calibration`` out-of-fold
#: residuals per fit, one per training sample), ``split`` (split conformal, ``n_calibration``
#: calibration samples per fit) or ``gaussian`` (the model's own sigma, no guarantee)
INTERVAL_COLUMNS = ("model", "method", "dataset", "element", "size", "level", "folds",
                    "n_calibration", "n_fits", "n_pred", "coverage", "coverage_ci_lo",
                    "coverage_ci_hi", "mean_width", "n_infinite")


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """R2 (NaN for fewer than two test samples or a constant truth) and RMSE."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    rmse = float(np.sqrt(np.mean((y_true - y_pred) ** 2)))
    r2 = r2_or_nan(y_true, y_pred)
    return r2, rmse


def fit_row(fit, element: str, mode: str, y_true, y_pred, seconds: float, params: dict,
            run_id: str = "") -> dict:
    r2, rmse = scores(y_true, y_pred)
    return {"model": fit.model, "dataset": fit.dataset, "element": element, "mode": mode,
            "size": fit.size, "repeat": fit.repeat, "n_train": len(fit.split.train),
            "n_test": len(fit.split.test), "r2": r2, "rmse": rmse, "fit_seconds": seconds,
            "params": json.dumps(params, sort_keys=True, default=_jsonable), "run_id": run_id}


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def summarize(rows: list[dict], predictions: list[dict]) -> list[dict]:
    """Mean and standard deviation (ddof=1) over repeats or folds, per model, dataset and size.

    In CV mode ``pooled_r2`` / ``pooled_rmse`` score all out-of-fold predictions together.
    """
    keys = list(dict.fromkeys((r["model"], r["dataset"], r["size"]) for r in rows))
    out = []
    for model, dataset, size in keys:
        group = [r for r in rows if (r["model"], r["dataset"], r["size"]) == (model, dataset, size)]
        r2_mean, r2_std = _mean_std([r["r2"] for r in group])
        rmse_mean, rmse_std = _mean_std([r["rmse"] for r in group])
        pooled_r2 = pooled_rmse = math.nan
        if group[0]["mode"] == "cv":
            preds = [p for p in predictions
                     if (p["model"], p["dataset"], p["size"]) == (model, dataset, size)]
            pooled_r2, pooled_rmse = scores([p["y_true"] for p in preds],
                                            [p["y_pred"] for p in preds])
        out.append({"model": model, "dataset": dataset, "element": group[0]["element"],
                    "mode": group[0]["mode"], "size": size, "n_fits": len(group),
                    "r2_mean": r2_mean, "r2_std": r2_std, "rmse_mean": rmse_mean,
                    "rmse_std": rmse_std, "pooled_r2": pooled_r2, "pooled_rmse": pooled_rmse,
                    "fit_seconds_mean": float(np.mean([r["fit_seconds"] for r in group]))})
    return out


def interval_summary(predictions: list[dict], element: str, level: float, folds: int) -> list[dict]:
    """Coverage and width of the prediction intervals per model, dataset and size, over every
    test prediction of every draw (:func:`saca_lab.baselines.intervals.interval_scores`)."""
    from saca_lab.baselines.intervals import interval_scores

    with_bounds = [p for p in predictions if "y_lo" in p]
    keys = list(dict.fromkeys((p["model"], p["dataset"], p["size"]) for p in with_bounds))
    out = []
    for model, dataset, size in keys:
        group = [p for p in with_bounds if (p["model"], p["dataset"], p["size"]) == (model, dataset, size)]
        method = group[0].get("interval_method", "cv+")
        scores_ = interval_scores([p["y_true"] for p in group], [p["y_lo"] for p in group],
                                  [p["y_hi"] for p in group])
        common = {"model": model, "dataset": dataset, "element": element, "size": size,
                  "level": level, "n_fits": len({p["repeat"] for p in group})}
        out.append({**common, "method": method, "folds": folds if method == "cv+" else 0,
                    "n_calibration": _mean_calibration(group), **scores_})
        if all("y_lo_sigma" in p for p in group):  # the model's own sigma, beside
            own = interval_scores([p["y_true"] for p in group], [p["y_lo_sigma"] for p in group],
                                  [p["y_hi_sigma"] for p in group])
            out.append({**common, "method": "gaussian", "folds": 0, "n_calibration": 0, **own})
    return out


def _mean_calibration(group: list[dict]) -> float:
    """Calibration samples per fit of a split-conformal group (0 for CV+)."""
    per_fit = {p["repeat"]: p.get("n_calibration", 0) for p in group}
    return float(np.mean(list(per_fit.values())))


def format_interval_table(rows: list[dict]) -> str:
    """Coverage (with its binomial CI) and mean width per model and size; a CV+ row's method
    names its K (``CV+ (K=5)``)."""
    head = (f"{'model':<18} {'method':<10} {'size':>5} {'preds':>5}  {'coverage':>8}  "
            f"{'95% CI':>15}  {'mean width':>10}  {'infinite':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        method = r.get("method", "cv+")
        if method == "cv+" and r.get("folds"):
            method = f"CV+ (K={r['folds']})"
        lines.append(f"{r['model']:<18} {method:<10} {r['size']:>5} "
                     f"{r['n_pred']:>5}  {r['coverage']:>8.3f}  "
                     f"[{r['coverage_ci_lo']:.3f}, {r['coverage_ci_hi']:.3f}]  "
                     f"{r['mean_width']:>10.4g}  {r['n_infinite']:>8}")
    return "\n".join(lines)


def prediction_rows(fit, sample_ids: Sequence[str], index, y_true, y_pred) -> list[dict]:
    return [{"model": fit.model, "dataset": fit.dataset, "size": fit.size, "repeat": fit.repeat,
             "sample_id": sample_ids[int(i)], "y_true": float(t), "y_pred": float(p)}
            for i, t, p in zip(index, y_true, y_pred, strict=True)]


def write_csv(path: str | os.PathLike, rows: list[dict], columns: Sequence[str]) -> None:
    write_rows_csv(path, rows, columns, float_format=".6g")


def read_csv(path: str | os.PathLike) -> list[dict]:
    """Rows of a CSV written by :func:`write_csv`; numbers converted back."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for k, v in row.items():
            if k in ("size", "repeat", "n_train", "n_test", "n_fits", "n_pred", "n_infinite",
                     "folds"):
                row[k] = int(v)
            elif k not in ("model", "dataset", "element", "mode", "params", "run_id", "sample_id",
                           "method"):
                row[k] = float(v) if v not in ("", "nan") else math.nan
    return rows


def format_table(summary: list[dict]) -> str:
    """A plain-text table: model, dataset, size, R2 mean +- std, RMSE mean +- std."""
    cv = any(s["mode"] == "cv" for s in summary)
    head = f"{'model':<18} {'dataset':<16} {'size':>5} {'fits':>4}  {'R2':>17}  {'RMSE':>19}"
    head += "  pooled R2" if cv else ""
    lines = [head, "-" * len(head)]
    for s in summary:
        line = (f"{s['model']:<18} {s['dataset']:<16} {s['size']:>5} {s['n_fits']:>4}  "
                f"{s['r2_mean']:>8.3f} ± {s['r2_std']:<6.3f}  "
                f"{s['rmse_mean']:>9.4g} ± {s['rmse_std']:<7.3g}")
        if cv:
            line += f"  {s['pooled_r2']:>9.3f}"
        lines.append(line)
    return "\n".join(lines)
