"""The Lightning side of a run's I/O: metrics into MLflow, checkpoints written and read.

:class:`RunLogger` sends a run's metrics to MLflow in batches and leaves the run RUNNING when
``fit`` returns (:func:`saca_lab.training.resume.finish` ends it once everything is logged).
Every ``train.checkpoint_every`` epochs :class:`ResumeCheckpoint` writes a full Lightning
checkpoint (weights, optimizer, scheduler, loops, callbacks, the random generators and the
shuffling generator of the training loader) and uploads it, with the best checkpoint so far,
into one of two artifact slots, ``resume/a`` and ``resume/b``; the tag :data:`RESUME_TAG` names
the slot whose upload completed. A process killed during an upload therefore leaves the other,
complete slot named. Lightning reads checkpoints through :class:`SafeCheckpointIO`, so
``trainer.fit(ckpt_path=...)`` and ``trainer.test(ckpt_path=...)`` use the one safe loader
(:func:`~saca_lab.training.checkpoint.load_checkpoint`: no code in the file can run).

Continuing a run from its slots is :mod:`saca_lab.training.resume`.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.plugins import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_only

from saca_lab.errors import InputError
from saca_lab.training.checkpoint import load_checkpoint

#: Artifact folder of the newest complete resume checkpoint, and the epochs it holds.
RESUME_TAG, RESUME_EPOCH_TAG = "saca.resume.slot", "saca.resume.epochs"
RESUME_SLOTS = ("resume/a", "resume/b")
LAST = "last.ckpt"


class RunLogger(MLFlowLogger):
    """MLFlowLogger that batches metrics and leaves a successful run RUNNING.

    Lightning ends the run when ``fit`` returns, before the test metrics, artifacts and model
    are logged, and a run killed then would look FINISHED and be reused half-logged:
    :func:`~saca_lab.training.resume.finish` ends it instead. Metrics wait in memory for at most :attr:`FLUSH_SECONDS`
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
