"""Long runs survive a crash (issue 13 §3): resume checkpoints, ``--resume``, dead runs.

The crash-and-resume checks compare with an uninterrupted run of the same seed with tolerance
0: on one CPU thread the resumed training is the same computation (weights, optimizer, LR
schedule, every random generator and the loader's shuffling generator are restored), so every
per-epoch loss and every final metric must be equal, not close.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import mlflow
import pytest
import torch

from saca_lab.cli import main
from saca_lab.config import load_config
from saca_lab.training import lightning_io
from saca_lab.training import resume as resuming
from saca_lab.training.run import run_experiment

EXP = Path(__file__).resolve().parents[1] / "experiments" / "trcsl_1d_pretrain_slag.yaml"
EPOCHS = 4
CRASH_EPOCH = 3  # 0-based: the crash comes mid-epoch, after the checkpoint of epoch 2 (0-based)


def _sets(dataset, *extra) -> list[str]:
    # batches of 2 items: four steps an epoch, so the order the loader shuffles matters
    return [f"data.dataset={dataset}", "data.shots=5", "data.batch_size=2",
            "data.split={train: 0.5, val: 0.25, test: 0.25, seed: 0}",
            f"train.max_epochs={EPOCHS}", "train.checkpoint_every=1",
            "tracking.log_model=false", "tracking.experiment=resume-test", *extra]


class Crash(pl.Callback):
    """Fails training in the middle of an epoch, as a crash would."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == CRASH_EPOCH and batch_idx == 1:
            raise RuntimeError("simulated crash")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A private MLflow store for the module's runs (kept for the module: the crashed run is
    shared by the refusal tests)."""
    root = tmp_path_factory.mktemp("resume-store")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
        yield root


@pytest.fixture(scope="module")
def crashed(store, train_data):
    """A run that failed mid-epoch 3 with resume checkpoints after each epoch."""
    sets = _sets(train_data["slag"])
    with pytest.raises(RuntimeError, match="simulated crash") as info:
        run_experiment(load_config(EXP, sets), progress=False, callbacks=[Crash()],
                       tags={"reproduce_key": "key-of-test"})
    return {"run_id": info.value.run_id, "sets": sets}


def _history(client, run_id: str, key: str) -> dict[int, float]:
    """A metric's value per step; a step logged twice (an epoch redone after a resume) keeps
    the later value."""
    out = {}
    for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.timestamp):
        out[m.step] = m.value
    return out


def _final(run) -> dict[str, float]:
    return {k: v for k, v in run.data.metrics.items() if k.startswith("test_")}


def _copy_run(client, run_id: str, status: str, drop: tuple[str, ...] = ()) -> str:
    """A new run of the same experiment with the same tags (reuse key, owner), minus ``drop``
    and the reproduction's key."""
    run = client.get_run(run_id)
    drop = (*drop, "reproduce_key")
    tags = {k: v for k, v in run.data.tags.items() if k not in drop and not k.startswith("mlflow.")}
    new = client.create_run(run.info.experiment_id, tags=tags).info.run_id
    if status != "RUNNING":
        client.set_terminated(new, status)
    return new


def test_crashed_run_is_failed_with_a_checkpoint(crashed):
    run = mlflow.MlflowClient().get_run(crashed["run_id"])
    assert run.info.status == "FAILED"
    tags = run.data.tags
    assert tags[resuming.RESUME_TAG] in resuming.RESUME_SLOTS
    assert tags[lightning_io.RESUME_EPOCH_TAG] == str(CRASH_EPOCH)
    assert tags[resuming.PID_TAG] == str(os.getpid()) and tags[resuming.HOST_TAG] == socket.gethostname()
    assert all(tags[t] for t in resuming.KEY_TAGS.values())


