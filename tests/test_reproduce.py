"""`saca-lab reproduce`: a whole report on tiny data, and its argument errors."""

from __future__ import annotations

import csv
import math

import pytest

from saca_lab.cli import main
from saca_lab.reproduce.runner import figure_names
from saca_lab.reproduce.saca import precision_recall
from saca_lab.reproduce.settings import get_mode
from saca_lab.training.result import RunResult


def _tiny(train_data, stainless_data) -> list[str]:
    sets = {"slag": train_data["slag"], "carbon_steel": train_data["carbon-steel"],
            "stainless": stainless_data}
    out = [f"{k}={v}" for k, v in sets.items()]
    return out + ["shots=5", "pretrain_epochs=1", "finetune_epochs=1", "sweep_epochs=1",
                  "sweep_trials=1", "compare_sizes=6,8", "compare_repeats=2",
                  "pso={n_particles: 3, n_iter: 2}", "deep_sizes=5,6", "deep_repeats=1",
                  "gll_epochs=2", "saca_epochs=1", "speed_samples=2",
                  "transfer_repeats=1", "transfer_scratch_epochs=1"]


def test_quick_report_on_tiny_data_has_every_figure_and_row(train_data, stainless_data,
                                                             mlflow_tmp, tmp_path, capsys):
    argv = ["reproduce", "--quick", "--out", str(tmp_path / "rep")]
    for item in _tiny(train_data, stainless_data):
        argv += ["--set", item]
    assert main([*argv, "--quiet"]) == 0, capsys.readouterr().err
    rep = tmp_path / "rep"
    text = (rep / "report.md").read_text()
    for png in ("fig8", "fig9a", "fig9b", "fig9c", "fig11", "fig12", "fig13", "fig14", "fig15",
                "figS3", "figS4"):
        assert (rep / f"{png}.png").stat().st_size > 1000, png
        assert f"({png}.png)" in text
    with open(rep / "paper_vs_ours.csv") as f:
        rows = list(csv.DictReader(f))
    figures = {r["figure"] for r in rows}
    assert figures >= {"Fig. 8", "Table 1", "Fig. 9", "Fig. 11", "Fig. 12", "Fig. 13", "Fig. 14",
                       "Fig. 15", "Fig. S3", "Fig. S4", "SACA Table 1", "SACA speed"}
    assert not [r for r in rows if r["verdict"] == "failed"]
    numeric = 0
    for r in rows:
        try:
            value = float(r["ours"].split()[0].rstrip(","))
        except ValueError:
            continue
        numeric += 1
        assert math.isfinite(value), r
    assert numeric >= 30
    # every figure has its own MLflow experiment with a finished run
    import mlflow

    client = mlflow.MlflowClient()
    for name in figure_names():
        exp = client.get_experiment_by_name(f"reproduce-{name}")
        runs = client.search_runs([exp.experiment_id])
        assert runs and runs[0].info.status == "FINISHED", name
    # a second run reuses the finished training runs instead of training again
    training = client.get_experiment_by_name("reproduce-training")
    n_runs = len(client.search_runs([training.experiment_id]))
    capsys.readouterr()
    assert main([*argv, "--only", "fig12"]) == 0
    assert len(client.search_runs([training.experiment_id])) == n_runs
    assert capsys.readouterr().out.count("reusing run") == 8  # 4 models x (pre-train, fine-tune)


def test_precision_recall_of_presence():
    import numpy as np

    truth = np.array([[0.5, 0.0], [0.005, 0.2], [0.3, 0.3], [0.0, 0.0]])
    pred = np.array([[0.4, 0.02], [0.02, 0.1], [0.001, 0.3], [0.0, 0.0]])
    precision, recall = precision_recall(truth, pred, limit=0.01)
    assert precision[0] == pytest.approx(1 / 2) and recall[0] == pytest.approx(1 / 2)
    assert precision[1] == pytest.approx(2 / 3) and recall[1] == pytest.approx(1.0)


@pytest.mark.parametrize("argv, message", [
    (["--only", "fig99"], "unknown figure"),
    (["--set", "epochs=3"], "FIELD one of"),
    (["--set", "dims=3d"], "expected 1d or 2d"),
])
def test_bad_arguments_exit_2(argv, message, capsys, mlflow_tmp):
    assert main(["reproduce", "--quick", *argv]) == 2
    assert message in capsys.readouterr().err


def test_quick_mode_is_smaller_than_full():
    quick, full = get_mode("quick"), get_mode("full")
    assert quick.pretrain_epochs < full.pretrain_epochs and quick.compare_repeats <= full.compare_repeats
    assert full.pretrain_epochs == 800 and full.compare_sizes == "10:100:10"


