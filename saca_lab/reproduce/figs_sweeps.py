"""Figures that are hyper-parameter sweeps: TrCSL Fig. 9 (a-c) and ESI Fig. S3 / S4.

Each runs a shipped sweep file (``sweeps/``) as an Optuna study named after the mode, so a
second reproduction resumes the finished study instead of training it again.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time

import numpy as np

from saca_lab.io import copy_file, write_text
from saca_lab.reproduce import paper
from saca_lab.reproduce.context import SWEEPS, Context, FigureResult, Row, fmt, override_text
from saca_lab.runtime import resolve_precision

FIG9_AXES = {"fig9a_conv_units": "n_units", "fig9b_kernel_size": "kernel_size",
             "fig9c_kernel_count": "kernels"}


def _overrides(ctx: Context, dims_switch: bool) -> list[str]:
    """The mode's settings of every trial, as text: it reaches the study's stored identity
    (:func:`~saca_lab.reproduce.context.override_text`, unchanged so studies resume)."""
    m = ctx.mode
    out = [("data.dataset", m.slag), ("data.shots", m.shots), ("train.max_epochs", int(m.sweep_epochs)),
           *m.sweep_set]  # precision: "auto" (runtime.py)
    if dims_switch and m.dims == "1d":  # S3/S4 sweep one model; quick mode uses its 1D form
        out.append(("model.name", "trcsl_1d"))
    return [override_text(o) for o in out]


def run_study(ctx: Context, stem: str, dims_switch: bool = False) -> dict:
    """Run (or resume) ``sweeps/STEM.yaml`` for this mode and write its report."""
    from saca_lab.sweeps import run_sweep, sweep_report

    overrides = _overrides(ctx, dims_switch)
    # the overrides are part of a study's identity: another mode's settings get another study,
    # and so does another precision (train.precision "auto" resolves by the hardware)
    digest = hashlib.sha256(json.dumps([*overrides, resolve_precision("auto")]).encode()).hexdigest()[:8]
    name = f"reproduce-{ctx.mode.name}-{stem}-{digest}"
    if not ctx.reuse:
        name += f"-{int(time.time())}"
    ctx.log(f"sweep {stem}: study {name}")
    run_sweep(SWEEPS / f"{stem}.yaml", n_trials=ctx.mode.sweep_trials, study_name=name, overrides=overrides,
              progress=ctx.progress)
    return sweep_report(name, out_dir=ctx.out_dir / "sweeps" / stem)


def run_series_studies(ctx: Context, stem: str, axis: str, fig9_2d: dict) -> dict:
    """Fig. 9 under a plan (:mod:`saca_lab.reproduce.plan`): the 1D and the 2D trials of
    ``sweeps/STEM.yaml`` as two studies, the 1D one on the whole grid with the mode's epochs, the
    2D one on the plan's values and epochs, merged into one report (rows and a params plot)."""
    import yaml

    from saca_lab.sweeps import run_sweep, sweep_report
    from saca_lab.sweeps.report import plot_params
    from saca_lab.sweeps.spec import load_sweep

    shipped = load_sweep(SWEEPS / f"{stem}.yaml")
    # its extends: chain merged in, and the experiment by absolute path: the derived file lives elsewhere
    raw = {**copy.deepcopy(shipped.source), "base": str(shipped.base)}
    path = f"model.overrides.{axis}"
    reports = []
    for model, epochs, values in (("trcsl_1d", ctx.mode.sweep_epochs, None),
                                  ("trcsl", fig9_2d["epochs"], fig9_2d["values"][axis])):
        spec = {**raw, "space": {**raw["space"], "model.name": {"type": "categorical", "choices": [model]}}}
        if values is not None:
            spec["space"][path] = {"type": "categorical", "choices": list(values)}
        derived = ctx.out_dir / "sweeps" / "plan" / f"{stem}-{model}.yaml"
        derived.parent.mkdir(parents=True, exist_ok=True)
        write_text(derived, yaml.safe_dump(spec, sort_keys=False))  # another reproduction may be reading it
        overrides = [o for o in _overrides(ctx, False) if not o.startswith("train.max_epochs=")]
        overrides.append(override_text(("train.max_epochs", int(epochs))))
        digest = hashlib.sha256(json.dumps([*overrides, spec["space"], resolve_precision("auto")],
                                           sort_keys=True).encode()).hexdigest()[:8]
        name = f"reproduce-{ctx.mode.name}-{stem}-{model}-{digest}"
        if not ctx.reuse:
            name += f"-{int(time.time())}"
        ctx.log(f"sweep {stem} ({model}, {epochs} epochs): study {name}")
        n_trials = None if ctx.mode.sweep_trials is None else \
            min(ctx.mode.sweep_trials, load_sweep(derived).budget)
        run_sweep(derived, n_trials=n_trials, study_name=name, overrides=overrides, progress=ctx.progress)
        reports.append(sweep_report(name, out_dir=ctx.out_dir / "sweeps" / f"{stem}-{model}"))
    rows = [r for rep in reports for r in rep["trials"]]
    metrics = [reports[0]["metric"], *(raw.get("report") or {}).get("metrics", [])]
    plot = plot_params(rows, metrics, "model.name", ctx.out_dir / "sweeps" / f"{stem}-params.png",
                       {"model.name": "bars", path: "bars"})
    return {"trials": rows, "direction": reports[0]["direction"],
            "plots": [plot] if plot else [p for rep in reports for p in rep["plots"]],
            "reports": [f"sweeps/{stem}-{m}/report.md" for m in ("trcsl_1d", "trcsl")]}


