"""The sample-count study: splits, a tiny end-to-end run with MLflow, CV, and bad arguments."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from saca_lab.cli import main
from saca_lab.compare import parse_sizes, run_compare
from saca_lab.compare.plan import MIN_SIZE, plan_fits
from saca_lab.compare.plots import fig15_selection
from saca_lab.compare.results import read_csv
from saca_lab.data.store import open_dataset
from saca_lab.errors import InputError

TINY_SWARM = ["pso_svr.n_particles=3", "pso_svr.n_iter=2"]
DEEP = "gll"  # a small dense network: the fastest deep model to train


def test_parse_sizes():
    assert parse_sizes("10:100:10") == list(range(10, 101, 10))
    assert parse_sizes("20,10,20") == [10, 20]
    assert parse_sizes([5, 8]) == [5, 8]
    for bad in ("10:100", "a,b", "10:5:1", "10:20:0", ""):
        with pytest.raises(InputError, match="--sizes"):
            parse_sizes(bad)


def test_size_and_fold_splits_never_share_a_sample(train_data):
    ds = open_dataset(train_data["slag"])
    fits = plan_fits("plsr", ds, [5, 8], None, repeats=3, seed=4)
    assert len(fits) == 6
    for f in fits:
        train, test = set(f.split.train), set(f.split.test)
        assert not train & test and len(train | test) == f.size
        assert len(test) == round(0.3 * f.size) and len(f.split.val) == 0
    assert len({tuple(f.split.test) for f in fits if f.size == 5}) > 1  # repeats differ
    again = plan_fits("pso_svr", ds, [5, 8], None, repeats=3, seed=4)  # same draws per model
    assert [tuple(f.split.test) for f in again] == [tuple(f.split.test) for f in fits]
    folds = plan_fits("plsr", ds, None, 4, repeats=1, seed=0)
    tests = np.concatenate([f.split.test for f in folds])
    assert np.array_equal(np.sort(tests), np.arange(8))
    for f in folds:
        assert not set(f.split.train) & set(f.split.test)
        assert len(f.split.train) + len(f.split.test) == 8


def test_fig15_selection():
    def rows(models, sizes):
        return [{"model": m, "dataset": "d", "size": s} for m in models for s in sizes]

    assert fig15_selection(rows(["plsr", "trcsl", "pca_pls", "gll"], [10, 20, 30])) == (
        [("trcsl", "d"), ("pca_pls", "d"), ("gll", "d")], [10, 20])
    assert fig15_selection(rows(["plsr", "pso_svr"], [30, 5, 8])) == (
        [("plsr", "d"), ("pso_svr", "d")], [5, 8])


def _runs(experiment="compare"):
    from saca_lab import tracking

    client = tracking.client()
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id], max_results=500)


def test_tiny_study_writes_everything_and_logs_mlflow(train_data, mlflow_tmp, capsys):
    out = mlflow_tmp / "study"
    res = run_compare(train_data["slag"], "Mn", f"plsr,pca_pls,pso_svr,{DEEP}",
                      sizes="5,8", repeats=2, out_dir=out, n_jobs=2, epochs=2,
                      overrides=[*TINY_SWARM, "data.shots=average"])
    for name in ("fits.csv", "summary.csv", "predictions.csv", "fig14.png", "fig15.png"):
        assert (out / name).stat().st_size > 0
    fits = read_csv(out / "fits.csv")
    assert len(fits) == 4 * 2 * 2
    assert {f["model"] for f in fits} == {"plsr", "pca_pls", "pso_svr", DEEP}
    assert all(math.isfinite(f["r2"]) and math.isfinite(f["rmse"]) for f in fits)
    assert all(f["n_train"] + f["n_test"] == f["size"] for f in fits)
    assert '"n_components"' in next(f for f in fits if f["model"] == "plsr")["params"]
    assert '"gamma"' in next(f for f in fits if f["model"] == "pso_svr")["params"]
    summary = read_csv(out / "summary.csv")
    assert len(summary) == 8 and all(s["n_fits"] == 2 for s in summary)
    assert all(math.isfinite(s["r2_mean"]) and math.isfinite(s["rmse_std"]) for s in summary)
    # every model read the same line windows in the same draw, gll the element alone
    # (issue 11 §4; gll's windows are those its training run stored in its checkpoint)
    windows = {}
    for f in fits:
        params = json.loads(f["params"])
        assert params["features"] == "lines" and params["half_width"] == 5
        windows.setdefault((f["size"], f["repeat"]), set()).add(tuple(params["lines"]))
        if f["model"] == DEEP:
            assert params["targets"] == ["Mn"]
    assert len(windows) == 4 and all(len(w) == 1 for w in windows.values())
    assert all(len(next(iter(w))) >= 1 for w in windows.values())
    # every model saw the same test samples in the same draw
    preds = read_csv(out / "predictions.csv")
    by_model = {}
    for p in preds:
        by_model.setdefault(p["model"], set()).add((p["size"], p["repeat"], p["sample_id"]))
    assert len({frozenset(v) for v in by_model.values()}) == 1
    assert "[16/16]" in capsys.readouterr().out

    client, runs = _runs()
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert [r.info.run_id for r in parents] == [res.parent_run_id]
    assert parents[0].info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(res.parent_run_id)}
    assert {"fits.csv", "summary.csv", "fig14.png", "fig15.png"} <= artifacts
    children = {r.info.run_id: r for r in runs if r.data.tags.get("mlflow.parentRunId") == res.parent_run_id}
    assert len(children) == 8
    for child in children.values():
        assert math.isfinite(child.data.metrics["r2_mean"]) and child.info.status == "FINISHED"
    deep_runs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in children]
    assert len(deep_runs) == 4
    assert {r.data.tags["compare.model"] for r in deep_runs} == {DEEP}
    assert {r.info.run_id for r in deep_runs} == {f["run_id"] for f in fits if f["run_id"]}


def test_cv_mode_on_real_geostandards(real_data, tmp_path, mlflow_tmp):
    from saca_lab.data.importer import import_files

    ds = import_files([real_data / "libs_geostandards_sio2.csv"], out_dir=tmp_path / "geo")
    res = run_compare(ds, "SiO2", "plsr,resnet_dcnn_small", cv=5, out_dir=tmp_path / "cv",
                      n_jobs=1, progress=False, airpls=False, normalize="sum", epochs=2,
                      overrides=["model.overrides.width=0.0625"])
    assert (tmp_path / "cv" / "cv.png").is_file() and not (tmp_path / "cv" / "fig14.png").exists()
    for model in ("plsr", "resnet_dcnn_small"):
        fits = [f for f in res.fits if f["model"] == model]
        assert [f["repeat"] for f in fits] == list(range(5))
        assert sum(f["n_test"] for f in fits) == 103
        # each sample is predicted out-of-fold exactly once
        ids = [p["sample_id"] for p in res.predictions if p["model"] == model]
        assert len(ids) == len(set(ids)) == 103
    pls, cnn = res.summary
    assert pls["pooled_r2"] > 0.7 and math.isfinite(pls["r2_std"])
    assert math.isfinite(cnn["pooled_rmse"])


def test_transfer_model_needs_its_pretraining(train_data, mlflow_tmp):
    with pytest.raises(InputError, match=r"saca-lab train \S*trcnn_1d_pretrain_slag.yaml"):
        run_compare(train_data["slag"], "Mn", "plsr,trcnn_1d", sizes="5", repeats=1,
                    transfer_dataset=train_data["carbon-steel"], progress=False)


def test_transfer_model_fine_tunes_on_the_transfer_dataset(train_data, mlflow_tmp):
    from saca_lab.config import load_config
    from saca_lab.training.checkpoint import load_checkpoint
    from saca_lab.training.run import run_experiment

    cfg = load_config(_experiment("trcnn_1d_pretrain_slag.yaml"),
                      [f"data.dataset={train_data['slag']}", "data.shots=average",
                       "train.max_epochs=1", "tracking.log_model=false"])
    source = run_experiment(cfg, progress=False)
    res = run_compare(train_data["slag"], "Mn", "plsr,trcnn_1d", sizes="5,8", repeats=1,
                      out_dir=mlflow_tmp / "tr", transfer_dataset=train_data["carbon-steel"],
                      epochs=1, overrides=["data.shots=average"], n_jobs=1, progress=False)
    deep = [f for f in res.fits if f["model"] == "trcnn_1d"]
    assert [f["size"] for f in deep] == [5]  # the carbon-steel set has 6 samples: 8 is skipped
    assert deep[0]["dataset"] == "carbon-steel" and math.isfinite(deep[0]["rmse"])
    # the baselines read the windows of the pre-training (a frozen extractor reads no others),
    # and the transfer model is fine-tuned on the compared element alone (issue 11 §4)
    pre = load_checkpoint(source.checkpoint)["hyper_parameters"]["feature_spec"]
    for f in res.fits:
        params = json.loads(f["params"])
        assert params["features"] == "lines"
        np.testing.assert_allclose(params["lines"], pre["lines"], atol=1e-4)
    assert json.loads(deep[0]["params"])["targets"] == ["Mn"]
    assert res.skipped == [f"trcnn_1d: size 8 > 6 samples of {train_data['carbon-steel']}"]


def _experiment(name):
    from saca_lab.compare.deep import experiments_dir

    return experiments_dir() / name


@pytest.mark.parametrize(("args", "message"), [
    (["--models", "plsr,svm"], "unknown model.*svm.*plsr, pso_svr, pca_pls"),
    (["--sizes", "5,9"], "size 9 is larger than the dataset .*8 samples"),
    (["--sizes", "4,8"], f"size 4 is too small.*at least {MIN_SIZE}"),
    (["--sizes", "5:8"], "--sizes '5:8'"),
    (["--element", "Zr"], "'Zr' is not a target.*Mn"),
    (["--cv", "5"], "--cv 5.*8 samples"),
    (["--set", "plsr.n_pca=3"], "unknown parameter"),
    # scoped to a registered model that is not in the study: named, not "unknown field"
    (["--models", "plsr,gll", "--set", "trcsl_1d.transfer=null"],
     r"--set trcsl_1d.transfer=null: trcsl_1d is not a deep model of this study .*gll"),
    (["--models", "plsr,gll"], r"data.shots=30 .* has 10 per sample; add --set data.shots=average"),
    # issue 11 §4: every model of a study reads the same features
    (["--models", "plsr,gll", "--features", "spectrum"],
     r"--features spectrum: gll reads line windows; --features spectrum pairs with .*gll_spectrum"),
    (["--models", "plsr,gll_spectrum", "--features", "lines"],
     r"--features lines: gll_spectrum reads the full spectrum; --features lines pairs with .*trcsl_1d"),
    (["--models", "gll,gll_spectrum"], r"deep models read different inputs \(gll: lines; gll_spectrum: spectrum\)"),
])
def test_bad_arguments_exit_2_and_write_nothing(train_data, mlflow_tmp, capsys, args, message):
    base = {"--dataset": str(train_data["slag"]), "--element": "Mn", "--models": "plsr",
            "--sizes": "5", "--out": str(mlflow_tmp / "never")}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    if "--cv" in base:
        del base["--sizes"]
    argv = ["compare", *[x for kv in base.items() for x in kv]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "saca-lab compare: error:" in err
    assert re.search(message, err), err
    assert not (mlflow_tmp / "never").exists()


def test_scoped_deep_overrides_reach_one_model_only():
    from saca_lab.compare.plan import overrides_for

    items = ["train.lr=0.001", "trcsl.transfer.from=abc", "gll.train.max_epochs=60"]
    deep = ["trcsl", "gll"]
    assert overrides_for(items, "trcsl", deep) == ["train.lr=0.001", "transfer.from=abc"]
    assert overrides_for(items, "gll", deep) == ["train.lr=0.001", "train.max_epochs=60"]