def test_reuse_key_changes_with_code_data_and_generator(train_data, mlflow_tmp, tmp_path,
                                                        monkeypatch):
    """Issue 11 §7: a finished run is reused only for the same config, code, data and
    simulator; changing any of the last three trains anew."""
    import json
    import shutil

    import mlflow

    import saca_lab.training.run as run_mod
    from saca_lab import tracking
    from saca_lab.reproduce import context as context_mod
    from saca_lab.spectra import simulate

    trained = []

    def fake_run_experiment(cfg, *, progress=True, tags=None, **_):
        # a finished, tagged MLflow run: what the real one leaves behind for the reuse lookup
        client = tracking.client()
        exp = client.get_experiment_by_name(cfg["tracking"]["experiment"])
        exp_id = exp.experiment_id if exp else client.create_experiment(cfg["tracking"]["experiment"])
        run = client.create_run(exp_id, tags=tags)
        client.log_metric(run.info.run_id, "test_sample_rmse_Mn", 0.1)
        client.set_terminated(run.info.run_id, "FINISHED")
        trained.append(run.info.run_id)
        return RunResult(run_id=run.info.run_id)

    monkeypatch.setattr(run_mod, "run_experiment", fake_run_experiment)
    code = tmp_path / "pkg"
    (code / "sub").mkdir(parents=True)
    (code / "sub" / "mod.py").write_text("X = 1\n")
    monkeypatch.setattr(context_mod, "PACKAGE_DIR", code)
    data = tmp_path / "slag"
    shutil.copytree(train_data["slag"], data)
    ctx = context_mod.Context(get_mode("quick"), tmp_path / "out", progress=False)
    sets = [f"data.dataset={data}", "train.max_epochs=1"]

    def train() -> bool:
        """True when the call trained, False when it reused a finished run."""
        n = len(trained)
        ctx.train("trcnn_1d_pretrain_slag", sets, figure="test")
        return len(trained) > n

    assert train() and not train()  # same everything: reused
    (code / "sub" / "mod.py").write_text("X = 2\n")  # an uncommitted edit of the code
    assert train() and not train()
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["sha256"]["targets.csv"] = "0" * 64  # the data changed (same path, same config)
    (data / "manifest.json").write_text(json.dumps(manifest))
    assert train() and not train()
    monkeypatch.setattr(simulate, "GENERATOR_VERSION", simulate.GENERATOR_VERSION + "-next")
    assert train() and not train()
    assert len(set(trained)) == 4
    keys = {mlflow.get_run(r).data.tags["reproduce_key"] for r in trained}
    assert len(keys) == 4


def _fake_pair(r2_fine, r2_pre):
    """A stand-in for ``figs_training.transfer_pair``: fixed per-sample R2 per model, element,
    seed and (Fig. 11) baseline-correction variant, without training anything."""
    def pair(ctx, model, seed, figure, extra=()):
        key = (model, "without" if extra else "with")
        fine = {f"test_sample_r2_{el}": v[seed] for el, v in r2_fine[key].items()}
        pre = {f"test_sample_r2_{el}": v[seed] for el, v in r2_pre.get(model, {}).items()}
        return RunResult(None, test_sample=pre), RunResult(None, test_sample=fine)
    return pair


def test_fig12_names_models_and_reports_slag_before_transfer(tmp_path, monkeypatch):
    from saca_lab.reproduce import figs_training
    from saca_lab.reproduce.context import Context

    order = ("trcnn", "trcnn_se", "trcnn_lstm", "trcsl")
    fine = {(m, "with"): {el: [0.9 - 0.1 * i, 0.7 - 0.1 * i] for el in ("C", "Cu", "Mn", "Cr")}
            for i, m in enumerate(order)}  # carbon steel: TrCNN best, TrCSL last
    pre = {m: {el: [0.5 + 0.1 * i] * 2 for el in ("C", "Cu", "Mn", "Cr")}
           for i, m in enumerate(order)}  # slag: TrCSL best
    monkeypatch.setattr(figs_training, "transfer_pair", _fake_pair(fine, pre))
    ticks = []

    def capture(fig, path):
        ticks.extend([t.get_text() for t in ax.get_xticklabels()] for ax in fig.axes)
        return path

    monkeypatch.setattr(figs_training, "save_figure", capture)
    res = figs_training.fig12(Context(get_mode("quick", ["seeds=[0, 1]"]), tmp_path, progress=False))
    assert len(ticks) == 8 and all(t == ["TrCNN", "TrCNN-SE", "TrCNN-LSTM", "TrCSL"] for t in ticks)
    rows = {r.quantity: r for r in res.rows}
    assert rows["Mn R2, TrCNN"].ours == "0.800 +- 0.100"
    assert rows["TrCSL >= TrCNN-SE/LSTM >= TrCNN (Mn)"].ours == "no"
    slag = rows["same order on slag before transfer (Mn)"]
    assert slag.ours == "yes" and "transfer changes the order" in slag.note
    assert slag.note.startswith("slag test split: TrCSL 0.800 > TrCNN-LSTM 0.700")
    assert "slag before transfer" in res.text


