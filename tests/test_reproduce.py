"""`saca-lab reproduce`: a whole report on tiny data, and its argument errors."""

from __future__ import annotations

import csv
import math

import pytest

from saca_lab.cli import main
from saca_lab.reproduce.runner import figure_names
from saca_lab.reproduce.saca import precision_recall
from saca_lab.reproduce.settings import get_mode


def _tiny(train_data, stainless_data) -> list[str]:
    sets = {"slag": train_data["slag"], "carbon_steel": train_data["carbon-steel"],
            "stainless": stainless_data}
    out = [f"{k}={v}" for k, v in sets.items()]
    return out + ["shots=5", "pretrain_epochs=1", "finetune_epochs=1", "sweep_epochs=1",
                  "sweep_trials=1", "compare_sizes=6,8", "compare_repeats=2",
                  "pso={n_particles: 3, n_iter: 2}", "deep_sizes=5,6", "deep_repeats=1",
                  "gll_epochs=2", "saca_epochs=1", "speed_samples=2"]


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
