"""Optuna sweeps (issue 5): sweep files, shared studies, dead workers, pruning, failures, report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import mlflow
import optuna
import pytest
import yaml

from saca_lab import tracking
from saca_lab.cli import main
from saca_lab.errors import InputError
from saca_lab.sweeps import load_sweep, run_sweep, sweep_report

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted((ROOT / "sweeps").glob("*.yaml"))
BASE_1D = ROOT / "experiments" / "trcnn_1d_pretrain_slag.yaml"  # no LSTM: fast
GRID = {"model.overrides.kernels": {"type": "categorical", "choices": [4, 8]},
        "model.overrides.n_units": {"type": "int", "low": 1, "high": 3}}


def write_sweep(path: Path, dataset, **fields) -> Path:
    """A tiny 1D sweep: 6 grid points, 2 epochs on the 8-sample slag set."""
    spec = {"base": str(BASE_1D),
            "set": {"data.dataset": str(dataset), "data.shots": 5, "tracking.log_model": False,
                    "data.split": {"train": 0.5, "val": 0.25, "test": 0.25, "seed": 0},
                    "train.max_epochs": 2},
            "space": GRID, "sampler": "grid", "objective": {"metric": "val_r2_Mn"},
            "heartbeat": {"interval": 1, "grace": 3}}
    spec.update(fields)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def worker(sweep: Path, url: str, study: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two workers share two cores
    return subprocess.Popen([sys.executable, "-m", "saca_lab", "sweep", "run", str(sweep),
                             "--storage", url, "--study-name", study, "--quiet", *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            # Ctrl-C as in a terminal (a background job would ignore SIGINT)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_running_trial(proc, study: str, url: str, need_complete: bool, done_before=()):
    """Poll the storage until a trial has run a few epochs (after one finished, if asked: one
    not in ``done_before``, so a trial completed by an earlier worker does not count)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            trials = trials_of(study, url)
        except Exception:  # the study (or its database) does not exist yet
            continue
        done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE
                and t.number not in done_before]
        running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING
                   and len(t.intermediate_values) >= 2]
        if running and (done or not need_complete):
            return running[0], done
    raise AssertionError(f"no running trial to stop:\n{proc.communicate()[0] if proc.poll() is not None else ''}")


def trials_of(study: str, url: str) -> list:
    return optuna.load_study(study_name=study, storage=url).get_trials()


def child_runs(study: str):
    return mlflow.search_runs(experiment_names=[f"sweep-{study}"],
                              filter_string="tags.`optuna.trial` != ''")


@pytest.fixture
def tracked(mlflow_tmp):
    """mlflow_tmp, with MLflow's module-level URI (set by earlier tests) pointing at it too."""
    mlflow.set_tracking_uri(tracking.tracking_uri())
    return mlflow_tmp


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/optuna.db"
    url = os.environ.get("SACA_LAB_TEST_POSTGRES")
    if not url:
        pytest.skip("SACA_LAB_TEST_POSTGRES is not set (.ci/run starts a PostgreSQL server)")
    return url


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_shipped_sweeps_validate(path):
    spec = load_sweep(path)
    assert spec.budget >= 2 and spec.space
    assert spec.base is not None or "experiment" in spec.space


