"""The report's "clean vs calibrated" section (issue 16, section 3), with stand-in figures."""

from __future__ import annotations

import os
import re
import time

import pytest

from saca_lab.errors import InputError
from saca_lab.io import write_rows_csv
from saca_lab.reproduce import clean_vs_calibrated as cvc
from saca_lab.reproduce import figs_compare, figs_transfer
from saca_lab.reproduce.context import Context, FigureResult
from saca_lab.reproduce.settings import get_mode
from saca_lab.reproduce.transfer_stats import MODELS, summarize


def _fake_figures(monkeypatch, calls):
    """Fig. 14 and the transfer study writing their summaries: PLSR and the transfer baselines
    near 0.98 without the nuisance and near 0.55 with it, TrCSL's head near 0.8 on both."""

    def level(ctx):
        return ctx.mode.slag.get("nuisance", "calibrated")

    def fig14(ctx):
        calls.append(("fig14", level(ctx), ctx.out_dir))
        base = 0.98 if level(ctx) == "none" else 0.55
        rows = [{"model": m, "size": n, "r2_mean": base + (n - 10) / 1000, "r2_std": 0.01,
                 "n_fits": 2} for m in ("plsr", "pso_svr") for n in (10, 20, 40, 90)]
        rows.append({"model": "trcsl_1d", "size": 20, "r2_mean": 0.8, "r2_std": 0.05, "n_fits": 2})
        write_rows_csv(ctx.out_dir / "compare-fig14" / "summary.csv", rows,
                       ("model", "size", "r2_mean", "r2_std", "n_fits"))
        (ctx.out_dir / "fig14.png").write_bytes(b"png")
        return FigureResult("fig14", "")

    def transfer(ctx):
        calls.append(("transfer", level(ctx), ctx.out_dir))
        base = 0.98 if level(ctx) == "none" else 0.55
        fits = [{"size": n, "draw": d, "model": m, "element": "Mn",
                 "r2": (0.8 if m == "head" else base) + 0.01 * d}
                for n in (10, 20) for d in range(3) for m in MODELS]
        write_rows_csv(ctx.out_dir / "transfer_summary.csv", summarize(fits, [10, 20], ["Mn"]),
                       figs_transfer.SUMMARY_COLUMNS)
        return FigureResult("transfer", "")

    (monkeypatch.setattr(figs_compare, "fig14", fig14), monkeypatch.setattr(figs_transfer, "transfer", transfer))


def test_quick_mode_states_the_level_and_skips_the_clean_side(tmp_path):
    mode = get_mode("quick")
    assert mode.clean_vs_calibrated is False and get_mode("full").clean_vs_calibrated is True
    res = cvc.clean_vs_calibrated(Context(mode, tmp_path, progress=False))
    assert not res.rows and "clean_vs_calibrated=False" in res.text
    assert "slag `calibrated`" in res.text
    line = cvc.header_line(mode)
    assert "slag `calibrated`, carbon-steel `calibrated`, stainless `calibrated`" in line
    assert "left to the full mode" in line
    explicit = get_mode("quick", ["slag={preset: slag, nuisance: none}"])
    assert "slag `none`" in cvc.header_line(explicit)


def test_both_sides_side_by_side_and_the_verdicts_that_move(tmp_path, monkeypatch):
    calls = []
    _fake_figures(monkeypatch, calls)
    ctx = Context(get_mode("quick", ["clean_vs_calibrated=true"]), tmp_path, progress=False)
    # this report's own Fig. 14 ran already: its summary is read back, not recomputed
    figs_compare.fig14(ctx)
    res = cvc.clean_vs_calibrated(ctx)
    assert calls == [("fig14", "calibrated", tmp_path), ("transfer", "calibrated", tmp_path),
                     ("fig14", "none", tmp_path / "clean"), ("transfer", "none", tmp_path / "clean")]
    assert ctx.mode.slag.get("nuisance") is None  # the report's own mode is untouched
    rows = {r.quantity: r for r in res.rows}
    assert all(r.figure.endswith("(clean)") for r in res.rows)
    below = rows["plsr R2 below 20 samples (max of means)"]
    assert below.verdict == "differs" and "calibrated: 0.550 (agrees)" in below.note
    assert "| plsr R2 below 20 samples (max of means) | < 0.6 | 0.550 | agrees | 0.980 | differs |" in res.text
    assert "Verdicts that depend on the nuisance:" in res.text
    assert (tmp_path / "fig14_clean.png") in res.images