def _param(row: dict, axis: str):
    return next(v for k, v in row["params"].items() if k.rsplit(".", 1)[-1] == axis)


def _best_by_series(report: dict, axis: str) -> dict[str, tuple[object, float]]:
    """Best axis value and objective per model (1D / 2D) among completed trials."""
    sign = 1 if report["direction"] == "maximize" else -1
    best: dict[str, tuple[object, float]] = {}
    for row in report["trials"]:
        if row["state"] != "COMPLETE" or row["value"] is None:
            continue
        series = "1d" if str(row["params"].get("model.name", "")).endswith("_1d") else "2d"
        value = float(row["value"])
        if series not in best or sign * value > sign * best[series][1]:
            best[series] = (_param(row, axis), value)
    return best


def _copy_plot(ctx: Context, report: dict, name: str):
    if not report["plots"]:
        return None
    dst = ctx.out_dir / f"{name}.png"
    copy_file(report["plots"][0], dst)
    return dst


def fig9(ctx: Context) -> FigureResult:
    """Conv units, kernel size and kernel count, 1D vs 2D CNN-SE-LSTM (objective: val R2 Mn)."""
    res = FigureResult("fig9", "TrCSL Fig. 9: conv units, kernel size, kernel count (1D vs 2D)")
    texts = []
    plan = getattr(ctx, "plan", None)
    for stem, axis in FIG9_AXES.items():
        report = run_study(ctx, stem) if plan is None else run_series_studies(ctx, stem, axis, plan.fig9_2d)
        if (img := _copy_plot(ctx, report, stem.split("_")[0])) is not None:
            res.images.append(img)
        best = _best_by_series(report, axis)
        for dims in ("1d", "2d"):
            if dims not in best:
                res.rows.append(Row("Fig. 9", f"best {axis} ({dims})", str(paper.FIG9_BEST[axis][dims]),
                                    "no completed trial", "n/a", "sweep budget below the grid"))
                continue
            value, score = best[dims]
            res.rows.append(Row("Fig. 9", f"best {axis} ({dims})", str(paper.FIG9_BEST[axis][dims]),
                                f"{value} (val R2 Mn {fmt(score)})",
                                "agrees" if value == paper.FIG9_BEST[axis][dims] else "differs"))
        if axis == "kernel_size":
            for dims in ("1d", "2d"):
                k3 = [r["value"] for r in report["trials"] if r["state"] == "COMPLETE"
                      and _param(r, axis) == 3 and (str(r["params"].get("model.name", "")).endswith("_1d")
                                                    == (dims == "1d"))]
                ours = float(np.max(k3)) if k3 else float("nan")
                verdict = ("n/a" if not k3 else
                           "agrees" if abs(ours - paper.FIG9_R2_K3[dims]) <= 0.02 else "differs")
                res.rows.append(Row("Fig. 9", f"R2 Mn at kernel size 3 ({dims})",
                                    fmt(paper.FIG9_R2_K3[dims], 4), fmt(ours) if k3 else "not run",
                                    verdict, "validation samples of the slag set"))
        where = ", ".join(f"`{r}`" for r in report.get("reports", [f"sweeps/{stem}/report.md"]))
        texts.append(f"- `{stem}`: {len(report['trials'])} trials, report(s) {where}")
    res.text = "\n".join(texts)
    return res


def _hidden_units(ctx: Context, stem: str, axis: str, want: int, figure: str, label: str) -> FigureResult:
    res = FigureResult(figure, label)
    report = run_study(ctx, stem, dims_switch=True)
    if (img := _copy_plot(ctx, report, figure)) is not None:
        res.images.append(img)
    # The ESI ranks by RMSE; our objective is val R2 of Mn, the same ordering on one split.
    best = report["best_params"] or {}
    value = next((v for k, v in best.items() if k.rsplit(".", 1)[-1] == axis), None)
    res.rows.append(Row(figure.replace("fig", "Fig. "), f"best {axis}", str(want),
                        f"{value} (val R2 Mn {fmt(report['best_value'] or float('nan'))})",
                        "agrees" if value == want else "differs",
                        f"{'1D' if ctx.mode.dims == '1d' else '2D'} CNN-SE-LSTM, {ctx.mode.sweep_epochs} epochs"))
    res.text = f"{len(report['trials'])} trials, report `sweeps/{stem}/report.md`"
    return res


def figS3(ctx: Context) -> FigureResult:
    return _hidden_units(ctx, "s3_se_hidden", "se_hidden", paper.FIGS3_BEST_SE, "figS3",
                         "TrCSL Fig. S3: SE block hidden units")


def figS4(ctx: Context) -> FigureResult:
    return _hidden_units(ctx, "s4_lstm_hidden", "lstm_hidden", paper.FIGS4_BEST_LSTM, "figS4",
                         "TrCSL Fig. S4: LSTM hidden units")
