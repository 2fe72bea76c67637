"""Run one experiment in three steps: build -> fit -> evaluate, everything logged to MLflow.

:func:`build_run` makes the data module, the model and the callbacks (nothing touches MLflow
yet), :func:`fit` opens the MLflow run and trains, and
:func:`~saca_lab.training.evaluate.evaluate` predicts the test set once and logs from those
predictions; :func:`run_experiment` chains them and returns a
:class:`~saca_lab.training.result.RunResult`. Every run logs its resolved config, dataset
manifest hash, git commit, per-epoch and final per-element metrics (per spectrum and per
sample), a predicted-vs-true plot, the checkpoint, and a pyfunc model that predicts from raw
spectra.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from saca_lab import tracking
from saca_lab.config import DEFAULTS
from saca_lab.datasets.datamodules import SpectraDataModule
from saca_lab.datasets.splits import make_split
from saca_lab.errors import InputError
from saca_lab.models import model_info
from saca_lab.preprocessing.line_selection import TRCSL_LINES
from saca_lab.runtime import resolve_strategy, resolve_training
from saca_lab.training import lightning_io
from saca_lab.training import resume as resuming
from saca_lab.training.checkpoint import load_checkpoint
from saca_lab.training.evaluate import evaluate
from saca_lab.training.module import SpectraRegressor
from saca_lab.training.result import RunResult
from saca_lab.training.spawn import leave_process_group, trainer_strategy
from saca_lab.training.transfer import (
    CacheFrozenFeatures,
    FreezeFeatures,
    caches_features,
    finetune_model_config,
    load_pretrained,
    output_layer_matches,
    target_windows,
    window_targets,
)


def build_datamodule(cfg: dict, input_kind: str, feature_spec: dict | None = None) -> SpectraDataModule:
    data = cfg["data"]
    prep = data["preprocessing"]
    lines, half_width = data["lines"], data["half_width"]
    prep = {k: v for k, v in prep.items() if k != "standardize"}  # fitted later, on the model
    if feature_spec is not None:  # transfer: the target data must be preprocessed like the source
        prep = {"airpls": feature_spec["airpls"], "minmax": feature_spec["minmax"]}
        lines, half_width = feature_spec["lines"], feature_spec["half_width"]
        # None in a feature spec is the paper's lines (checkpoints from before data.lines)
        lines = "paper" if lines is None else lines
    return SpectraDataModule(data["dataset"], targets=data["targets"], input_kind=input_kind,
                             split=data["split"], shots=data["shots"], preprocessing=prep,
                             lines=lines, half_width=half_width, augment=data["augment"],
                             lines_per_element=data["lines_per_element"],
                             batch_size=data["batch_size"], num_workers=data["num_workers"])


def has_validation(split: dict) -> bool:
    """Whether a ``data.split`` sets samples aside for validation (ratio or k-fold split)."""
    return float(split.get("val") or 0) > 0


def require_validation(cfg: dict, what: str) -> None:
    """Refuse a config whose ``what`` (early stopping, a sweep objective) needs validation
    samples when its split has none: validation never falls back to the test samples."""
    split = cfg["data"]["split"]
    if has_validation(split):
        return
    carve = ("--set data.split.val=0.1" if split.get("folds") else
             f"e.g. data.split {{train: {round(split['train'] - 0.1, 6)}, val: 0.1, "
             f"test: {split['test']}}} (the test samples stay the same)")
    raise InputError(f"{what} needs validation samples, and data.split.val is 0; validation "
                     f"never reads the test samples. Carve a validation part from the training "
                     f"samples, {carve}")


def _usable_in_target(dm: SpectraDataModule, feature_spec: dict) -> list[str]:
    """Fine-tune targets whose inherited windows pass the nist rule on the target's training
    samples (see :mod:`saca_lab.training.transfer`); the split is the one ``setup`` makes."""
    ds = dm.ds
    train = make_split(ds.shape[0], dm.split_spec).train
    composition = {k: float(np.mean(v[train])) for k, v in ds.targets.items()}
    lines = feature_spec.get("lines")
    if lines is None:  # a checkpoint from before data.lines: the paper's lines
        lines = [line.wavelength_nm for line in TRCSL_LINES]
    return target_windows(dm.target_names, lines, ds.wavelengths, composition)


def _model_config(cfg: dict, dm: SpectraDataModule) -> dict:
    info = model_info(cfg["model"]["name"])
    overrides = dict(cfg["model"]["overrides"] or {})
    overrides["n_outputs"] = len(dm.target_names)
    if info.input_kind == "lines_1d":
        overrides["in_length"] = dm.input_shape[-1]
    return overrides


@dataclass
class RunSetup:
    """What :func:`build_run` prepares before the MLflow run is touched, for :func:`fit` and
    :func:`~saca_lab.training.evaluate.evaluate`."""

    cfg: dict
    dm: SpectraDataModule
    module: SpectraRegressor
    callbacks: list             # the fit's, the caller's among them
    extra_callbacks: list       # the caller's alone: the test pass runs them too
    checkpoints: ModelCheckpoint
    workdir: Path               # the run's checkpoints on this machine
    key: dict[str, str]         # reuse key tags (training/resume.py)
    precision: str
    channels_last: bool
    transfer: dict | None
    reinitialised: list[str]    # transfer: layers re-initialised instead of loaded
    resume: str | None          # the MLflow run continued, if any
    resume_ckpt: str | None
    logger: lightning_io.RunLogger | None = None  # set by fit once the run exists

    @property
    def has_val(self) -> bool:
        return len(self.dm.split.val) > 0


def run_experiment(cfg: dict, *, progress: bool = True, callbacks: list | None = None,
                   parent_run_id: str | None = None, tags: dict | None = None,
                   resume: str | None = None) -> RunResult:
    """Train and test one configuration: :func:`build_run`, :func:`fit`, then
    :func:`~saca_lab.training.evaluate.evaluate` (the test set predicted once).

    ``callbacks`` are added to the Trainer's (e.g. Optuna pruning); ``parent_run_id`` nests the
    MLflow run under a parent (a sweep or a comparison study); ``tags`` are set on the run. An
    exception raised during training carries the MLflow run id as ``exc.run_id``. ``resume``
    (an MLflow run id) continues that unfinished run from its last resume checkpoint, into the
    same run; refused (InputError) if its reuse key differs (see
    :mod:`saca_lab.training.resume`). The run stays RUNNING until everything is logged.
    """
    setup = build_run(cfg, callbacks=callbacks, resume=resume)
    try:
        trainer = fit(setup, progress=progress, parent_run_id=parent_run_id, tags=tags)
        if trainer.world_size > 1 and not trainer.is_global_zero:
            # ``ddp``: a re-run of the command for a rank > 0; rank 0 tests, logs and reports,
            # and its folder holds the checkpoint
            shutil.rmtree(setup.workdir, ignore_errors=True)
            # leave the group with rank 0, which does so before its test pass (make_tester):
            # gloo's threads torn down at interpreter exit can abort the process (spawn.py)
            leave_process_group()
            return RunResult(run_id=None, rank=trainer.global_rank)
        result = evaluate(setup, trainer, progress=progress)
        resuming.finish(result.run_id, setup.logger.experiment)
        return result
    except BaseException as exc:
        # whatever fails between reopening or creating the run and finishing it (set-up, fit,
        # test, the final checkpoint, logging) ends the run FAILED, never left RUNNING
        run_id = getattr(setup.logger, "_run_id", None) or resume
        _end_failed(run_id)
        if getattr(exc, "run_id", None) is None and run_id:
            exc.run_id = run_id  # callers (sweeps) end it as they see fit
        raise


def build_run(cfg: dict, *, callbacks: list | None = None, resume: str | None = None) -> RunSetup:
    """Seed, resolve the transfer source, and build the data module, the model, the callbacks
    and the run's checkpoint folder; a ``resume`` run is checked (its reuse key) and its last
    checkpoint fetched. Nothing is written to MLflow."""
    checkpoint_every = lightning_io.check_every(cfg["train"]["checkpoint_every"])
    if cfg["train"]["early_stopping"]:
        require_validation(cfg, "train.early_stopping (it monitors val_loss)")
    pl.seed_everything(cfg["seed"], workers=True, verbose=False)
    info = model_info(cfg["model"]["name"])
    transfer = cfg.get("transfer") or None
    source_ckpt = tracking.resolve_checkpoint(str(transfer["from"])) if transfer else None
    source_hp = load_checkpoint(source_ckpt)["hyper_parameters"] if source_ckpt else None
    if source_hp and source_hp["model_name"] != cfg["model"]["name"]:
        raise InputError(f"transfer: checkpoint is a {source_hp['model_name']!r} model, "
                         f"the experiment asks for {cfg['model']['name']!r}")
    dm = build_datamodule(cfg, info.input_kind, source_hp["feature_spec"] if source_hp else None)
    dm.prepare_data()
    if source_hp and info.input_kind == "lines_1d":
        dm.target_names = window_targets(dm.target_names, source_hp["target_names"])
        if (cfg["data"]["lines"] or DEFAULTS["data"]["lines"]) == "nist":
            dm.target_names = _usable_in_target(dm, source_hp["feature_spec"])
    dm.setup()
    if not len(dm.split.test):
        # refused here, not in the test pass after the whole fit: every run is tested
        raise InputError(f"data.split {cfg['data']['split']} leaves no test sample of the "
                         f"{dm.ds.shape[0]} in {cfg['data']['dataset']}; every run is tested on "
                         "held-out samples: keep at least one (e.g. data.split.test=0.05)")
    model_config = (finetune_model_config(cfg["model"]["name"], source_hp["model_config"],
                                          cfg["model"]["overrides"])
                    if source_hp else _model_config(cfg, dm))
    model_config["n_outputs"] = len(dm.target_names)
    mean, std = dm.target_stats()
    if not cfg["train"]["standardize_targets"]:
        mean, std = np.zeros_like(mean), np.ones_like(std)
    t = cfg["train"]
    precision, channels_last = resolve_training(t, info.input_kind)  # "auto": by the hardware
    # Refitted on the target's training split in transfer too (as AdaBN refits batch-norm
    # statistics): slag-fitted scaling would put steel pixels far outside the trained range.
    in_mean, in_std = dm.input_stats() if cfg["data"]["preprocessing"].get("standardize", True) else (None, None)
    module = SpectraRegressor(cfg["model"]["name"], model_config, dm.target_names, mean.tolist(),
                              std.tolist(), dm.feature_spec.to_dict(), dm.ds.wavelengths.tolist(),
                              lr=t["lr"], lr_step=t["lr_step"], lr_gamma=t["lr_gamma"],
                              lr_schedule=t["lr_schedule"],
                              weight_decay=t["weight_decay"], optimizer=t["optimizer"],
                              channels_last=channels_last,
                              freeze_features=bool(transfer), input_mean=in_mean, input_std=in_std)
    extra = list(callbacks or [])
    callbacks = list(extra)
    reinitialised = []
    if transfer:
        reinit_output = not output_layer_matches(dm.target_names, source_hp["target_names"])
        if reinit_output:
            print(f"transfer: targets {dm.target_names} differ from the pre-training's "
                  f"{source_hp['target_names']}; the output layer is re-initialised",
                  file=sys.stderr)
        reinitialised = load_pretrained(module, source_ckpt, reinit_output=reinit_output)
        callbacks.append(FreezeFeatures(transfer.get("unfreeze_at_epoch"), transfer.get("unfreeze_lr")))
        if caches_features(module.model, dm.augment, transfer.get("unfreeze_at_epoch")):
            callbacks.append(CacheFrozenFeatures(dm))
    has_val = len(dm.split.val) > 0
    workdir = Path(tempfile.mkdtemp(prefix="saca-run-"))
    key = resuming.run_key(cfg, [precision, channels_last], dm.ds.path, source_ckpt)
    # checked and read (safely) before the run is touched; a ``ddp`` rank > 0 re-runs this command
    # while rank 0 already holds the run RUNNING, so it only reads the checkpoint
    if resume:
        run = (tracking.client().get_run(resume) if _ddp_child() else resuming.check_resumable(resume, key))
        resume_ckpt = resuming.fetch_checkpoint(run, workdir)
    else:
        resume_ckpt = None
    # Without validation data the "best" checkpoint is the last epoch's and nothing tests it:
    # written once at the end, not every epoch (150 writes were a third of a 150-epoch
    # fine-tune on 14 samples).
    ckpt_cb = ModelCheckpoint(dirpath=workdir, monitor="val_loss" if has_val else None,
                              save_top_k=1, save_last=False, filename="best",
                              every_n_epochs=1 if has_val else max(1, int(cfg["train"]["max_epochs"])))
    callbacks.append(ckpt_cb)
    if checkpoint_every:
        callbacks.append(lightning_io.ResumeCheckpoint(checkpoint_every, workdir, best=ckpt_cb))
    if t["early_stopping"]:
        callbacks.append(EarlyStopping(monitor="val_loss", mode="min", **t["early_stopping"]))
    return RunSetup(cfg, dm, module, callbacks, extra, ckpt_cb, workdir, key, precision, channels_last,
                    transfer, reinitialised, resume, resume_ckpt)


def fit(setup: RunSetup, *, progress: bool = True, parent_run_id: str | None = None,
        tags: dict | None = None) -> pl.Trainer:
    """Open the MLflow run (a new one, or ``setup.resume`` reopened) and fit the model; return
    the Trainer. An exception raised by the fit carries the run id as ``exc.run_id``."""
    cfg, t = setup.cfg, setup.cfg["train"]
    if setup.resume:
        resuming.reopen(setup.resume)
    # created here, race-safely: Lightning's get-or-create fails when another process wins
    tracking.experiment_id(cfg["tracking"]["experiment"])
    logger = setup.logger = lightning_io.RunLogger(
        experiment_name=cfg["tracking"]["experiment"], run_id=setup.resume,
        run_name=cfg["tracking"]["run_name"] or cfg["name"], tracking_uri=tracking.tracking_uri(),
        log_model=False, artifact_location=tracking.artifact_location(),
        tags={**(tags or {}), **setup.key, **resuming.owner_tags(), "precision": setup.precision,
              "channels_last": str(setup.channels_last).lower(),
              **({"mlflow.parentRunId": parent_run_id} if parent_run_id else {})})
    strategy = resolve_strategy(t["strategy"], t["devices"], t["accelerator"])
    trainer = pl.Trainer(max_epochs=t["max_epochs"], accelerator=t["accelerator"], devices=t["devices"],
                         strategy=trainer_strategy(strategy), sync_batchnorm=_sync_batchnorm(t, strategy),
                         precision=setup.precision, logger=logger, callbacks=setup.callbacks,
                         deterministic=True, enable_progress_bar=progress, log_every_n_steps=1,
                         fast_dev_run=t["fast_dev_run"], limit_train_batches=t["limit_train_batches"],
                         num_sanity_val_steps=0, enable_model_summary=progress,
                         limit_val_batches=None if setup.has_val else 0,
                         plugins=[lightning_io.SafeCheckpointIO()])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        if trainer.world_size > 1:
            _ = logger.run_id  # the run exists before the ranks start, so rank 0 logs into it
        try:
            trainer.fit(setup.module, setup.dm, ckpt_path=setup.resume_ckpt, weights_only=True)
        except BaseException as exc:
            exc.run_id = logger.run_id
            raise
    return trainer


def _ddp_child() -> bool:
    """True in a process that Lightning's ``ddp`` strategy started for a rank > 0."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0) > 0 or int(os.environ.get("NODE_RANK", "0") or 0) > 0


def _end_failed(run_id: str | None) -> None:
    if not run_id or _ddp_child():  # rank 0 owns the run and ends it
        return
    try:
        tracking.client().set_terminated(run_id, "FAILED")
    except Exception as exc:  # the store itself may be what failed; the original error matters more
        print(f"could not mark run {run_id} FAILED: {exc}", file=sys.stderr)


def _sync_batchnorm(train: dict, strategy: str) -> bool:
    """Batch-norm statistics over the global batch when training on several GPUs, so a step
    normalises as one process would; torch's SyncBatchNorm runs on GPUs only, so CPU ranks keep
    per-rank statistics (our TrCSL models have no batch norm; SACA's ResNet has)."""
    multi = strategy not in ("auto", "single_device")
    accelerator = str(train["accelerator"])
    return multi and accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
