"""The last step of a run: test the trained model once and log what the run leaves behind.

One pass over the test set gives the predictions, the per-item metrics (the module's
``test_step``, logged by Lightning) and, from the same predictions, the per-sample metrics and
the predicted-vs-true figure. The pass runs on one device in full precision (fp32), whatever
the fit's precision, so the metrics do not depend on the CPU's bf16 support; ``saca-lab
predict`` and the pyfunc model use ``auto`` (bf16 where the CPU has it natively, within ~2e-3
of fp32; BENCHMARKS.md "inference"), except with an interval, whose calibration scores come
from this fp32 pass. A multi-process fit is tested once, on every test item.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import lightning.pytorch as pl
import numpy as np

from saca_lab import tracking
from saca_lab.config import dump_config, flatten
from saca_lab.training.reporting import per_sample_metrics, plot_pred_vs_true
from saca_lab.training.result import RunResult, TestPredictions
from saca_lab.training.spawn import leave_process_group

if TYPE_CHECKING:
    from saca_lab.training.run import RunSetup


class PredictionCollector(pl.Callback):
    """Keeps what ``SpectraRegressor.test_step`` (and ``predict_step``, the calibration
    samples' pass) predicted for each batch, with the batch's truth and sample indices."""

    def __init__(self) -> None:
        self.parts: dict[str, list[tuple[np.ndarray, ...]]] = {"test": [], "predict": []}

    def on_test_start(self, trainer, pl_module) -> None:
        self.parts["test"] = []

    def on_predict_start(self, trainer, pl_module) -> None:
        self.parts["predict"] = []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._keep("test", outputs, batch)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._keep("predict", outputs, batch)

    def _keep(self, stage: str, outputs: dict, batch) -> None:
        std = outputs["std"]
        self.parts[stage].append((batch[2].cpu().numpy(), batch[1].cpu().numpy(),
                                  outputs["pred"].detach().float().cpu().numpy(),
                                  None if std is None else std.detach().float().cpu().numpy()))

    def predictions(self, stage: str = "test") -> TestPredictions:
        """The items of the last ``test`` (or ``predict``) pass, in the loader's order."""
        groups, y, pred, std = zip(*self.parts[stage], strict=True)
        return TestPredictions(np.concatenate(groups), np.concatenate(y), np.concatenate(pred),
                               None if std[0] is None else np.concatenate(std))


def eval_precision(precision: str) -> str:
    """The precision of the test pass: fp32, or fp64 for a run trained in fp64."""
    return "64-true" if str(precision).startswith("64") else "32-true"


def make_tester(trainer: pl.Trainer, train: dict, precision: str, logger, progress: bool,
                callbacks: list) -> pl.Trainer:
    """A one-device Trainer for the test pass after ``trainer`` has fitted.

    ``callbacks`` see the test: the prediction collector, the fit's ModelCheckpoint (whose best
    checkpoint is tested) and the caller's own callbacks.

    Testing under DDP would shard the test samples over the ranks, pad the shards with
    repeated items (DistributedSampler) and log from every rank; here the test runs once, in
    this process (rank 0), on every test item. Under ``ddp`` (the command re-run per rank) the
    other ranks leave the process group after fit, and so does this one first: torchmetrics would
    otherwise wait for them to sync.
    """
    leave_process_group()  # with the other ranks, which return after fit (training/run.py)
    root = trainer.strategy.root_device
    devices = [root.index] if root.type == "cuda" else 1
    tester = pl.Trainer(accelerator=train["accelerator"], devices=devices,
                        precision=eval_precision(precision), logger=logger, callbacks=callbacks,
                        deterministic=True, enable_progress_bar=progress, enable_model_summary=False,
                        plugins=[trainer.strategy.checkpoint_io])
    # the fit's epoch and step counters: the test metrics are logged at the fit's last step and
    # epoch, as a test on the fit's own Trainer logs them (under ddp_spawn the ranks' counters
    # stay in the ranks, so this process's are 0)
    tester.fit_loop.load_state_dict(trainer.fit_loop.state_dict())
    return tester


def evaluate(setup: RunSetup, trainer: pl.Trainer, *, progress: bool = True) -> RunResult:
    """Test the fitted model once (the best checkpoint on ``val_loss`` when the split has
    validation samples, else the last epoch), save the final checkpoint and log the run's
    metrics and artefacts; the MLflow run stays RUNNING (the caller ends it)."""
    collector = PredictionCollector()
    ckpt_cb = setup.checkpoints
    best = ckpt_cb.best_model_path if (setup.has_val and ckpt_cb.best_model_path) else None
    tester = make_tester(trainer, setup.cfg["train"], setup.precision, setup.logger, progress,
                         [collector, ckpt_cb, *setup.extra_callbacks])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        # the fit's resume and early-stopping callbacks left state in the best checkpoint; the
        # test pass needs only its weights
        warnings.filterwarnings("ignore", ".*callbacks used to create the checkpoint.*")
        test_metrics = tester.test(setup.module, setup.dm, ckpt_path=best, verbose=False,
                                   weights_only=True)[0]
        # the calibration samples (data.split.calibration) through the same tester and the
        # tested weights: their scores are the test residuals' exchangeable counterparts
        calibration_items = None
        if len(getattr(setup.dm.split, "calibration", ())):
            tester.predict(setup.module, dataloaders=setup.dm.calibration_dataloader(),
                           return_predictions=False)
            calibration_items = collector.predictions("predict")
    final_ckpt = setup.workdir / "model.ckpt"
    # the fit's Trainer keeps the epoch and optimizer state (for a one-process fit); a
    # multi-process fit's strategy is torn down, so its weights are saved through the tester
    (tester if trainer.world_size > 1 else trainer).save_checkpoint(final_ckpt, weights_only=False)
    predictions = collector.predictions()
    sample_metrics, calibration = log_run(setup, predictions, final_ckpt, calibration_items)
    return RunResult(run_id=setup.logger.run_id, targets=list(setup.dm.target_names),
                     test={k: float(v) for k, v in test_metrics.items()},
                     test_sample=sample_metrics, checkpoint=str(final_ckpt),
                     predictions=predictions, feature_spec=dict(setup.module.hparams["feature_spec"]),
                     calibration=calibration)


def log_run(setup: RunSetup, predictions: TestPredictions, ckpt: Path,
            calibration_items: TestPredictions | None = None) -> tuple[dict[str, float], dict | None]:
    """Log per-sample metrics, provenance tags, the config as params, the config, split and
    predicted-vs-true figure as artefacts, the checkpoint, the calibration scores (when the
    split keeps calibration samples) and (``tracking.log_model``) the pyfunc model.

    Returns
    -------
    The per-sample test metrics, and the calibration record (None without calibration samples).
    """
    import mlflow

    cfg, dm, transfer = setup.cfg, setup.dm, setup.transfer
    client, run_id = setup.logger.experiment, setup.logger.run_id
    y, pred, groups = predictions.y_true, predictions.y_pred, predictions.groups
    sample_metrics = per_sample_metrics(y, pred, groups, dm.target_names)
    for key, value in sample_metrics.items():
        client.log_metric(run_id, key, value)
    tags = {"dataset_manifest_sha256": dm.ds.manifest["sha256"]["spectra.npy"],
            "dataset_path": str(dm.ds.path), "git_commit": tracking.git_commit(),
            "model": cfg["model"]["name"], "transfer_from": str(transfer["from"]) if transfer else "",
            "reinitialised_head": ",".join(setup.reinitialised)}
    for k, v in tags.items():
        client.set_tag(run_id, k, v)
    tracking.log_params(run_id, {f"cfg.{k}": v for k, v in flatten(cfg).items()}, client)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "config.yaml").write_text(dump_config(cfg))
        (tmp / "split.json").write_text(json.dumps({k: [dm.ds.sample_ids[i] for i in v]
                                                    for k, v in dm.split.as_dict().items()}, indent=1))
        plot_pred_vs_true(y, pred, groups, dm.target_names, tmp / "pred_vs_true.png",
                          title=f"{cfg['name']}: test set")
        for name in ("config.yaml", "split.json", "pred_vs_true.png"):
            client.log_artifact(run_id, str(tmp / name))
    client.log_artifact(run_id, str(ckpt), artifact_path=str(Path(tracking.CHECKPOINT_ARTIFACT).parent))
    from saca_lab.training.conformal import calibration_record, log_calibration

    calibration = (None if calibration_items is None else  # data.split.calibration: interval scores
                   calibration_record(calibration_items, dm))
    if calibration is not None:
        log_calibration(client, run_id, calibration)
    if cfg["tracking"]["log_model"]:
        from saca_lab.training.predictor import log_pyfunc

        mlflow.set_tracking_uri(tracking.tracking_uri())
        with mlflow.start_run(run_id=run_id):
            log_pyfunc(ckpt, calibration=calibration)
    return sample_metrics, calibration
