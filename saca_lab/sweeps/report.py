"""Report of a study: best parameters, importances, metric-vs-parameter plots, per-trial table.

The metric-vs-parameter figure follows TrCSL Fig. 9 (Ma et al., JAAS 2025, 40, 1810): one
column per searched parameter, the series axis (1D vs 2D, or the experiment files) as
side-by-side bars with the spread over repeated seeds, one row per metric. Written as PNG +
``report.md`` + ``trials.csv`` and logged to the study's MLflow parent run under ``report/``.
"""

from __future__ import annotations

import contextlib
import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from saca_lab import tracking
from saca_lab.errors import InputError
from saca_lab.io import atomic_path, new_figure, save_figure
from saca_lab.sweeps.spec import HEARTBEAT, short_name
from saca_lab.sweeps.storage import DEFAULT_STORAGE, check_url, open_storage, redact

#: Distinct values up to which a numeric parameter is drawn as bars rather than a scatter.
MAX_BARS = 12
#: Panels per row of the metric-vs-parameter figure.
MAX_COLUMNS = 4


def load_study(study_name: str, storage: str | None = None):
    """An existing study, or an InputError listing the studies the storage holds."""
    import optuna

    url = check_url(storage or DEFAULT_STORAGE)
    if url.startswith("sqlite") and not Path(url.split(":///", 1)[1]).is_file():
        raise InputError(f"--storage {redact(url)!r}: no such database; run a sweep first")
    rdb = open_storage(url, HEARTBEAT)
    names = optuna.study.get_all_study_names(rdb)
    if study_name not in names:
        raise InputError(f"no study {study_name!r} in {redact(url)}; studies: {', '.join(names) or 'none'}")
    return optuna.load_study(study_name=study_name, storage=rdb), url


