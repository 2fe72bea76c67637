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
    assert any("slope/bias" in r["quantity"] for r in rows)
    assert any("PLSR on slag + steel" in r["quantity"] for r in rows)
    assert "tests on 2" in text  # the 5-sample draws say how little they test on
    assert all(r["verdict"] != "failed" for r in rows)


def _spy_pls(monkeypatch):
    """Record the rows every PLS inside the calibration-transfer baselines is fitted on."""
    import saca_lab.baselines.calibration_transfer as ct

    seen = []

    class Spy(ct.PLSRCV):
        def fit(self, X, y, groups=None):
            seen.append(np.array(X, copy=True))
            return super().fit(X, y, groups=groups)

    monkeypatch.setattr(ct, "PLSRCV", Spy)
    return seen


def _toy_domains(seed=0):
    """Carbon steel (20 samples) and slag (30) sharing a linear response, steel's scaled by 2
    and shifted by 1: a case where a slope/bias correction of the slag model is exact."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(12, 2))
    x_slag = rng.normal(size=(30, 12))
    x_steel = rng.normal(size=(20, 12))
    return x_steel, 1.0 + 2.0 * x_steel @ w, x_slag, x_slag @ w


def test_calibration_transfer_baselines_join_every_draw(monkeypatch):
    from saca_lab.reproduce import figs_transfer

    x, y, xs, ys = _toy_domains()
    seen = _spy_pls(monkeypatch)
    draws, _ = plan_draws(20, "10,20", 2)
    for draw in draws:
        seen.clear()
        out = figs_transfer._baseline_scores(x, y, (xs, ys), draw, ["Mn", "Cr"])
        assert set(out) == {(m, el) for m in figs_transfer.BASELINES for el in ("Mn", "Cr")}
        assert set(figs_transfer.BASELINES) | {"head", "all", "scratch", "gll"} == set(MODELS)
        # slope/bias of the slag model is exact here; PLS on 7 steels alone is not asked to be
        assert out[("slope_bias", "Mn")][0] > 0.99 and out[("slope_bias", "Cr")][0] > 0.99
        train, test = {tuple(r) for r in x[draw.split.train]}, {tuple(r) for r in x[draw.split.test]}
        slag = {tuple(r) for r in xs}
        # (g) fits its master on slag alone, (h) on slag + the draw's training rows (per element)
        assert len(seen) == 4
        for X in seen:
            rows = {tuple(r) for r in X}
            assert not rows & test, "a calibration-transfer model saw a test sample"
        assert {tuple(r) for r in seen[0]} == slag == {tuple(r) for r in seen[1]}
        assert {tuple(r) for r in seen[2]} == slag | train == {tuple(r) for r in seen[3]}
        assert len(seen[2]) == len(xs) + draw.split.train.size


def test_source_data_is_the_pretrainings_training_slag(monkeypatch, tmp_path):
    from saca_lab import tracking
    from saca_lab.reproduce import figs_transfer

    ids = [f"slag_{i:03d}" for i in range(8)]
    split = {"train": ["slag_005", "slag_001", "slag_006"], "test": ["slag_002", "slag_007"]}

    class Slag:
        sample_ids = ids
        path = tmp_path

        @staticmethod
        def target_matrix(elements):
            return np.arange(8.0)[:, None] * np.ones(len(elements))

    class Ctx:
        @staticmethod
        def dataset(which):
            assert which == "slag"
            return Slag()

    class Client:
        @staticmethod
        def download_artifacts(run_id, path, dst):
            out = tmp_path / "split.json"
            out.write_text(json.dumps(split))
            return str(out)

    monkeypatch.setattr(tracking, "client", lambda: Client())
    monkeypatch.setattr(figs_transfer, "_mean_features", lambda ds, spec: np.arange(8.0)[:, None] * 10)
    pre = type("Pre", (), {"run_id": "r1"})()
    x, y, used = figs_transfer._source_data(Ctx(), pre, {}, ["Mn", "Cr"])
    assert used == split["train"]
    assert x[:, 0].tolist() == [50.0, 10.0, 60.0] and y[:, 1].tolist() == [5.0, 1.0, 6.0]
    split["train"] = ["slag_999"]
    with pytest.raises(InputError, match="slag_999"):
        figs_transfer._source_data(Ctx(), pre, {}, ["Mn"])


def test_a_summary_written_before_the_calibration_transfer_models_still_reports():
    """A transfer_summary.csv of a report made before (g) and (h) joined (the committed
    reference report of an earlier version, read back by the clean-vs-calibrated section)."""
    from pathlib import Path

    from saca_lab.reproduce.clean_vs_calibrated import _transfer_summary
    from saca_lab.reproduce.transfer_report import summary_rows

    old = Path(__file__).resolve().parents[1] / "docs" / "results" / "quick"
    summary = [s for s in _transfer_summary(old)
               if s["model"] not in ("slope_bias", "source_target")
               and s["other"] not in ("slope_bias", "source_target")]
    rows = summary_rows(summary)
    assert rows and not any("slope" in r.quantity or "slag + steel" in r.quantity for r in rows)