def test_two_workers_share_one_study(storage_url, train_data, tracked):
    sweep = write_sweep(tracked / "tiny.yaml", train_data["slag"])
    study = f"share-{uuid.uuid4().hex[:8]}"
    procs = [worker(sweep, storage_url, study) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    trials = trials_of(study, storage_url)
    points = sorted((t.params["model.overrides.kernels"], t.params["model.overrides.n_units"])
                    for t in trials)
    assert points == [(k, n) for k in (4, 8) for n in (1, 2, 3)]  # none lost, none twice
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers took trials
    parent = optuna.load_study(study_name=study, storage=storage_url).user_attrs["mlflow_parent_run_id"]
    runs = child_runs(study)
    assert len(runs) == 6 and set(runs["tags.mlflow.parentRunId"]) == {parent}
    assert set(runs["status"]) == {"FINISHED"}
    assert sorted(runs["run_id"]) == sorted(t.user_attrs["mlflow_run_id"] for t in trials)

    rep = sweep_report(study, storage=storage_url, out_dir=tracked / "report")
    assert rep["best_value"] == max(t.value for t in trials)
    assert set(rep["importances"]) == set(GRID) and len(rep["trials"]) == 6
    assert {p.name for p in rep["plots"]} == {"params.png", "history.png"}
    text = rep["markdown"].read_text()
    assert "Parameter importances" in text and f"trial {rep['best_trial']}" in text
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(parent, "report")}
    assert {"report/report.md", "report/params.png", "report/trials.csv"} <= logged


def test_interrupted_and_killed_workers_trials_are_retried(train_data, tracked):
    url = f"sqlite:///{tracked}/optuna.db"
    sweep = write_sweep(tracked / "kill.yaml", train_data["slag"],
                        space={"seed": {"type": "categorical", "choices": [0, 1, 2]}})
    study, epochs = "kill", "train.max_epochs=60"
    state = optuna.trial.TrialState

    # Ctrl-C: the trial fails, a copy is queued for the next worker, the run is ended KILLED
    proc = worker(sweep, url, study, "--set", epochs)
    stopped, _ = wait_for_running_trial(proc, study, url, need_complete=False)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    queued = [t for t in trials_of(study, url) if t.state == state.WAITING]
    assert len(queued) == 1 and queued[0].system_attrs["failed_trial"] == stopped.number
    run = mlflow.get_run(stopped.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED" and run.data.tags["interrupted"] == "true"

    # SIGKILL after a completed trial: no heartbeat any more; the rerun retries it once stale.
    # On a fast machine the first worker may complete a trial before its Ctrl-C; this worker
    # must complete one of its own (the queued copy comes first), so the trial it is killed in
    # is never that copy
    first = {t.number for t in trials_of(study, url) if t.state == state.COMPLETE}
    proc = worker(sweep, url, study, "--set", epochs)
    killed, _ = wait_for_running_trial(proc, study, url, need_complete=True, done_before=first)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = {t.number: t.datetime_complete for t in trials_of(study, url)
              if t.state == state.COMPLETE}
    run_sweep(sweep, storage=url, study_name=study, overrides=[epochs], progress=False)

    trials = {t.number: t for t in trials_of(study, url)}
    for number, finished in before.items():  # completed trials are kept, not run again
        assert trials[number].state == state.COMPLETE and trials[number].datetime_complete == finished
    for victim in (stopped, killed):
        assert trials[victim.number].state == state.FAIL
        retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == victim.number]
        assert [t.state for t in retries] == [state.COMPLETE] and retries[0].params == victim.params
        assert mlflow.get_run(victim.user_attrs["mlflow_run_id"]).data.tags["retried_by_trial"] == \
            str(retries[0].number)
    assert mlflow.get_run(killed.user_attrs["mlflow_run_id"]).info.status == "KILLED"
    assert sorted(t.params["seed"] for t in trials.values() if t.state == state.COMPLETE) == [0, 1, 2]