def test_resume_refused_when_the_config_changed(crashed, capsys):
    rid = crashed["run_id"]
    assert main(["train", str(EXP), *(f"--set={s}" for s in crashed["sets"]),
                 "--set", "train.lr=0.002", "--resume", rid, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"--resume {rid}: refused: the config changed" in err
    run = mlflow.MlflowClient().get_run(rid)
    assert run.info.status == "FAILED"  # untouched
    assert resuming.RESUME_TAG in run.data.tags


def test_resume_refused_for_finished_unknown_and_checkpointless_runs(crashed, capsys):
    client = mlflow.MlflowClient()
    finished = _copy_run(client, crashed["run_id"], "FINISHED")
    bare = _copy_run(client, crashed["run_id"], "FAILED", drop=(resuming.RESUME_TAG,))
    alive = _copy_run(client, crashed["run_id"], "RUNNING")  # owned by this (live) process
    args = ["train", str(EXP), *(f"--set={s}" for s in crashed["sets"]), "--quiet", "--resume"]
    expected = {finished: "the run is FINISHED", "0123456789abcdef": "no such MLflow run",
                bare: "has no resume checkpoint", alive: "still RUNNING in process"}
    for run_id, message in expected.items():
        assert main([*args, run_id]) == 2
        assert message in capsys.readouterr().err
    assert client.get_run(alive).info.status == "RUNNING"
    client.set_terminated(alive, "KILLED")


def test_resume_checkpoint_with_a_pickle_payload_is_refused_unrun(crashed, tmp_path, capsys):
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / resuming.LAST
    torch.save({"state_dict": {}, "hyper_parameters": {"model_name": "trcsl_1d"},
                "callbacks": {"x": Payload()}}, evil)
    client = mlflow.MlflowClient()
    run_id = _copy_run(client, crashed["run_id"], "FAILED")
    client.log_artifact(run_id, str(evil), artifact_path="resume/b")
    client.set_tag(run_id, resuming.RESUME_TAG, "resume/b")
    assert main(["train", str(EXP), *(f"--set={s}" for s in crashed["sets"]), "--quiet",
                 "--resume", run_id]) == 2
    err = capsys.readouterr().err
    assert "refused to load" in err and "system" in err
    assert not marker.exists()
    assert client.get_run(run_id).info.status == "FAILED"


def test_dead_running_runs_are_marked_failed_on_the_next_start(crashed, capsys):
    client = mlflow.MlflowClient()
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = _copy_run(client, crashed["run_id"], "RUNNING")
    client.set_tag(dead, resuming.PID_TAG, done.stdout.strip())
    live = _copy_run(client, crashed["run_id"], "RUNNING")  # this process
    elsewhere = _copy_run(client, crashed["run_id"], "RUNNING")
    client.set_tag(elsewhere, resuming.HOST_TAG, "another-host.invalid")
    # a start with a valid config sweeps dead runs first; this one then stops on an unknown run
    # (a config that fails validation stops before MLflow is touched at all)
    assert main(["train", str(EXP), *(f"--set={s}" for s in crashed["sets"]),
                 "--resume", "0123456789abcdef0123456789abcdef", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "0123456789abcdef0123456789abcdef" in err
    assert f"run {dead} was RUNNING but its process {done.stdout.strip()}" in err
    assert client.get_run(dead).info.status == "FAILED"
    assert client.get_run(dead).data.tags[resuming.DIED_TAG].endswith("died")
    assert client.get_run(live).info.status == "RUNNING"
    assert client.get_run(elsewhere).info.status == "RUNNING"
    for run_id in (live, elsewhere):
        client.set_terminated(run_id, "KILLED")


def test_reproduce_finds_the_unfinished_run_of_its_key(crashed):
    client = mlflow.MlflowClient()
    query = "tags.reproduce_key = 'key-of-test'"
    dead = _copy_run(client, crashed["run_id"], "RUNNING")
    client.set_tag(dead, "reproduce_key", "key-of-test")
    client.set_tag(dead, resuming.PID_TAG, "999999999")  # no such process
    # the newest match whose process is gone: the RUNNING-but-dead copy, then marked FAILED
    assert resuming.resumable_run("resume-test", query) == dead
    assert client.get_run(dead).info.status == "FAILED"
    client.set_terminated(dead, "FINISHED")
    assert resuming.resumable_run("resume-test", query) == crashed["run_id"]
    assert resuming.resumable_run("resume-test", "tags.reproduce_key = 'other'") is None


def test_resume_continues_the_same_run_and_matches_an_uninterrupted_one(crashed, train_data):
    client = mlflow.MlflowClient()
    rid = crashed["run_id"]
    resumed = run_experiment(load_config(EXP, crashed["sets"]), progress=False, resume=rid)
    reference = run_experiment(load_config(EXP, crashed["sets"]), progress=False)
    assert resumed.run_id == rid
    run, ref = client.get_run(rid), client.get_run(reference.run_id)
    assert run.info.status == "FINISHED" and not run.data.tags[resuming.RESUME_TAG]
    assert not any(client.list_artifacts(rid, slot) for slot in resuming.RESUME_SLOTS)  # dropped
    assert _history(client, rid, "epoch") == _history(client, reference.run_id, "epoch")
    assert max(_history(client, rid, "epoch").values()) == EPOCHS
    for key in ("train_loss", "val_loss"):
        assert _history(client, rid, key) == _history(client, reference.run_id, key)
    assert _final(run) == _final(ref) and len(_final(run)) > 10


CHILD = """
import json, os, signal, sys
from pathlib import Path
import lightning.pytorch as pl
from saca_lab.config import load_config
from saca_lab.training.run import run_experiment

class Stall(pl.Callback):
    # stops mid-epoch, after a checkpoint, until the test kills the process
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == int(sys.argv[2]) and batch_idx == 1:
            Path(sys.argv[1]).write_text(str(os.getpid()))
            signal.pause()

run_experiment(load_config(sys.argv[3], json.loads(sys.argv[4])), progress=False, callbacks=[Stall()])
"""


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(train_data, mlflow_tmp):
    # The processes run a frozen copy of the package: the reuse key hashes the sources, and a
    # tree being edited meanwhile would (rightly) refuse the resume.
    src = mlflow_tmp / "src"
    shutil.copytree(Path(resuming.__file__).parents[1], src / "saca_lab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(src)}
    sets = _sets(train_data["slag"], "tracking.experiment=sigkill")
    marker = mlflow_tmp / "stalled"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(marker), str(CRASH_EPOCH), str(EXP),
                              json.dumps(sets)], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600  # a safety net against a hung child, not a speed limit
    while not marker.exists():
        if child.poll() is not None:
            pytest.fail(f"training exited before the crash point:\n{child.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail("training never reached the crash point")
        time.sleep(0.2)
    child.send_signal(signal.SIGKILL)
    child.wait()
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("sigkill")
    (run,) = client.search_runs([exp.experiment_id])
    rid = run.info.run_id
    assert run.info.status == "RUNNING"  # what a SIGKILL leaves
    assert run.data.tags[lightning_io.RESUME_EPOCH_TAG] == str(CRASH_EPOCH)
    args = [sys.executable, "-m", "saca_lab", "train", str(EXP), *(f"--set={s}" for s in sets), "--quiet"]
    out = subprocess.run([*args, "--resume", rid], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"run {rid} was RUNNING but its process" in out.stderr  # marked FAILED, then resumed
    ref = subprocess.run(args, env=env, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-3000:]
    ref_id = ref.stdout.split()[1]
    assert ref_id != rid
    assert client.get_run(rid).info.status == "FINISHED"
    assert max(_history(client, rid, "epoch").values()) == EPOCHS
    for key in ("epoch", "train_loss", "val_loss"):
        assert _history(client, rid, key) == _history(client, ref_id, key), key
    assert _final(client.get_run(rid)) == _final(client.get_run(ref_id))


def test_a_failure_after_the_fit_ends_the_run_failed_not_running(train_data, mlflow_tmp, monkeypatch):
    """The final checkpoint failing to save (a full disk) must not leave the run RUNNING."""
    from saca_lab.config import load_config
    from saca_lab.training.run import run_experiment

    save = lightning_io.SafeCheckpointIO.save_checkpoint

    def full_disk(self, checkpoint, path, *args, **kwargs):
        if str(path).endswith("model.ckpt"):
            raise OSError(28, "No space left on device")
        return save(self, checkpoint, path, *args, **kwargs)

    monkeypatch.setattr(lightning_io.SafeCheckpointIO, "save_checkpoint", full_disk)
    cfg = load_config(EXP, _sets(train_data["slag"], "train.max_epochs=1", "train.checkpoint_every=0"))
    with pytest.raises(OSError) as err:
        run_experiment(cfg, progress=False)
    run = mlflow.MlflowClient().get_run(err.value.run_id)
    assert run.info.status == "FAILED"


def test_a_ddp_child_rank_reads_the_checkpoint_without_the_owner_check(monkeypatch):
    from saca_lab.training import run as run_mod

    monkeypatch.setenv("LOCAL_RANK", "1")
    assert run_mod._ddp_child()
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.delenv("NODE_RANK", raising=False)
    assert not run_mod._ddp_child()


def test_owner_of_another_pid_namespace_is_never_judged_and_a_reboot_ends_every_owner():
    """A container sharing the host name and the store: its pids are not ours to check."""
    mine = resuming.owner_tags()
    assert resuming.owner_alive(mine) is True
    gone = {**mine, resuming.PID_TAG: "4000000"}
    assert resuming.owner_alive(gone) is False
    assert resuming.owner_alive({**gone, resuming.PIDNS_TAG: "1"}) is None
    assert resuming.owner_alive({**mine, resuming.PIDNS_TAG: "1"}) is None
    assert resuming.owner_alive({**mine, resuming.BOOT_TAG: "an-earlier-boot"}) is False


def _logger_with_counted_batches(monkeypatch):
    from saca_lab import tracking

    logger = lightning_io.RunLogger(experiment_name="logger-test", tracking_uri=tracking.tracking_uri(),
                                artifact_location=tracking.artifact_location())
    calls = []
    real = logger.experiment.log_batch
    monkeypatch.setattr(logger.experiment, "log_batch",
                        lambda *a, **k: (calls.append(len(k.get("metrics", ()))), real(*a, **k)))
    return logger, calls


def test_run_logger_writes_epoch_metrics_in_batches_and_all_of_them(mlflow_tmp, monkeypatch):
    logger, calls = _logger_with_counted_batches(monkeypatch)
    for step in range(40):
        logger.log_metrics({"train_loss": 1.0 / (step + 1), "epoch": float(step)}, step=step)
    assert calls == []  # waiting in memory, not one transaction per epoch
    logger.finalize("success")
    assert calls == [80]
    client = mlflow.MlflowClient()
    assert sorted(m.step for m in client.get_metric_history(logger.run_id, "train_loss")) == list(range(40))
    assert client.get_run(logger.run_id).info.status == "RUNNING"  # finish() ends it, not Lightning


def test_run_logger_flushes_by_time_and_on_failure(mlflow_tmp, monkeypatch):
    logger, calls = _logger_with_counted_batches(monkeypatch)
    monkeypatch.setattr(lightning_io.RunLogger, "FLUSH_SECONDS", 0.0)
    logger.log_metrics({"a": 1.0}, step=0)
    assert calls == [1]
    monkeypatch.setattr(lightning_io.RunLogger, "FLUSH_SECONDS", 3600.0)
    logger.log_metrics({"a": 2.0}, step=1)
    logger.finalize("failed")
    assert calls == [1, 1]
    run = mlflow.MlflowClient().get_run(logger.run_id)
    assert run.info.status == "FAILED" and run.data.metrics["a"] == 2.0
