"""Crash survival: resumable checkpoints, ``--resume``, and runs whose process died.

A training run records at its start who owns it (pid, host and the process's start time, as
MLflow tags) and what decides its result (:func:`run_key`: the ``saca_lab`` sources, the
dataset's checksums, the simulator's generator version and the resolved config with the
precision it resolves to). Every ``train.checkpoint_every`` epochs :class:`ResumeCheckpoint`
writes a full Lightning checkpoint (weights, optimizer, scheduler, loops, callbacks, the random
generators and the shuffling generator of the training loader) and uploads it, with the best
checkpoint so far, into one of two artifact slots, ``resume/a`` and ``resume/b``; the tag
:data:`RESUME_TAG` names the slot whose upload completed. A process killed during an upload
therefore leaves the other, complete slot named.

A resume (``saca-lab train --resume RUN_ID``, or ``saca-lab reproduce`` finding an unfinished run
with the same reuse key) downloads that slot, reads it with the one safe loader
(:func:`~saca_lab.training.checkpoint.load_checkpoint`: no code in the file can run), and
continues into the same MLflow run. Lightning reads checkpoints through
:class:`SafeCheckpointIO`, so ``trainer.fit(ckpt_path=...)`` and ``trainer.test(ckpt_path=...)``
use that loader too.

Who owns a run, and marking runs whose owner died FAILED, is
:mod:`saca_lab.training.ownership`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.plugins import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_only

from saca_lab import tracking
from saca_lab.errors import InputError
from saca_lab.training.checkpoint import load_checkpoint
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
#: Artifact folder of the newest complete resume checkpoint, and the epochs it holds.
RESUME_TAG, RESUME_EPOCH_TAG = "saca.resume.slot", "saca.resume.epochs"
RESUME_SLOTS = ("resume/a", "resume/b")
LAST = "last.ckpt"
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


# --- Lightning pieces -------------------------------------------------------------------------

class RunLogger(MLFlowLogger):
    """MLFlowLogger that batches metrics and leaves a successful run RUNNING.

    Lightning ends the run when ``fit`` returns, before the test metrics, artifacts and model
    are logged, and a run killed then would look FINISHED and be reused half-logged:
    :func:`finish` ends it instead. Metrics wait in memory for at most :attr:`FLUSH_SECONDS`
    (or :attr:`FLUSH_METRICS` values) and go to the store in one ``log_batch``: one SQLite
    transaction per epoch was a fifth of a 150-epoch fine-tune on 14 samples. Every resume
    checkpoint and ``finalize`` flush, so a resumed run misses no epoch (Lightning's per-epoch
    ``save`` does not: it would be one transaction per epoch again).
    """

    FLUSH_SECONDS = 5.0
    FLUSH_METRICS = 900  # MLflow takes at most 1000 metrics per log_batch

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list = []
        self._flushed_at = time.monotonic()

    @rank_zero_only
    def log_metrics(self, metrics, step: int | None = None) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        for key, value in metrics.items():
            if isinstance(value, str):
                continue
            key = f"{self._prefix}{self.LOGGER_JOIN_CHAR}{key}" if self._prefix else key
            self._pending.append(Metric(key=re.sub(r"[^a-zA-Z0-9_/. -]+", "", key),
                                        value=float(value), timestamp=stamp, step=step or 0))
        if (len(self._pending) >= self.FLUSH_METRICS
                or time.monotonic() - self._flushed_at >= self.FLUSH_SECONDS):
            self.flush()

    @rank_zero_only
    def flush(self) -> None:
        """Write the metrics that wait in memory."""
        self._flushed_at = time.monotonic()
        if self._pending:
            pending, self._pending = self._pending, []
            self.experiment.log_batch(run_id=self.run_id, metrics=pending, **self._log_batch_kwargs)

    def finalize(self, status: str = "success") -> None:
        self.flush()
        if status not in ("success", "finished"):
            super().finalize(status)


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O through saca-lab's safe loader, with atomic writes.

    Every checkpoint Lightning reads (``fit(ckpt_path=)``, ``test(ckpt_path=)``) goes through
    :func:`~saca_lab.training.checkpoint.load_checkpoint`; every one it writes appears whole or
    not at all (a killed process leaves the previous file).
    """

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        if Path(path).name == ".temp.ckpt":
            # ddp_spawn hands rank 0's trained weights back to the calling process as a bare
            # state dict in a fresh temporary folder (Lightning's _MultiProcessingLauncher);
            # weights_only=True still refuses anything but tensors and plain containers.
            return torch.load(path, map_location="cpu", weights_only=True)
        return load_checkpoint(path)

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        from saca_lab.io import atomic_path

        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)


def _rng_state() -> dict[str, Any]:
    """Every global random generator, as tensors and plain values (the safe loader reads them)."""
    np_state = np.random.get_state(legacy=False)
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                       "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                       "gauss": float(np_state["gauss"])}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class ResumeCheckpoint(Checkpoint):
    """Every ``every_n_epochs`` epochs, a full checkpoint into the run's next resume slot.

    A :class:`~lightning.pytorch.callbacks.Checkpoint`, so Lightning calls it after early
    stopping and the best-model checkpoint have seen the epoch; the best checkpoint (``best``'s
    file) travels in the same slot, so a resumed run tests the same best model.

    Parameters
    ----------
    every_n_epochs : int
        Epochs between checkpoints (``train.checkpoint_every``, > 0).
    workdir : Path
        Where ``last.ckpt`` is written before its upload.
    best : ModelCheckpoint or None
        The run's best-model checkpoint callback.
    """

    def __init__(self, every_n_epochs: int, workdir: Path, best=None) -> None:
        self.every_n_epochs = every_n_epochs
        self.workdir = Path(workdir)
        self.best = best
        self._pending_rng: dict | None = None

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking:
            return
        epochs = trainer.current_epoch + 1
        if epochs % self.every_n_epochs:
            return
        path = self.workdir / LAST
        trainer.save_checkpoint(path, weights_only=False)  # resumable: optimizer and loops too
        if trainer.is_global_zero and trainer.logger is not None:
            if isinstance(trainer.logger, RunLogger):  # the metrics up to this epoch, with it
                trainer.logger.flush()
            self._upload(trainer.logger.experiment, trainer.logger.run_id, path, epochs)

    def _upload(self, client, run_id: str, path: Path, epochs: int) -> None:
        tags = client.get_run(run_id).data.tags
        slot = RESUME_SLOTS[1] if tags.get(RESUME_TAG) == RESUME_SLOTS[0] else RESUME_SLOTS[0]
        best = Path(self.best.best_model_path) if self.best and self.best.best_model_path else None
        if best is not None and best.is_file():
            client.log_artifact(run_id, str(best), artifact_path=slot)
        client.log_artifact(run_id, str(path), artifact_path=slot)
        # the tag is the commit: a slot counts only once both files are in it
        client.set_tag(run_id, RESUME_EPOCH_TAG, str(epochs))
        client.set_tag(run_id, RESUME_TAG, slot)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": _rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending_rng = state_dict.get("rng")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # Set just before the first resumed step, where the uninterrupted run had the state the
        # checkpoint holds: nothing between an epoch's end and the next step draws from them
        # (the loader shuffles with its own generator, restored by Lightning from the loop state).
        if self._pending_rng is not None:
            _set_rng_state(self._pending_rng)
            self._pending_rng = None


def check_every(value: Any) -> int:
    """``train.checkpoint_every`` as an int >= 0, or InputError."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InputError(f"train.checkpoint_every must be a whole number of epochs >= 0 "
                         f"(0: never), got {value!r}")
    return value
