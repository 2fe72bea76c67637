"""Two processes on one data root and one MLflow store (issue 13 §4).

The child processes wait at a barrier (a file the test creates once both have imported
saca-lab), so their critical sections really start together; without the locks each test here
fails: both children generate the dataset, or MLflow's unlocked schema creation fails in one
of them ("duplicate column name", "table already exists").
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from saca_lab.datasets.resolve import preset_folder

#: A hang guard for the children, not a speed limit: they take seconds.
HANG_S = 900

BARRIER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    ready, go = Path(sys.argv[1]), Path(sys.argv[2])
    ready.touch()
    while not go.exists():
        time.sleep(0.01)
""")


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db",
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    env.pop("PYTEST_CURRENT_TEST", None)  # MLflow's test-only session checks are not ours
    return env


def _race(tmp_path: Path, code: str, args: list[str]) -> list[tuple[int, str, str]]:
    """Start two children running ``BARRIER + code`` and release them together."""
    procs = []
    for tag in ("a", "b"):
        ready = tmp_path / f"ready-{tag}"
        procs.append(subprocess.Popen(
            [sys.executable, "-c", BARRIER + textwrap.dedent(code), str(ready), str(tmp_path / "go"), tag, *args],
            cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    while not all((tmp_path / f"ready-{t}").exists() for t in ("a", "b")):
        if any(p.poll() is not None for p in procs):
            break  # a child died before the barrier: its output says why
        time.sleep(0.05)
    (tmp_path / "go").touch()
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=HANG_S)
        out.append((p.returncode, stdout, stderr))
    return out


def test_two_processes_resolving_one_preset_generate_it_once(tmp_path):
    root = tmp_path / "data"
    name = preset_folder({"preset": "slag", "samples": 1, "shots": 2, "seed": 3})
    # left by a generation that was killed: removed under the lock; another dataset's is not
    (root / f".{name}.k1ll3d_x.tmp").mkdir(parents=True)
    (root / f".{name}.old").mkdir()
    (root / ".slag-other.k1ll3d_x.tmp").mkdir()
    results = _race(tmp_path, """
        import json
        from saca_lab.datasets.datamodules import resolve_dataset
        ds = resolve_dataset({"preset": "slag", "samples": 1, "shots": 2, "seed": 3}, sys.argv[4])
        print(json.dumps({"path": str(ds.path), "created": ds.manifest["created"],
                          "sha256": ds.manifest["sha256"]}))
    """, [str(root)])
    for rc, _, err in results:
        assert rc == 0, err
    stderr = "".join(err for _, _, err in results)
    assert stderr.count(f"simulating 1 samples into {root / name}") == 1, stderr
    assert sum(f"reusing cached dataset {root / name}" in err for _, _, err in results) == 1, stderr
    seen = [json.loads(out.strip().splitlines()[-1]) for _, out, _ in results]
    assert seen[0] == seen[1]  # one folder, one manifest: the same creation stamp and files
    assert {p.name for p in root.iterdir()} == {f".{name}.lock", ".slag-other.k1ll3d_x.tmp", name}


def test_two_processes_on_a_new_mlflow_store_lose_no_run(tmp_path):
    results = _race(tmp_path, """
        from saca_lab import tracking
        tag = sys.argv[3]
        client = tracking.client()
        exp = tracking.experiment_id("race", client)
        for i in range(3):
            run = client.create_run(exp, run_name=f"{tag}-{i}")
            for step in range(3):
                client.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)
            client.set_terminated(run.info.run_id, "FINISHED")
    """, [])
    for rc, _, err in results:
        assert rc == 0, err
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        runs = db.execute("SELECT r.name, r.status FROM runs r JOIN experiments e "
                          "ON r.experiment_id = e.experiment_id WHERE e.name = 'race'").fetchall()
        assert db.execute("SELECT count(*) FROM experiments WHERE name = 'race'").fetchone() == (1,)
        n_metrics = db.execute("SELECT count(*) FROM metrics").fetchone()[0]
    assert sorted(runs) == [(f"{t}-{i}", "FINISHED") for t in "ab" for i in range(3)]
    assert n_metrics == 2 * 3 * 3


def test_experiment_id_reads_the_experiment_another_process_created_first(mlflow_tmp):
    from saca_lab import tracking

    client = tracking.client()
    theirs = client.create_experiment("shared")

    class LateClient:
        """Did not see the experiment on its first look: the other process created it since."""

        def __init__(self):
            self.looks = 0

        def get_experiment_by_name(self, name):
            self.looks += 1
            return None if self.looks == 1 else client.get_experiment_by_name(name)

        def create_experiment(self, name, artifact_location=None):
            return client.create_experiment(name, artifact_location=artifact_location)

    assert tracking.experiment_id("shared", LateClient()) == theirs
    assert tracking.experiment_id("new", client) == client.get_experiment_by_name("new").experiment_id


def test_file_lock_waits_for_the_holder(tmp_path):
    from saca_lab.locking import file_lock

    lock = tmp_path / "x.lock"
    with file_lock(lock):
        child = subprocess.Popen(
            [sys.executable, "-c", "import sys; from saca_lab.locking import file_lock\n"
             "with file_lock(sys.argv[1], waiting='held by the test'):\n    print('got it')", str(lock)],
            env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # the child reports that it waits, and cannot take the lock while the test holds it
        line = child.stderr.readline()
        assert "waiting: held by the test" in line
        assert child.poll() is None
    out, _ = child.communicate(timeout=HANG_S)
    assert child.returncode == 0 and out.strip() == "got it"


@pytest.mark.slow
def test_two_reproductions_on_one_store_and_data_root(tmp_path):
    """`saca-lab reproduce` twice at once, as a user running ``--only`` beside a full run."""
    sets = ["slag={preset: slag, samples: 6, shots: 2}",
            "carbon_steel={preset: carbon-steel, samples: 6, shots: 2}",
            "shots=2", "pretrain_epochs=1", "finetune_epochs=1", "seeds=[0]"]
    argv = [sys.executable, "-m", "saca_lab", "reproduce", "--quick", "--data-root", str(tmp_path / "data")]
    for s in sets:
        argv += ["--set", s]
    procs = [subprocess.Popen([*argv, "--only", only, "--out", str(tmp_path / out)], cwd=tmp_path,
                              env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for only, out in (("fig8,fig13,fig12", "full"), ("fig13,fig12", "only"))]
    results = [(p.wait(timeout=HANG_S * 4), *p.communicate()) for p in procs]
    for rc, out, err in results:
        assert rc == 0, out[-2000:] + err[-4000:]
    stderr = "".join(err for _, _, err in results)
    for name in (preset_folder({"preset": p, "samples": 6, "shots": 2}) for p in ("slag", "carbon-steel")):
        assert stderr.count(f"into {tmp_path / 'data' / name} ") == 1, stderr[-4000:]
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        runs = db.execute("SELECT e.name, r.status, r.run_uuid FROM runs r JOIN experiments e "
                          "ON r.experiment_id = e.experiment_id").fetchall()
        keys = db.execute("SELECT value FROM tags WHERE key = 'reproduce_key'").fetchall()
    by_exp = {}
    for exp, status, _ in runs:
        by_exp.setdefault(exp, []).append(status)
    assert {k: len(v) for k, v in by_exp.items() if k != "reproduce-training"} == {
        "reproduce-fig8": 1, "reproduce-fig13": 2, "reproduce-fig12": 2}
    assert all(s == "FINISHED" for v in by_exp.values() for s in v), by_exp
    # each training run once: the second reproduction waited for it and reused it
    assert len(keys) == len(set(keys)) == len(by_exp["reproduce-training"]) > 0
    for out in ("full", "only"):
        assert (tmp_path / out / "report.md").is_file()
        assert not list((tmp_path / out).glob(".*"))  # no temporary file left behind


def test_a_store_in_a_folder_we_cannot_write_is_read_without_a_lock_file(tmp_path, monkeypatch):
    """A read-only copy of someone's mlruns/ (predict, reports) must open: no lock file there."""
    import mlflow

    from saca_lab import tracking

    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    mlflow.MlflowClient(uri).create_experiment("shared")  # the store exists
    real_access = os.access
    monkeypatch.setattr(tracking.os, "access",
                        lambda p, mode: False if str(p) == str(tmp_path) else real_access(p, mode))
    tracking._opened.discard(uri)
    tracking.open_store(uri)
    assert not (tmp_path / "mlflow.db.init.lock").exists()
    assert mlflow.MlflowClient(uri).get_experiment_by_name("shared") is not None
