"""Run one experiment: data -> model -> Lightning fit/test -> everything logged to MLflow.

Every run logs its resolved config, dataset manifest hash, git commit, per-epoch and final
per-element metrics (per spectrum and per sample), a predicted-vs-true plot, the checkpoint, and
a pyfunc model that predicts from raw spectra.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from saca_lab import tracking
from saca_lab.config import DEFAULTS, dump_config, flatten
from saca_lab.data.datamodules import SpectraDataModule
from saca_lab.data.splits import make_split
from saca_lab.errors import InputError
from saca_lab.models import model_info
from saca_lab.preprocessing.line_selection import TRCSL_LINES
from saca_lab.runtime import resolve_strategy, resolve_training
from saca_lab.training import resume as resuming
from saca_lab.training.checkpoint import load_checkpoint
from saca_lab.training.module import SpectraRegressor
from saca_lab.training.reporting import per_sample_metrics, plot_pred_vs_true
from saca_lab.training.spawn import trainer_strategy
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


def latest_run(experiment: str) -> str:
    """Id of the newest finished run of an MLflow experiment."""
    client = tracking.client()
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=1) if exp else []
    if not runs:
        raise InputError(f"no finished run in MLflow experiment {experiment!r} "
                         f"({tracking.tracking_uri()}); train it first")
    return runs[0].info.run_id


def resolve_checkpoint(source: str) -> str:
    """A checkpoint path from a path, an MLflow run id, ``runs:/RUN_ID`` or ``experiment:NAME``
    (the newest finished run of that experiment)."""
    if Path(source).is_file():
        return str(source)
    import mlflow

    if source.startswith("experiment:"):
        source = latest_run(source[len("experiment:"):])
    run_id = source[len("runs:/"):].split("/")[0] if source.startswith("runs:/") else source
    client = tracking.client()
    try:
        client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise InputError(f"{source!r} is neither a checkpoint file nor an MLflow run id "
                         f"in {tracking.tracking_uri()}") from None
    return mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="checkpoints/model.ckpt",
                                               tracking_uri=tracking.tracking_uri())


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


def run_experiment(cfg: dict, *, progress: bool = True, callbacks: list | None = None,
                   parent_run_id: str | None = None, tags: dict | None = None,
                   resume: str | None = None) -> dict:
    """Train and test one configuration; return run id, final metrics and checkpoint path.

    ``callbacks`` are added to the Trainer's (e.g. Optuna pruning); ``parent_run_id`` nests the
    MLflow run under a parent (a sweep or a comparison study); ``tags`` are set on the run. An
    exception raised during training carries the MLflow run id as ``exc.run_id``. ``resume``
    (an MLflow run id) continues that unfinished run from its last resume checkpoint, into the
    same run; refused (InputError) if its reuse key differs (see
    :mod:`saca_lab.training.resume`). The run stays RUNNING until everything is logged.
    """
    checkpoint_every = resuming.check_every(cfg["train"]["checkpoint_every"])
    if cfg["train"]["early_stopping"]:
        require_validation(cfg, "train.early_stopping (it monitors val_loss)")
    pl.seed_everything(cfg["seed"], workers=True, verbose=False)
    info = model_info(cfg["model"]["name"])
    transfer = cfg.get("transfer") or None
    source_ckpt = resolve_checkpoint(str(transfer["from"])) if transfer else None
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
                              weight_decay=t["weight_decay"], channels_last=channels_last,
                              freeze_features=bool(transfer), input_mean=in_mean, input_std=in_std)
    callbacks = list(callbacks or [])
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
    ckpt_cb = ModelCheckpoint(dirpath=workdir, monitor="val_loss" if has_val else None,
                              save_top_k=1, save_last=False, filename="best")
    callbacks.append(ckpt_cb)
    if checkpoint_every:
        callbacks.append(resuming.ResumeCheckpoint(checkpoint_every, workdir, best=ckpt_cb))
    if t["early_stopping"]:
        callbacks.append(EarlyStopping(monitor="val_loss", mode="min", **t["early_stopping"]))
    logger = None
    try:
        if resume:
            resuming.reopen(resume)
        # created here, race-safely: Lightning's get-or-create fails when another process wins
        tracking.experiment_id(cfg["tracking"]["experiment"])
        logger = resuming.RunLogger(experiment_name=cfg["tracking"]["experiment"], run_id=resume,
                                    run_name=cfg["tracking"]["run_name"] or cfg["name"],
                                    tracking_uri=tracking.tracking_uri(), log_model=False,
                                    artifact_location=tracking.artifact_location(),
                                    tags={**(tags or {}), **key, **resuming.owner_tags(), "precision": precision,
                                          "channels_last": str(channels_last).lower(),
                                          **({"mlflow.parentRunId": parent_run_id} if parent_run_id else {})})
        strategy = resolve_strategy(t["strategy"], t["devices"], t["accelerator"])
        trainer = pl.Trainer(max_epochs=t["max_epochs"], accelerator=t["accelerator"], devices=t["devices"],
                             strategy=trainer_strategy(strategy), sync_batchnorm=_sync_batchnorm(t, strategy),
                             precision=precision, logger=logger, callbacks=callbacks,
                             deterministic=True, enable_progress_bar=progress, log_every_n_steps=1,
                             fast_dev_run=t["fast_dev_run"], limit_train_batches=t["limit_train_batches"],
                             num_sanity_val_steps=0, enable_model_summary=progress,
                             limit_val_batches=None if has_val else 0, plugins=[resuming.SafeCheckpointIO()])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            if trainer.world_size > 1:
                _ = logger.run_id  # the run exists before the ranks start, so rank 0 logs into it
            try:
                trainer.fit(module, dm, ckpt_path=resume_ckpt, weights_only=True)
            except BaseException as exc:
                exc.run_id = logger.run_id
                raise
            if trainer.world_size > 1:
                if not trainer.is_global_zero:  # ``ddp``: a re-run of the command, for rank > 0
                    shutil.rmtree(workdir, ignore_errors=True)  # rank 0's folder holds the checkpoint
                    return {"run_id": None, "rank": trainer.global_rank}
                trainer = _single_device_tester(trainer, t, precision, logger, progress)
            best = ckpt_cb.best_model_path if (has_val and ckpt_cb.best_model_path) else None
            test_metrics = trainer.test(module, dm, ckpt_path=best, verbose=False, weights_only=True)[0]
        final_ckpt = workdir / "model.ckpt"
        trainer.save_checkpoint(final_ckpt)
        run_id = logger.run_id
        result = _log_run(cfg, logger, module, dm, final_ckpt, test_metrics, reinitialised, transfer)
        resuming.finish(run_id, logger.experiment)
        result.update(run_id=run_id, checkpoint=str(final_ckpt))
        return result
    except BaseException as exc:
        # whatever fails between reopening or creating the run and finishing it (set-up, fit,
        # test, the final checkpoint, logging) ends the run FAILED, never left RUNNING
        run_id = getattr(logger, "_run_id", None) or resume
        _end_failed(run_id)
        if getattr(exc, "run_id", None) is None and run_id:
            exc.run_id = run_id  # callers (sweeps) end it as they see fit
        raise


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


def _single_device_tester(trainer: pl.Trainer, train: dict, precision: str, logger,
                          progress: bool) -> pl.Trainer:
    """A one-device Trainer for the test after a multi-process fit.

    Testing under DDP would shard the test samples over the ranks, pad the shards with
    repeated items (DistributedSampler) and log from every rank; here the test runs once, in
    this process (rank 0), on every test item. Under ``ddp`` (the command re-run per rank) the
    other ranks have returned, so the process group is taken down first: torchmetrics would
    otherwise wait for them to sync.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    root = trainer.strategy.root_device
    devices = [root.index] if root.type == "cuda" else 1
    return pl.Trainer(accelerator=train["accelerator"], devices=devices, precision=precision,
                      logger=logger, deterministic=True, enable_progress_bar=progress,
                      enable_model_summary=False, enable_checkpointing=False,
                      plugins=[trainer.strategy.checkpoint_io])