def test_hopeless_trial_is_pruned_and_failing_trial_does_not_stop(train_data, tracked, capsys):
    # GridSampler shuffles the grid with seed 0; this order of choices puts the learning trial
    # (subset 8, lr 1e-3) before the diverging one (lr 1e3), after the two with subset 100.
    # A subset of all 8 samples is the whole set; one of 100 fails only once the 8-sample
    # dataset is read (a value the schema can refuse up front, batch size 0, never gets that far)
    sweep = write_sweep(tracked / "prune.yaml", train_data["slag"],
                        space={"data.split.subset": {"type": "categorical", "choices": [8, 100]},
                               "train.lr": {"type": "categorical", "choices": [1e3, 1e-3]}},
                        pruner={"name": "median", "n_startup_trials": 1})
    url = f"sqlite:///{tracked}/optuna.db"
    study = run_sweep(sweep, storage=url)
    states = {(t.params["data.split.subset"], t.params["train.lr"]): t.state.name
              for t in study.get_trials()}
    assert states == {(100, 1e-3): "FAIL", (100, 1e3): "FAIL", (8, 1e-3): "COMPLETE",
                      (8, 1e3): "PRUNED"}
    pruned = next(t for t in study.get_trials() if t.state.name == "PRUNED")
    assert pruned.user_attrs["epochs"] == 1  # stopped after its first epoch
    run = mlflow.get_run(pruned.user_attrs["mlflow_run_id"])
    assert run.data.tags["pruned"] == "true" and run.info.status == "KILLED"
    assert run.data.tags["mlflow.parentRunId"] == study.user_attrs["mlflow_parent_run_id"]
    failed = next(t for t in study.get_trials() if t.state.name == "FAIL")
    assert "data.split.subset" in failed.user_attrs["error"]
    out = capsys.readouterr().out
    assert f"trial {pruned.number:>3} PRUNED" in out and f"trial {failed.number:>3} FAIL" in out


def test_rerun_resumes_extends_and_refuses_other_settings(train_data, tracked, capsys):
    sweep = write_sweep(tracked / "resume.yaml", train_data["slag"], sampler={"name": "random", "seed": 1},
                        n_trials=2, pruner="none")
    url = f"sqlite:///{tracked}/optuna.db"
    args = ["sweep", "run", str(sweep), "--storage", url, "--quiet"]
    assert main(args) == 0
    assert main(args) == 0  # resumes: nothing left to do
    assert len(trials_of("resume", url)) == 2
    assert main([*args, "--n-trials", "3"]) == 0
    assert [t.state.name for t in trials_of("resume", url)] == ["COMPLETE"] * 3
    capsys.readouterr()
    assert main([*args, "--set", "train.max_epochs=2"]) == 2
    assert "--study-name" in capsys.readouterr().err
    assert main(["sweep", "report", "resume", "--storage", url, "--out", str(tracked / "r")]) == 0
    out = capsys.readouterr().out
    assert "report.md" in out and "best: trial" in out
    assert (tracked / "r" / "trials.csv").read_text().count("\n") == 4


