"""The transfer study figure: paired statistics, draws, and one tiny end-to-end run."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from saca_lab.errors import InputError
from saca_lab.reproduce.transfer_stats import (
    MODELS,
    PAIRS,
    paired_difference,
    plan_draws,
    summarize,
)


def test_paired_difference_on_known_numbers():
    # d = a - b = [0.4, -0.1, 0.3, 0.0]; the NaN pair is left out
    a = [0.9, 0.8, 0.7, 0.6, np.nan]
    b = [0.5, 0.9, 0.4, 0.6, 0.2]
    d = paired_difference(a, b)
    assert d["n"] == 4
    assert d["mean"] == pytest.approx(0.15)
    assert d["std"] == pytest.approx(np.sqrt(0.17 / 3))
    half = 3.182446305 * np.sqrt(0.17 / 3) / 2  # t(0.975, 3 dof)
    assert d["ci_low"] == pytest.approx(0.15 - half, abs=1e-6)
    assert d["ci_high"] == pytest.approx(0.15 + half, abs=1e-6)
    assert d["wins"] == pytest.approx(0.5)  # the tie is not a win
    swapped = paired_difference(b, a)
    assert swapped["mean"] == pytest.approx(-0.15) and swapped["wins"] == pytest.approx(0.25)


def test_paired_difference_with_one_or_no_pair():
    one = paired_difference([0.7], [0.2])
    assert one["n"] == 1 and one["mean"] == pytest.approx(0.5) and math.isnan(one["std"])
    assert math.isnan(one["ci_low"]) and one["wins"] == 1.0
    assert paired_difference([np.nan], [0.1])["n"] == 0
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0, 2.0], [1.0])


def test_draws_are_compares_draws_and_sizes_are_capped():
    from saca_lab.compare.plan import plan_fits

    class FakeDataset:  # plan_fits needs only the sample count and a name
        shape = (20, 3, 7)
        path = type("P", (), {"name": "steel"})()

    draws, notes = plan_draws(20, "10,20", 3)
    assert notes == [] and [(d.size, d.repeat) for d in draws] == [(s, r) for s in (10, 20) for r in range(3)]
    fits = plan_fits("plsr", FakeDataset(), [10, 20], None, 3, 0)
    for draw, fit in zip(draws, fits, strict=True):
        assert draw.spec == fit.split_spec
        assert np.array_equal(draw.split.test, fit.split.test)
        assert np.array_equal(draw.split.train, fit.split.train)
        assert draw.split.test.size == round(0.3 * draw.size)
    assert len({tuple(d.split.test) for d in draws}) == len(draws)  # the draws differ
    capped, notes = plan_draws(8, "6,20,30", 2)
    assert sorted({d.size for d in capped}) == [6, 8] and len(capped) == 4
    assert notes == ["size 20 capped at the dataset's 8 samples", "size 30 capped at the dataset's 8 samples"]
    with pytest.raises(InputError, match="at least 5"):
        plan_draws(4, "10", 2)
    with pytest.raises(InputError, match="transfer_repeats"):
        plan_draws(20, "10", 0)


def test_summary_pairs_models_by_draw():
    fits = []
    r2 = {"head": [0.9, 0.5, 0.7], "plsr": [0.6, 0.7, np.nan], "scratch": [0.1, 0.2, 0.3]}
    for model in MODELS:
        for draw in range(3):
            value = r2.get(model, [0.0, 0.0, 0.0])[draw]
            fits.append({"size": 10, "draw": draw, "model": model, "element": "Mn", "r2": value})
    summary = summarize(fits, [10], ["Mn"])
    assert len(summary) == len(MODELS) + len(PAIRS)
    row = {(s["model"], s["other"]): s for s in summary}
    assert row[("head", "")]["mean"] == pytest.approx(0.7)
    assert row[("head", "")]["std"] == pytest.approx(0.2)
    assert row[("plsr", "")]["n"] == 2 and row[("plsr", "")]["mean"] == pytest.approx(0.65)
    vs_plsr = row[("head", "plsr")]  # draw 2 has no PLSR score: 2 pairs, d = [0.3, -0.2]
    assert vs_plsr["n"] == 2 and vs_plsr["mean"] == pytest.approx(0.05)
    assert vs_plsr["wins"] == pytest.approx(0.5)
    vs_scratch = row[("head", "scratch")]  # d = [0.8, 0.3, 0.4]
    assert vs_scratch["mean"] == pytest.approx(0.5) and vs_scratch["wins"] == 1.0


def _read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_transfer_figure_end_to_end(train_data, mlflow_tmp, tmp_path):
    """A custom tiny Mode: every model on the same draws, CSV/PNG written, stats from the CSV."""
    import mlflow

    from saca_lab.reproduce.runner import run_reproduce
    from saca_lab.reproduce.settings import get_mode

    mode = get_mode("quick", [f"slag={train_data['slag']}", f"carbon_steel={train_data['carbon-steel']}",
                              "shots=5", "pretrain_epochs=1", "finetune_epochs=1",
                              "transfer_scratch_epochs=1", "gll_epochs=1",
                              "transfer_sizes=5,20", "transfer_repeats=2"])
    out = tmp_path / "rep"
    report, ok = run_reproduce(mode, out, only=["transfer"], progress=False)
    text = report.read_text()
    assert ok, text
    assert (out / "transfer.png").stat().st_size > 1000 and "(transfer.png)" in text
    fits = _read(out / "transfer.csv")
    # 6 carbon steels: sizes 5 and 20 -> 5 and 6 (capped), 2 draws each, six models, four elements
    assert {(r["size"], r["draw"]) for r in fits} == {(s, d) for s in ("5", "6") for d in ("0", "1")}
    assert {r["model"] for r in fits} == set(MODELS)
    assert [r["element"] for r in fits[:4]] == ["Mn", "Cr", "Cu", "C"]
    by_draw = {}
    for r in fits:
        by_draw.setdefault((r["size"], r["draw"]), set()).add((r["train_samples"], r["test_samples"]))
    assert all(len(v) == 1 for v in by_draw.values()), "a model saw another draw"
    # the deep runs really trained and tested on the draw's samples (their logged split)
    client = mlflow.MlflowClient()
    runs = {r["run_id"]: r for r in fits if r["run_id"]}
    assert len(runs) == 4 * 4  # (a), (b), (c), (f) on 4 draws
    for run_id, r in runs.items():
        split = json.loads(open(client.download_artifacts(run_id, "split.json", str(tmp_path))).read())
        assert ";".join(split["test"]) == r["test_samples"], r["model"]
        assert ";".join(split["train"]) == r["train_samples"], r["model"]
    params = {r["model"]: client.get_run(r["run_id"]).data.params for r in fits if r["run_id"]}
    assert params["all"]["cfg.transfer.unfreeze_at_epoch"] == "0"
    assert params["head"]["cfg.transfer.from"] == params["all"]["cfg.transfer.from"]
    assert params["scratch"]["cfg.transfer"] == "None"
    # every paired difference in the summary is recomputed from the per-draw R2 of the CSV
    summary = _read(out / "transfer_summary.csv")
    for s in (s for s in summary if s["other"]):
        pick = {m: {r["draw"]: float(r["r2"]) for r in fits
                    if r["size"] == s["size"] and r["element"] == s["element"] and r["model"] == m}
                for m in (s["model"], s["other"])}
        want = paired_difference([pick[s["model"]][d] for d in ("0", "1")],
                                 [pick[s["other"]][d] for d in ("0", "1")])
        # C has no usable window in steel: the fine-tunes drop it, so its differences are NaN
        assert float(s["mean"]) == pytest.approx(want["mean"], rel=1e-4, abs=1e-6, nan_ok=True), s
        assert int(s["n"]) == want["n"]
    rows = [r for r in _read(out / "paper_vs_ours.csv") if r["figure"] == "Transfer"]
    assert any(r["quantity"].startswith("TrCSL's claim") for r in rows)
    assert all(r["verdict"] != "failed" for r in rows)