def test_fig11_reports_each_element_mn_first_over_seeds(tmp_path, monkeypatch):
    from saca_lab.reproduce import figs_training
    from saca_lab.reproduce.context import Context

    fine = {("trcsl", "with"): {"Mn": [0.9, 0.8], "Cr": [0.5, 0.5], "Cu": [0.1, 0.3], "C": [-1.0, -2.0]},
            ("trcsl", "without"): {"Mn": [0.7, 0.7], "Cr": [0.6, 0.4], "Cu": [0.1, 0.1], "C": [-1.5, -1.0]}}
    monkeypatch.setattr(figs_training, "transfer_pair", _fake_pair(fine, {}))
    monkeypatch.setattr(figs_training, "save_figure", lambda fig, path: path)
    res = figs_training.fig11(Context(get_mode("quick", ["seeds=[0, 1]"]), tmp_path, progress=False))
    assert [r.quantity.split()[0] for r in res.rows] == ["Mn", "Cr", "Cu", "C"]
    mn, cr, cu, c = res.rows
    # Mn gains 0.2 and 0.1 on the two seeds: mean 0.15, sample std 0.0707
    assert mn.ours == "+0.150 +- 0.071" and mn.verdict == "agrees" and "2 seed(s)" in mn.note
    assert cr.ours == "+0.000 +- 0.141" and cr.verdict == "differs"
    assert cu.ours.startswith("+0.100")
    assert c.ours.startswith("-0.250") and "neither variant predicts C" in c.note


def test_fig11_and_fig12_skip_an_element_that_is_not_a_target(tmp_path, monkeypatch):
    from saca_lab.reproduce import figs_training
    from saca_lab.reproduce.context import Context

    three = {"Mn": [0.9], "Cr": [0.5], "Cu": [0.1]}  # no C: no usable C line, not a target
    fine = {(m, v): three for m in ("trcnn", "trcnn_se", "trcnn_lstm", "trcsl") for v in ("with", "without")}
    monkeypatch.setattr(figs_training, "transfer_pair", _fake_pair(fine, {}))
    monkeypatch.setattr(figs_training, "save_figure", lambda fig, path: path)
    ctx = Context(get_mode("quick"), tmp_path, progress=False)
    c11 = figs_training.fig11(ctx).rows[-1]
    c12 = next(r for r in figs_training.fig12(ctx).rows if r.quantity == "best model for C (R2)")
    for row in (c11, c12):
        assert row.ours == "not measured" and row.verdict == "n/a" and "not a target" in row.note


def test_override_pairs_render_as_the_reproduction_always_wrote_them():
    from saca_lab.config import load_config
    from saca_lab.reproduce.context import EXPERIMENTS, override_text

    pairs = [("data.dataset", {"preset": "slag", "samples": 30}), ("data.dataset", "/data/slag"),
             ("data.shots", 30), ("data.shots", "each"), ("tracking.log_model", False),
             ("data.preprocessing.airpls", None), ("model.name", "trcsl_1d"), ("train.lr", 1e-3),
             "train.max_epochs=3"]
    # the text names run locks and sweep studies: it must stay as it was
    assert [override_text(p) for p in pairs] == [
        'data.dataset={"preset": "slag", "samples": 30}', 'data.dataset="/data/slag"',
        "data.shots=30", "data.shots=each", "tracking.log_model=false",
        "data.preprocessing.airpls=null", "model.name=trcsl_1d", "train.lr=0.001", "train.max_epochs=3"]
    # and the text configures a run as the pairs do
    for pair in pairs[:1] + pairs[2:]:
        path = EXPERIMENTS / "trcsl_1d_pretrain_slag.yaml"
        assert load_config(path, [override_text(pair)]) == load_config(path, [pair]), pair


def test_plan_batch_sizes_are_the_experiment_files():
    from saca_lab.config import load_config
    from saca_lab.reproduce.context import EXPERIMENTS
    from saca_lab.reproduce.plan_cost import BATCH_FILES, batch_sizes

    for family, stem in BATCH_FILES.items():
        assert batch_sizes()[family] == load_config(EXPERIMENTS / f"{stem}.yaml")["data"]["batch_size"]