@pytest.mark.parametrize("change, field", [
    ({"space": {"train.max_epoch": {"type": "int", "low": 1, "high": 3}}}, "train.max_epoch"),
    ({"space": {"model.overrides.kernel_sz": {"type": "int", "low": 3, "high": 5}}}, "kernel_sz"),
    ({"space": {"optim.lr": {"type": "float", "low": 0.1, "high": 1.0}}}, "optim"),
    ({"space": {"model.overrides.n_units": {"type": "int", "low": 1, "high": 9}}}, "n_units"),
    ({"space": {"model.overrides.kernels": {"type": "int", "low": 8, "high": 8}}}, "empty range"),
    ({"space": {"model.overrides.kernels": {"type": "int", "low": 16, "high": 8}}}, "reversed range"),
    ({"space": {"model.overrides.kernels": {"type": "integer", "low": 8, "high": 16}}},
     "space.model.overrides.kernels.type"),
    ({"space": {"model.overrides.kernels": {"type": "int", "low": 8.5, "high": 16}}},
     "space.model.overrides.kernels.low"),
    ({"space": {"model.overrides.dropout": {"type": "categorical", "choices": []}}}, "choices"),
    ({"space": {"train.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}}, "log range"),
    ({"space": {"model.overrides.dropout": {"type": "float", "low": 0.0, "high": 0.5}}}, "grid"),
    ({"sampler": "cmaes"}, "sampler"),
    ({"pruner": {"name": "median", "patience": 3}}, "pruner.median"),
    ({"pruner": "successive_halving"}, "pruner"),
    ({"objective": {"metric": "r2_Mn"}}, "objective.metric"),
    ({"objective": {"metric": "val_r2_Zn"}}, "objective.metric"),
    ({"objective": {"metric": "val_rmse_Mn", "direction": "maximize"}}, "objective.direction"),
    ({"trials": 5}, "trials"),
    ({"base": "missing.yaml"}, "base"),
    ({"heartbeat": {"interval": 10, "grace": 5}}, "heartbeat.grace"),
    ({"report": {"series": "model.overrides.n_units"}}, "report.series"),
])
def test_malformed_sweep_names_the_field(change, field, tmp_path):
    path = write_sweep(tmp_path / "bad.yaml", tmp_path, **change)
    with pytest.raises(InputError, match="bad.yaml") as err:
        load_sweep(path)
    assert field in str(err.value)


def test_extends_merges_a_shared_sweep_file(train_data, tmp_path):
    shared = tmp_path / "base" / "shared.yaml"
    shared.parent.mkdir()
    # the shared file's experiment path is relative to the shared file's own folder
    rel = os.path.relpath(BASE_1D, shared.parent)
    write_sweep(shared, train_data["slag"], base=rel, sampler="grid", space=None)
    child = tmp_path / "child.yaml"
    child.write_text(yaml.safe_dump({
        "extends": "base/shared.yaml", "space": GRID,
        "set": {"train.max_epochs": 3, "data.split": {"seed": 4}}}))
    spec = load_sweep(child)
    assert spec.base == BASE_1D.resolve()
    assert spec.set["train.max_epochs"] == 3 and spec.set["data.shots"] == 5  # key by key
    assert spec.set["data.split"] == {"train": 0.5, "val": 0.25, "test": 0.25, "seed": 4}
    assert spec.budget == 6 and spec.metric == "val_r2_Mn"
    assert spec.source["set"]["train.max_epochs"] == 3 and "extends" not in spec.source


@pytest.mark.parametrize("target, message", [("missing.yaml", "not found"), ("self.yaml", "includes itself"),
                                             ("notes.txt", "another sweep file")])
def test_extends_errors_name_the_file(target, message, tmp_path):
    path = tmp_path / "self.yaml"
    path.write_text(yaml.safe_dump({"extends": target, "space": GRID}))
    with pytest.raises(InputError, match=message) as err:
        load_sweep(path)
    assert "self.yaml" in str(err.value)


def test_shipped_one_axis_sweeps_share_one_file():
    shared = [p.name for p in SWEEPS if yaml.safe_load(p.read_text()).get("extends") == "base/slag_grid.yaml"]
    assert len(shared) >= 8  # Fig. 9 a-c, S3-S6, the joint search
    assert all("data.split" not in (yaml.safe_load((ROOT / "sweeps" / n).read_text()).get("set") or {})
               for n in shared)


@pytest.mark.parametrize("url, message", [
    ("mysql://u@localhost/db", "unsupported database"),
    ("not a url", "not a database URL"),
    ("sqlite://", "names no file"),
    ("postgresql:///db", "names no host"),
])
def test_bad_storage_url(url, message, tmp_path, capsys):
    path = write_sweep(tmp_path / "s.yaml", tmp_path)
    with pytest.raises(InputError, match=message) as err:
        run_sweep(path, storage=url)
    assert "--storage" in str(err.value)
    assert main(["sweep", "run", str(path), "--storage", url]) == 2
    assert "--storage" in capsys.readouterr().err


def test_report_of_unknown_study(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/optuna.db"
    assert main(["sweep", "report", "nope", "--storage", url]) == 2
    assert "no such database" in capsys.readouterr().err
    optuna.create_study(study_name="other", storage=url)
    with pytest.raises(InputError, match="no study 'nope'.*other"):
        sweep_report("nope", storage=url)