def _log_run(cfg, logger, module, dm, ckpt, test_metrics, reinitialised, transfer) -> dict:
    import mlflow

    client, run_id = logger.experiment, logger.run_id
    x, y, groups = dm._part(dm.split.test)
    module.eval()
    with torch.no_grad():
        pred = torch.cat([module(torch.from_numpy(x[i:i + 256])) for i in range(0, len(x), 256)]).numpy()
    sample_metrics = per_sample_metrics(y, pred, groups, dm.target_names)
    for key, value in sample_metrics.items():
        client.log_metric(run_id, key, value)
    tags = {"dataset_manifest_sha256": dm.ds.manifest["sha256"]["spectra.npy"],
            "dataset_path": str(dm.ds.path), "git_commit": tracking.git_commit(),
            "model": cfg["model"]["name"], "transfer_from": str(transfer["from"]) if transfer else "",
            "reinitialised_head": ",".join(reinitialised)}
    for k, v in tags.items():
        client.set_tag(run_id, k, v)
    for k, v in flatten(cfg).items():
        client.log_param(run_id, f"cfg.{k}", str(v)[:500])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "config.yaml").write_text(dump_config(cfg))
        (tmp / "split.json").write_text(json.dumps({k: [dm.ds.sample_ids[i] for i in v]
                                                    for k, v in dm.split.as_dict().items()}, indent=1))
        plot_pred_vs_true(y, pred, groups, dm.target_names, tmp / "pred_vs_true.png",
                          title=f"{cfg['name']}: test set")
        for name in ("config.yaml", "split.json", "pred_vs_true.png"):
            client.log_artifact(run_id, str(tmp / name))
    client.log_artifact(run_id, str(ckpt), artifact_path="checkpoints")
    if cfg["tracking"]["log_model"]:
        from saca_lab.training.predictor import log_pyfunc

        mlflow.set_tracking_uri(tracking.tracking_uri())
        with mlflow.start_run(run_id=run_id):
            log_pyfunc(ckpt)
    return {"test": {k: float(v) for k, v in test_metrics.items()}, "test_sample": sample_metrics,
            "targets": dm.target_names}