def trial_rows(study, extra_metrics=()) -> list[dict]:
    """One dict per trial: number, state, value, params, extra metrics, epochs, seconds, ..."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        metrics = t.user_attrs.get("metrics") or {}
        rows.append({"number": t.number, "state": t.state.name, "value": t.value, "params": dict(t.params),
                     **{m: metrics.get(m) for m in extra_metrics},
                     "epochs": t.user_attrs.get("epochs"), "seconds": t.user_attrs.get("seconds"),
                     "retry_of": t.system_attrs.get("failed_trial"), "worker": t.user_attrs.get("worker"),
                     "mlflow_run_id": t.user_attrs.get("mlflow_run_id"), "error": t.user_attrs.get("error")})
    return rows


def _varying(rows: list[dict]) -> list[str]:
    values = defaultdict(set)
    for r in rows:
        if r["state"] == "COMPLETE":
            for k, v in r["params"].items():
                values[k].add(repr(v))
    return [k for k, v in values.items() if len(v) > 1]


def importances(study, rows: list[dict]) -> dict[str, float]:
    """fANOVA importances of the varying parameters: empty with fewer than two of them or
    fewer than four complete trials (the forest has nothing to split)."""
    import optuna

    varying = _varying(rows)
    complete = sum(r["state"] == "COMPLETE" for r in rows)
    if len(varying) < 2 or complete < max(4, len(varying) + 2):
        return {}
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator, params=varying))
    except (ValueError, RuntimeError):  # e.g. parameters not shared by every complete trial
        return {}


def _sort_key(v):
    return (0, float(v), "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0.0, str(v))


def _label(path: str, value) -> str:
    return Path(value).stem if path == "experiment" else _fmt(value)


def axis_kinds(study) -> dict[str, str]:
    """How to draw each parameter: ``bars`` (categorical, or a short integer range), ``scatter``
    or ``log`` (a scatter on a log axis) for continuous and log-distributed ones."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    kinds: dict[str, str] = {}
    for t in study.get_trials(deepcopy=False):
        for name, dist in t.distributions.items():
            if isinstance(dist, CategoricalDistribution) or (
                    isinstance(dist, IntDistribution) and not dist.log
                    and (dist.high - dist.low) // dist.step < MAX_BARS):
                kinds[name] = "bars"
            else:
                kinds[name] = "log" if getattr(dist, "log", False) else "scatter"
    return kinds


def plot_params(rows: list[dict], metrics: list[str], series: str | None, path: Path,
                kinds: dict[str, str] | None = None) -> Path | None:
    """TrCSL Fig. 9-style panels: metric (rows) vs each searched parameter (columns); bars
    (mean and spread over repeats) for discrete parameters, a scatter for continuous ones."""
    import matplotlib

    done = [r for r in rows if r["state"] == "COMPLETE"]
    varying = _varying(rows)
    if not done or not varying:
        return None
    series = series if series in varying else None
    xs = [k for k in varying if k not in (series, "seed")] or [series or varying[0]]
    if xs == [series]:
        series = None
    groups = sorted({r["params"].get(series) for r in done}, key=_sort_key) if series else [None]
    panels = [(metric, x) for metric in metrics for x in xs]  # a row per metric, wrapped at 4
    ncols = min(len(xs), MAX_COLUMNS)
    nrows = math.ceil(len(panels) / ncols) if len(xs) > MAX_COLUMNS else len(metrics)
    fig, axes = new_figure(nrows, ncols, figsize=(4.6 * ncols, 3.4 * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (metric, x) in enumerate(panels):
        ax = axes.flat[k]
        levels = sorted({r["params"][x] for r in done if x in r["params"]}, key=_sort_key)
        kind = (kinds or {}).get(x, "bars" if len(levels) <= MAX_BARS else "scatter")
        bars = kind == "bars" or not all(isinstance(v, (int, float)) for v in levels)
        width = 0.8 / len(groups)
        for g, group in enumerate(groups):
            sel = [r for r in done if x in r["params"] and r.get(metric) is not None
                   and (series is None or r["params"].get(series) == group)]
            label = _label(series, group) if series else None
            color = colors[g % len(colors)]
            if bars:
                pos = np.arange(len(levels)) + (g - (len(groups) - 1) / 2) * width
                vals = [[r[metric] for r in sel if r["params"][x] == lv] for lv in levels]
                mean = [np.mean(v) if v else np.nan for v in vals]
                std = [np.std(v) if len(v) > 1 else 0.0 for v in vals]
                ax.bar(pos, mean, width, yerr=std, capsize=3, color=color, alpha=0.75, label=label)
                for p, v in zip(pos, vals, strict=True):
                    ax.plot([p] * len(v), v, ".", color="k", ms=3)
            else:
                ax.plot([r["params"][x] for r in sel], [r[metric] for r in sel], "o", color=color,
                        ms=4, label=label)
        if bars:
            ax.set_xticks(np.arange(len(levels)), [_label(x, v) for v in levels],
                          rotation=30 if any(len(_label(x, v)) > 6 for v in levels) else 0)
        elif kind == "log":
            ax.set_xscale("log")
        if "_r2_" in metric and ax.get_ylim()[0] < -1:  # a diverged trial would flatten the rest
            ax.set_ylim(bottom=-1)
        ax.set_xlabel(short_name(x))
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if series and k == 0:
            ax.legend(title=short_name(series), fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def plot_history(study, metric: str, path: Path) -> Path | None:
    """Objective per trial with the best so far, and every trial's per-epoch curve (pruned
    trials stop early)."""
    trials = study.get_trials(deepcopy=False)
    if not trials:
        return None
    maximize = study.direction.name == "MAXIMIZE"
    fig, (ax1, ax2) = new_figure(1, 2, figsize=(11, 3.8))
    done = [t for t in trials if t.state.name == "COMPLETE"]
    if done:
        vals = [t.value for t in done]
        best = np.maximum.accumulate(vals) if maximize else np.minimum.accumulate(vals)
        ax1.plot([t.number for t in done], vals, "o", ms=4, label="complete")
        ax1.step([t.number for t in done], best, where="post", color="k", label="best so far")
    pruned = [t for t in trials if t.state.name == "PRUNED" and t.intermediate_values]
    if pruned:
        ax1.plot([t.number for t in pruned], [t.intermediate_values[t.last_step] for t in pruned],
                 "x", color="grey", label="pruned (last epoch)")
    ax1.set_xlabel("trial")
    ax1.set_ylabel(metric)
    if done or pruned:
        ax1.legend(fontsize=8)
    for t in trials:
        if t.intermediate_values:
            steps = sorted(t.intermediate_values)
            ax2.plot(steps, [t.intermediate_values[s] for s in steps], lw=1,
                     color="grey" if t.state.name == "PRUNED" else None, alpha=0.8)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel(f"{metric} (grey: pruned)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    values = [v for t in trials for v in t.intermediate_values.values() if math.isfinite(v)]
    if values and maximize:  # diverged early epochs (R2 of -1e6) would flatten every curve
        lo = np.percentile(values, 10)
        ax2.set_ylim(bottom=min(lo, max(values) - 1e-3), top=max(values) + 0.05 * (max(values) - lo + 1e-9))
    fig.tight_layout()
    save_figure(fig, path)
    return path


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _markdown(name, url, study, rows, metric, best, imps, plots, extra, parent) -> str:
    counts = defaultdict(int)
    for r in rows:
        counts[r["state"]] += 1
    params = sorted({k for r in rows for k in r["params"]})
    lines = [f"# Sweep `{name}`", "",
             f"- storage: `{redact(url)}`" + (f"; MLflow parent run `{parent}`" if parent else ""),
             f"- objective: {study.direction.name.lower()} `{metric}`; trials: "
             + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) + f" ({len(rows)} in all)"]
    if best is not None:
        lines.append(f"- best: trial {best.number}, {metric} = {best.value:.4g}; "
                     + ", ".join(f"`{k}` = {_label(k, v)}" for k, v in best.params.items())
                     + (f"; MLflow run `{best.user_attrs['mlflow_run_id']}`"
                        if best.user_attrs.get("mlflow_run_id") else ""))
    if imps:
        lines += ["", "## Parameter importances (fANOVA)", "", "| parameter | importance |", "|---|---:|"]
        lines += [f"| `{k}` | {v:.3f} |" for k, v in imps.items()]
    if plots:
        lines += ["", "## Metric vs parameter", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    head = ["#", "state", metric, *map(short_name, params), *extra, "epochs", "s", "retry of"]
    lines += ["", "## Trials", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["number"], r["state"], _fmt(r["value"]),
                 *(_label(k, r["params"][k]) if k in r["params"] else "" for k in params),
                 *(_fmt(r[m]) for m in extra), _fmt(r["epochs"]), _fmt(r["seconds"]), _fmt(r["retry_of"])]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines) + "\n"


def _write_csv(rows: list[dict], path: Path) -> Path:
    params = sorted({k for r in rows for k in r["params"]})
    other = [k for k in rows[0] if k != "params"] if rows else []
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*other, *params])
        for r in rows:
            writer.writerow([*(r[k] for k in other), *(r["params"].get(k) for k in params)])
    return path


def sweep_report(study_name: str, storage: str | None = None, out_dir: str | Path | None = None) -> dict:
    """Write ``report.md``, ``trials.csv``, ``params.png`` and ``history.png`` for a study and
    log them to its MLflow parent run.

    Returns
    -------
    dict
        ``out_dir``, ``markdown``, ``csv``, ``plots`` (paths), ``metric``, ``direction``,
        ``best_trial``, ``best_value``, ``best_params`` (None without a complete trial),
        ``importances``, ``trials`` (one dict per trial) and ``parent_run_id``.
    """
    from saca_lab.sweeps.runner import quiet_logs

    with quiet_logs():
        study, url = load_study(study_name, storage)
    attrs = study.user_attrs
    metric = attrs.get("objective", "value")
    extra = list(attrs.get("report_metrics") or [])
    rows = trial_rows(study, extra)
    for r in rows:
        r[metric] = r["value"] if r["state"] == "COMPLETE" else None
    out = Path(out_dir) if out_dir else Path("reports") / "sweeps" / study_name
    out.mkdir(parents=True, exist_ok=True)
    best = None
    with contextlib.suppress(ValueError):
        best = study.best_trial
    imps = importances(study, rows)
    plots = [p for p in (plot_params(rows, [metric, *extra], attrs.get("series"), out / "params.png",
                                     axis_kinds(study)),
                         plot_history(study, metric, out / "history.png")) if p]
    parent = attrs.get("mlflow_parent_run_id")
    md = out / "report.md"
    with atomic_path(md) as tmp:
        tmp.write_text(_markdown(study_name, url, study, rows, metric, best, imps, plots, extra, parent))
    table = _write_csv(rows, out / "trials.csv")
    if parent:
        client = tracking.client()
        client.log_artifacts(parent, str(out), artifact_path="report")
        if best is not None:
            client.log_metric(parent, f"best_{metric}", best.value)
            client.set_tag(parent, "best_trial", str(best.number))
            for k, v in best.params.items():
                client.set_tag(parent, f"best.{k}", str(v)[:500])
    return {"out_dir": out, "markdown": md, "csv": table, "plots": plots, "metric": metric,
            "direction": study.direction.name.lower(),
            "best_trial": best.number if best else None, "best_value": best.value if best else None,
            "best_params": dict(best.params) if best else None, "importances": imps,
            "trials": rows, "parent_run_id": parent}
