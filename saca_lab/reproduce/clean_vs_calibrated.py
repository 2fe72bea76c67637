"""Clean vs calibrated (issue 16, section 3): Fig. 14 and the transfer study at both nuisance levels.

The papers' presets carry a calibrated nuisance by default (sample- and session-level errors of
real LIBS that shot averaging does not remove: :mod:`saca_lab.spectra.nuisance`); with
``nuisance: none`` the same presets hold shot noise only, and a linear model on 20 simulated
samples is already near R2 0.98. A verdict on TrCSL's small-sample claim therefore depends on
the level, and this section shows both: the calibrated side is what Fig. 14 and the transfer
study of this report computed (their ``compare-fig14/summary.csv`` and
``transfer_summary.csv``, read back; run here if this report did not run them), the clean side
reruns both on the same mode with ``nuisance: none`` into ``clean/``. Every row of both sides
is judged by the figures' own rules (:func:`~saca_lab.reproduce.figs_compare.fig14_rows`,
:func:`~saca_lab.reproduce.transfer_report.summary_rows`).

The clean side doubles the cost of those two figures, so a mode may leave it out
(``Mode.clean_vs_calibrated``; the quick mode does): the section then says so. Named in
``--only``, it runs in every mode (:func:`saca_lab.reproduce.plan.make_plan`).
"""

from __future__ import annotations

import copy
import csv
import json
import time
from dataclasses import replace
from pathlib import Path

from saca_lab.errors import InputError
from saca_lab.io import copy_file
from saca_lab.reproduce.context import Context, FigureResult, Row
from saca_lab.reproduce.settings import Mode

#: The datasets whose nuisance the two sides differ by (the stainless set of SACA is not used).
DATASETS = ("slag", "carbon_steel")
CLEAN_DIR = "clean"


def nuisance_of(spec) -> str:
    """The nuisance setting a Mode dataset spec resolves to: ``calibrated``, ``none``, an
    explicit mapping (as JSON), or ``as stored`` for a dataset directory."""
    from saca_lab.spectra.presets import get_preset

    if not isinstance(spec, dict):
        return "as stored in the dataset"
    value = spec.get("nuisance", get_preset(spec["preset"]).nuisance)
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def header_line(mode: Mode) -> str:
    """The report header's line on the nuisance level of every dataset of the mode."""
    levels = ", ".join(f"{which.replace('_', '-')} `{nuisance_of(getattr(mode, which))}`"
                       for which in ("slag", "carbon_steel", "stainless"))
    side = ("the 'clean vs calibrated' section reruns Fig. 14 and the transfer study with "
            "`nuisance: none`" if mode.clean_vs_calibrated else
            "the clean (`nuisance: none`) side of 'clean vs calibrated' is left to the full mode "
            "(`clean_vs_calibrated=False`)")
    return (f"- Nuisance (issue 16; levels in `saca_lab.spectra.nuisance.CALIBRATED`, "
            f"calibration in BENCHMARKS.md \"difficulty\"): {levels}; {side}")


def clean_mode(mode: Mode) -> Mode:
    """``mode`` with ``nuisance: none`` on the slag and carbon-steel presets."""
    changes = {}
    for which in DATASETS:
        spec = getattr(mode, which)
        if not isinstance(spec, dict):
            raise InputError(f"clean_vs_calibrated: {which}={spec!r} is a dataset directory, whose "
                             "nuisance is fixed when it was made; use a preset spec or "
                             "--set clean_vs_calibrated=false")
        changes[which] = {**spec, "nuisance": "none"}
    return replace(mode, **changes)


def _read_csv(path: Path, ints=(), floats=()) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r.update({k: int(r[k]) for k in ints if k in r})
        r.update({k: float(r[k]) if r[k] != "" else float("nan") for k in floats if k in r})
    return rows


def _fig14_summary(out: Path) -> list[dict]:
    return _read_csv(out / "compare-fig14" / "summary.csv", ints=("size", "n_fits"),
                     floats=("r2_mean", "r2_std"))


def _transfer_summary(out: Path) -> list[dict]:
    return _read_csv(out / "transfer_summary.csv", ints=("size", "n"),
                     floats=("mean", "std", "ci_low", "ci_high", "wins"))


FILES = {"fig14": Path("compare-fig14") / "summary.csv", "transfer": Path("transfer_summary.csv")}