def test_a_stale_summary_is_recomputed_and_a_directory_is_refused(tmp_path, monkeypatch):
    calls = []
    _fake_figures(monkeypatch, calls)
    ctx = Context(get_mode("quick", ["clean_vs_calibrated=true"]), tmp_path, progress=False)
    figs_compare.fig14(ctx)
    old = time.time() - 3600  # an earlier reproduction's file
    os.utime(tmp_path / "compare-fig14" / "summary.csv", (old, old))
    calls.clear()
    cvc.clean_vs_calibrated(ctx)
    assert calls[0] == ("fig14", "calibrated", tmp_path)
    with pytest.raises(InputError, match="dataset directory"):
        cvc.clean_mode(get_mode("quick", [f"slag={tmp_path}"]))


SLOW = {"step_seconds": {"trcsl_1d": 0.03, "trcsl": 2.2, "resnet_dcnn_small": 0.15},
        "precision": {"trcsl_1d": "32-true", "trcsl": "32-true", "resnet_dcnn_small": "32-true"},
        "airpls_seconds": 0.005, "machine": "test machine"}


def test_quick_only_clean_vs_calibrated_runs_both_sides(tmp_path, monkeypatch, capsys, mlflow_tmp):
    from saca_lab.cli import main
    from saca_lab.reproduce import plan as plan_mod
    from saca_lab.reproduce import plan_cost

    monkeypatch.setattr(plan_cost, "measure_step_times", lambda models, steps=0: dict(SLOW))
    data = str(tmp_path / "data")
    # a whole quick report skips it, and its plan says so
    whole = plan_mod.make_plan("quick", budget_minutes=None, measured=SLOW, data_root=data)
    assert whole.estimate["clean_vs_calibrated"]["runs"] == 0
    assert whole.describe("clean_vs_calibrated").startswith("skipped")
    assert main(["reproduce", "--quick", "--plan", str(tmp_path / "p.yaml"), "--data-root", data]) == 0
    assert re.search(r"clean_vs_calibrated +0 +0\.0  skipped", capsys.readouterr().out)
    # named in --only it runs; its estimate holds both sides (the calibrated one runs here too)
    named = plan_mod.make_plan("quick", only=["clean_vs_calibrated"], measured=SLOW, data_root=data)
    both = plan_mod.make_plan("quick", only=["fig14", "transfer", "clean_vs_calibrated"], measured=SLOW,
                              data_root=data)
    assert named.set["clean_vs_calibrated"] is True and "nuisance: none" in named.describe("clean_vs_calibrated")
    assert named.estimate["clean_vs_calibrated"]["runs"] == sum(e["runs"] for e in both.estimate.values())
    # an explicit --set wins over --only
    off = plan_mod.make_plan("quick", ["clean_vs_calibrated=false"], only=["clean_vs_calibrated"],
                             measured=SLOW, data_root=data)
    assert off.set["clean_vs_calibrated"] is False

    calls = []
    _fake_figures(monkeypatch, calls)
    out = tmp_path / "rep"
    argv = ["reproduce", "--quick", "--only", "clean_vs_calibrated", "--out", str(out), "--data-root", data,
            "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    assert [(f, lvl) for f, lvl, _ in calls] == [("fig14", "calibrated"), ("transfer", "calibrated"),
                                                 ("fig14", "none"), ("transfer", "none")]
    report = (out / "report.md").read_text()
    section = report.split("## Clean vs calibrated", 1)[1]
    assert "slag `calibrated`, carbon-steel `calibrated`" in section and "`nuisance: none`" in section
    assert "| plsr R2 below 20 samples (max of means) | < 0.6 | 0.550 | agrees | 0.980 | differs |" in section
    assert "reruns Fig. 14 and the transfer study with `nuisance: none`" in report  # the header line
