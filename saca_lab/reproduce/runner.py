"""``saca-lab reproduce``: run every figure, log each to its own MLflow experiment, write report.md.

A figure that fails is reported as failed (with its error) and the others still run; the
command then exits non-zero.
"""

from __future__ import annotations

import csv
import os
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from saca_lab import tracking
from saca_lab.errors import InputError
from saca_lab.reproduce import figs_data, figs_training, saca
from saca_lab.reproduce.context import Context, FigureResult, Row
from saca_lab.reproduce.settings import Mode

FigureFn = Callable[[Context], FigureResult]


def _registry() -> dict[str, FigureFn]:
    from saca_lab.reproduce import clean_vs_calibrated, figs_compare, figs_sweeps, figs_transfer

    return {
        "fig8": figs_data.fig8, "table1": figs_data.table1, "fig13": figs_data.fig13,
        "fig12": figs_training.fig12, "fig11": figs_training.fig11,
        "fig9": figs_sweeps.fig9, "figS3": figs_sweeps.figS3, "figS4": figs_sweeps.figS4,
        "fig14": figs_compare.fig14, "fig15": figs_compare.fig15,
        "transfer": figs_transfer.transfer,
        "clean_vs_calibrated": clean_vs_calibrated.clean_vs_calibrated,
        "saca_table1": saca.saca_table1, "saca_speed": saca.saca_speed,
    }


def figure_names() -> list[str]:
    return list(_registry())


def parse_only(text: str | None) -> list[str]:
    names = figure_names()
    if not text:
        return names
    wanted = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise InputError(f"--only: unknown figure(s) {unknown}; choose from {', '.join(names)}")
    return [n for n in names if n in wanted]  # registry order: dependencies first


def _log_figure(ctx: Context, res: FigureResult, run_id: str) -> None:
    client = tracking.client()
    for img in res.images:
        client.log_artifact(run_id, str(img))
    client.log_metric(run_id, "seconds", res.seconds)
    for i, row in enumerate(res.rows):
        try:
            client.log_metric(run_id, f"ours_{i:02d}", float(row.ours.split()[0].rstrip(",")))
        except ValueError:
            pass
        client.set_tag(run_id, f"row_{i:02d}", f"{row.quantity}: paper {row.paper}, ours {row.ours} "
                                               f"({row.verdict})"[:5000])


def run_figure(ctx: Context, name: str, fn: FigureFn) -> FigureResult:
    from saca_lab.training.ownership import owner_tags

    client = tracking.client()
    run_id = tracking.start_run(f"reproduce-{name}", f"{name}-{ctx.mode.name}", mlflow_client=client,
                                tags={"reproduce_mode": ctx.mode.name, "git_commit": tracking.git_commit(),
                                      **owner_tags()})  # a killed reproduction's run is marked FAILED later
    ctx.parent_run_id = run_id
    t0 = time.perf_counter()
    ctx.log(f"{name}: start")
    try:
        res = fn(ctx)
    except Exception as exc:  # one figure's failure is reported, not fatal to the others
        res = FigureResult(name, name, text="```\n" + traceback.format_exc(limit=6) + "```")
        res.rows.append(Row(name, "figure", "-", f"failed: {type(exc).__name__}: {exc}"[:300], "failed"))
        client.set_terminated(run_id, "FAILED")
        ctx.log(f"{name}: FAILED ({type(exc).__name__}: {exc})")
    res.seconds = time.perf_counter() - t0
    res.run_id = run_id
    if not any(r.verdict == "failed" for r in res.rows):
        _log_figure(ctx, res, run_id)
        client.set_terminated(run_id, "FINISHED")
        ctx.log(f"{name}: done in {res.seconds:.0f} s")
    return res


def run_reproduce(mode: Mode, out_dir: str | os.PathLike, *, only: Sequence[str] | None = None,
                  data_root: str | None = None, reuse: bool = True, progress: bool = True,
                  plan=None) -> tuple[Path, bool]:
    """Run the selected figures; return the report path and whether every figure succeeded.

    ``plan`` (:class:`saca_lab.reproduce.plan.Plan`) sizes Fig. 9's 2D trials; it is written to
    ``OUT/plan.yaml`` and summarised in the report. ``mode`` is then ``plan.build_mode()``.
    """
    from saca_lab.reproduce.report import write_report

    names = list(only) if only else figure_names()
    registry = _registry()
    if data_root:  # training runs resolve presets through $SACA_LAB_DATA
        os.environ["SACA_LAB_DATA"] = str(data_root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(mode, out, data_root=data_root, reuse=reuse, progress=progress)
    ctx.plan = plan
    from saca_lab.training.ownership import mark_dead_runs

    mark_dead_runs(quiet=not progress)  # runs of a killed earlier reproduction: FAILED, resumable
    if plan is not None:
        plan.save(out / "plan.yaml")
    from saca_lab.sweeps.runner import quiet_logs

    with quiet_logs():  # Lightning's per-run banners would bury the progress lines
        results = [run_figure(ctx, n, registry[n]) for n in names]
    wall = time.perf_counter() - ctx.started
    report = write_report(out, mode, results, wall, plan=plan)
    _write_rows(out / "paper_vs_ours.csv", results)
    ok = not any(r.verdict == "failed" for res in results for r in res.rows)
    return report, ok


def _write_rows(path: Path, results: list[FigureResult]) -> None:
    from saca_lab.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["figure", "quantity", "paper", "ours", "verdict", "note"])
        for res in results:
            for r in res.rows:
                w.writerow([r.figure, r.quantity, r.paper, r.ours, r.verdict, r.note])