def _run_side(ctx: Context, fresh_since: float) -> dict[str, list[dict]]:
    """Fig. 14's and the transfer study's summaries in ``ctx.out_dir``; a figure whose file was
    not written by this reproduction (after ``fresh_since``) is run first."""
    from saca_lab.reproduce import figs_compare, figs_transfer

    run = {"fig14": figs_compare.fig14, "transfer": figs_transfer.transfer}
    for name, fn in run.items():
        path = ctx.out_dir / FILES[name]
        if not (path.is_file() and path.stat().st_mtime >= fresh_since):
            ctx.log(f"clean_vs_calibrated: running {name} on {ctx.out_dir}")
            fn(ctx)
    return {"fig14": _fig14_summary(ctx.out_dir), "transfer": _transfer_summary(ctx.out_dir)}


def _rows(mode: Mode, summaries: dict[str, list[dict]]) -> list[Row]:
    from saca_lab.reproduce import figs_compare, transfer_report

    return (figs_compare.fig14_rows(mode, summaries["fig14"], mode.model("trcsl"))
            + transfer_report.summary_rows(summaries["transfer"]))


def clean_vs_calibrated(ctx: Context) -> FigureResult:
    """Fig. 14 and the transfer study at the mode's nuisance and at ``nuisance: none``."""
    m = ctx.mode
    res = FigureResult("clean_vs_calibrated", "Clean vs calibrated: Fig. 14 and the transfer "
                                              "study with and without the nuisance")
    levels = ", ".join(f"{w.replace('_', '-')} `{nuisance_of(getattr(m, w))}`" for w in DATASETS)
    if not m.clean_vs_calibrated:
        res.text = (f"Only the mode's level ran ({levels}): this mode leaves the clean side "
                    "(`nuisance: none`) out to save time (`clean_vs_calibrated=False`; the full "
                    "mode runs it, as do `--only clean_vs_calibrated` and "
                    "`--set clean_vs_calibrated=true`).")
        return res
    clean = clean_mode(m)
    # files written after this reproduction started belong to it (Context.started is a
    # perf_counter reading)
    started = time.time() - (time.perf_counter() - ctx.started)
    calibrated = _run_side(ctx, started)
    clean_ctx = copy.copy(ctx)
    clean_ctx.mode = clean
    clean_ctx.out_dir = ctx.out_dir / CLEAN_DIR
    clean_ctx.out_dir.mkdir(parents=True, exist_ok=True)
    clean_side = _run_side(clean_ctx, started)
    for name in ("fig14", "transfer"):
        src = clean_ctx.out_dir / f"{name}.png"
        if src.is_file():
            dst = ctx.out_dir / f"{name}_clean.png"
            copy_file(src, dst)
            res.images.append(dst)
    cal_rows, clean_rows = _rows(m, calibrated), _rows(clean, clean_side)
    if [r.quantity for r in cal_rows] != [r.quantity for r in clean_rows]:
        raise InputError("clean_vs_calibrated: the two sides ran different sizes or models")
    table = ["| figure | quantity | paper | calibrated (ours) | verdict | clean (ours) | verdict |",
             "|---|---|---|---|---|---|---|"]
    changed = []
    for a, b in zip(cal_rows, clean_rows, strict=True):
        table.append(f"| {a.figure} | {a.quantity} | {a.paper} | {a.ours} | {a.verdict} | "
                     f"{b.ours} | {b.verdict} |")
        # the clean side's verdicts join the paper-vs-ours table; the calibrated ones are there
        # already, from Fig. 14 and the transfer study
        res.rows.append(Row(f"{b.figure} (clean)", b.quantity, b.paper, b.ours, b.verdict,
                            f"nuisance: none; calibrated: {a.ours} ({a.verdict})"))
        if a.verdict != b.verdict:
            changed.append(f"{a.figure}: {a.quantity} ({b.verdict} clean, {a.verdict} calibrated)")
    res.text = "\n".join([
        f"Calibrated side: this report's datasets ({levels}); clean side: the same mode with "
        "`nuisance: none` (outputs in `clean/`; figures `fig14_clean.png`, "
        "`transfer_clean.png`). Rows judged by each figure's own rule.", "",
        *table, "",
        ("Verdicts that depend on the nuisance: " + "; ".join(changed) + "."
         if changed else "No verdict depends on the nuisance level."),
    ])
    return res
