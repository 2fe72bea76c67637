"""Crash survival: ``--resume``, and runs whose process died.

A training run records at its start who owns it (pid, host and the process's start time, as
MLflow tags) and what decides its result (:func:`run_key`: the ``saca_lab`` sources, the
dataset's checksums, the simulator's generator version and the resolved config with the
precision it resolves to). While it trains, its resume checkpoints go into two alternating
artifact slots, the tag :data:`RESUME_TAG` naming the newest complete one
(:class:`~saca_lab.training.lightning_io.ResumeCheckpoint`).

A resume (``saca-lab train --resume RUN_ID``, or ``saca-lab reproduce`` finding an unfinished run
with the same reuse key) checks the run (:func:`check_resumable`), downloads that slot, reads it
with the one safe loader (:func:`~saca_lab.training.checkpoint.load_checkpoint`: no code in the
file can run), and continues into the same MLflow run (:func:`reopen`); :func:`finish` ends a
run once everything is logged.

Who owns a run, and marking runs whose owner died FAILED, is
:mod:`saca_lab.training.ownership`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint

from saca_lab import tracking
from saca_lab.errors import InputError
from saca_lab.training.checkpoint import load_checkpoint
from saca_lab.training.lightning_io import LAST, RESUME_SLOTS, RESUME_TAG, SafeCheckpointIO
from saca_lab.training.ownership import (  # noqa: F401  (re-exported: callers read them here)
    BOOT_TAG,
    DIED_TAG,
    HOST_TAG,
    PID_TAG,
    PIDNS_TAG,
    PROCESS_START_TAG,
    mark_dead_runs,
    mark_failed,
    owner_alive,
    owner_tags,
    search_runs,
)

#: The parts of a run's reuse key, each a tag, so a refused resume can say which part changed.
KEY_TAGS = {"code": "saca.key.code", "dataset": "saca.key.dataset",
            "generator version": "saca.key.generator", "config": "saca.key.config"}
#: Statuses of a run that may be continued (RUNNING only once its process is gone).
UNFINISHED = ("RUNNING", "FAILED", "KILLED")


# --- what decides a run's result --------------------------------------------------------------

def _sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.cache
def _code_hash() -> str:
    """The hash of the ``saca_lab`` sources as this process first read them: the code it runs,
    even if the files are edited while it trains."""
    from saca_lab.training.provenance import source_hash

    return source_hash()


def run_key(cfg: dict, runtime: Any, dataset_path: str | os.PathLike,
            transfer_source: str | os.PathLike | None = None) -> dict[str, str]:
    """The parts of a run's reuse key, as tags (:data:`KEY_TAGS`).

    The same inputs as :func:`saca_lab.reproduce.context.reuse_key`, kept apart so a refusal
    names what changed; the config part also holds the precision and memory format ``auto``
    resolved to (``runtime``) and, for a fine-tune, the checksum of the source checkpoint
    (``transfer.from: experiment:NAME`` names whichever run is newest).
    """
    from saca_lab.spectra.simulate import GENERATOR_VERSION
    from saca_lab.training.provenance import dataset_checksum

    config = {"config": cfg, "runtime": runtime,
              "transfer_source": _sha256_file(transfer_source) if transfer_source else None}
    config_hash = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    return {KEY_TAGS["code"]: _code_hash(), KEY_TAGS["dataset"]: dataset_checksum(str(dataset_path)),
            KEY_TAGS["generator version"]: str(GENERATOR_VERSION), KEY_TAGS["config"]: config_hash}


# --- resuming ---------------------------------------------------------------------------------

def check_resumable(run_id: str, key: dict[str, str], client=None):
    """The MLflow run ``run_id`` if it may be continued with this ``key``; else InputError.

    Refused: an unknown run, a FINISHED run, a RUNNING run whose process is alive (or cannot be
    checked from this host), a run without a reuse key or a resume checkpoint, and a run whose
    key differs from ``key`` (the message names the parts that changed).
    """
    import mlflow

    client = client or tracking.client()
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise InputError(f"--resume {run_id}: no such MLflow run in {tracking.tracking_uri()}") from None
    tags, status = run.data.tags, run.info.status
    if status == "FINISHED":
        raise InputError(f"--resume {run_id}: the run is FINISHED, there is nothing to resume "
                         "(train without --resume for a new run)")
    if status == "RUNNING":
        alive = owner_alive(tags)
        if alive is None:
            raise InputError(f"--resume {run_id}: the run is RUNNING, started on host "
                             f"{tags.get(HOST_TAG, '(unknown)')}, whose process cannot be checked "
                             "from here; resume it there, or mark it FAILED in MLflow first")
        if alive:
            raise InputError(f"--resume {run_id}: the run is still RUNNING in process "
                             f"{tags[PID_TAG]}; two processes must not train one run")
    missing = [part for part, tag in KEY_TAGS.items() if tag not in tags]
    if missing:
        raise InputError(f"--resume {run_id}: the run has no reuse key (it was not started by "
                         "this version of saca-lab train), so a resume cannot be checked; "
                         "train a new run")
    changed = [part for part, tag in KEY_TAGS.items() if tags[tag] != key[tag]]
    if changed:
        raise InputError(f"--resume {run_id}: refused: the {' and the '.join(changed)} changed "
                         "since the run started (config: the experiment file, --set overrides, or "
                         "the precision 'auto' resolves to here), so continuing would splice two "
                         "different trainings; train a new run instead")
    if tags.get(RESUME_TAG) not in RESUME_SLOTS:
        raise InputError(f"--resume {run_id}: the run has no resume checkpoint (it stopped before "
                         "its first one, or train.checkpoint_every was 0); train a new run")
    return run


def fetch_checkpoint(run, workdir: Path) -> Path:
    """Download the run's newest complete resume slot into ``workdir``; the path of its
    ``last.ckpt``, read once with the safe loader (a file asking to run code is refused here,
    before the run is touched)."""
    import mlflow

    slot = run.data.tags[RESUME_TAG]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = Path(mlflow.artifacts.download_artifacts(
                run_id=run.info.run_id, artifact_path=slot, dst_path=tmp,
                tracking_uri=tracking.tracking_uri()))
        except (mlflow.exceptions.MlflowException, OSError) as e:
            raise InputError(f"--resume {run.info.run_id}: cannot read its checkpoint {slot}: "
                             f"{e}") from None
        if not (local / LAST).is_file():
            raise InputError(f"--resume {run.info.run_id}: its checkpoint {slot}/{LAST} is missing")
        workdir.mkdir(parents=True, exist_ok=True)
        for f in local.iterdir():  # last.ckpt and the best checkpoint it refers to
            ckpt = load_checkpoint(f)
            if _move_checkpoint_paths(ckpt, workdir):
                SafeCheckpointIO().save_checkpoint(ckpt, workdir / f.name)
            else:
                shutil.move(str(f), workdir / f.name)
    return workdir / LAST


def _move_checkpoint_paths(ckpt: dict, workdir: Path) -> bool:
    """Point the ModelCheckpoint states of ``ckpt`` at ``workdir``, where the resumed run keeps
    its checkpoints; True if anything changed.

    The dead process wrote them into its own temporary folder; Lightning restores the best
    score and path only when the folder is the same, and the best file now lies in ``workdir``.
    """
    changed = False
    for name, state in (ckpt.get("callbacks") or {}).items():
        if not (name.startswith(ModelCheckpoint.__name__) and isinstance(state, dict)
                and state.get("dirpath")):
            continue
        old = str(state["dirpath"])

        def moved(path, old=old):
            return str(workdir / Path(path).name) if path and str(Path(path).parent) == old else path

        for field in ("best_model_path", "kth_best_model_path", "last_model_path"):
            if field in state:
                state[field] = moved(state[field])
        if isinstance(state.get("best_k_models"), dict):
            state["best_k_models"] = {moved(k): v for k, v in state["best_k_models"].items()}
        state["dirpath"] = str(workdir)
        changed = True
    return changed


def resumable_run(experiment: str, query: str, client=None) -> str | None:
    """The newest unfinished run of ``experiment`` matching the ``search_runs`` filter
    ``query`` that holds a resume checkpoint and whose process is gone (such a RUNNING run is
    marked FAILED first); None if there is none."""
    client = client or tracking.client()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    for run in search_runs(client, [exp.experiment_id], f"{query} and attributes.status != 'FINISHED'"):
        tags = run.data.tags
        if run.info.status not in UNFINISHED:  # SCHEDULED: never started
            continue
        if run.info.status == "RUNNING":
            if owner_alive(tags) is not False:
                continue  # alive, or on another host: not ours to take over
            mark_failed(client, run, f"process {tags[PID_TAG]} on {tags[HOST_TAG]} died")
        if tags.get(RESUME_TAG) in RESUME_SLOTS and all(t in tags for t in KEY_TAGS.values()):
            return run.info.run_id
    return None


def reopen(run_id: str, client=None) -> None:
    """Make the run RUNNING again, owned by this process (rank 0's, under ``ddp``)."""
    from lightning.pytorch.utilities import rank_zero_only

    if getattr(rank_zero_only, "rank", 0) != 0:
        return
    client = client or tracking.client()
    for k, v in owner_tags().items():
        client.set_tag(run_id, k, v)
    client.set_tag(run_id, DIED_TAG, "")
    client.update_run(run_id, status="RUNNING")


def finish(run_id: str, client=None) -> None:
    """End a run that logged everything: FINISHED, and its resume checkpoints dropped where the
    artifact store can delete (a finished run is never resumed); elsewhere they stay."""
    import mlflow
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    client = client or tracking.client()
    run = client.get_run(run_id)
    if run.data.tags.get(RESUME_TAG):
        client.set_tag(run_id, RESUME_TAG, "")
        repo = get_artifact_repository(run.info.artifact_uri)
        for slot in RESUME_SLOTS:
            try:
                repo.delete_artifacts(slot)
            except (NotImplementedError, OSError, mlflow.exceptions.MlflowException):
                continue  # a store that cannot delete keeps the files; the cleared tag disowns them
    client.set_terminated(run_id, "FINISHED")
