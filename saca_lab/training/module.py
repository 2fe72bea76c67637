"""One LightningModule for regression with any registered model.

MSE on standardised targets, Adam with step decay (TrCSL Table 1: lr 0.01, x0.1 every 100
epochs), per-element R2 / RMSE / MAE from torchmetrics in target units, optional channels_last.
The checkpoint carries what inference needs: model name and config, targets, their scaling,
the feature spec and the wavelength grid (a buffer, so it travels in the state dict).
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError, R2Score

from saca_lab.models import create_model


def _metrics(n: int) -> MetricCollection:
    return MetricCollection({
        "r2": R2Score(multioutput="raw_values"),
        "rmse": MeanSquaredError(squared=False, num_outputs=n),
        "mae": MeanAbsoluteError(num_outputs=n),
    })


class SpectraRegressor(pl.LightningModule):
    """Regression of element concentrations from spectra features.

    Parameters
    ----------
    model_name, model_config : registry name and constructor arguments (``create_model``).
    target_names : element/oxide names, in output order.
    target_mean, target_std : training-set statistics; outputs are trained standardised.
    feature_spec : :class:`~saca_lab.data.features.FeatureSpec` as a dict (for inference).
    wavelengths : the raw-spectrum grid the features were built from (for inference).
    lr, lr_step, lr_gamma, weight_decay : Adam and StepLR settings.
    channels_last : use channels_last memory format for 2D inputs (faster on CPU with bf16).
    freeze_features : keep ``model.features`` frozen and in eval mode (transfer learning).
    input_mean, input_std : per-feature statistics of the training inputs; when given, inputs are
        standardised (chemometric autoscaling) before the model. Min-max spectra are mostly ~0
        with a few saturating lines, and gradient descent on them barely moves (see README).
    """

    def __init__(self, model_name: str, model_config: dict, target_names: Sequence[str],
                 target_mean: Sequence[float], target_std: Sequence[float], feature_spec: dict,
                 wavelengths: Sequence[float] | None = None, lr: float = 0.01, lr_step: int = 100,
                 lr_gamma: float = 0.1, weight_decay: float = 0.0, channels_last: bool = False,
                 freeze_features: bool = False, input_mean=None, input_std=None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["wavelengths", "input_mean", "input_std"])
        self.model: nn.Module = create_model(model_name, **model_config)
        self.target_names = list(target_names)
        n = len(self.target_names)
        composition = getattr(self.model, "head_type", None) == "composition"
        # A softmax composition head already outputs mass %; standardising would break the sum.
        mean = np.zeros(n) if composition else np.asarray(target_mean, dtype=np.float32)
        std = np.ones(n) if composition else np.asarray(target_std, dtype=np.float32)
        self.register_buffer("target_mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("target_std", torch.as_tensor(std, dtype=torch.float32))
        grid = np.asarray(wavelengths if wavelengths is not None else [], dtype=np.float64)
        self.register_buffer("wavelengths", torch.as_tensor(grid))
        empty = torch.empty(0)
        self.register_buffer("input_mean", empty if input_mean is None else torch.as_tensor(input_mean, dtype=torch.float32))
        self.register_buffer("input_std", empty if input_std is None else torch.as_tensor(input_std, dtype=torch.float32))
        self.val_metrics = _metrics(n).clone(prefix="val_")
        self.test_metrics = _metrics(n).clone(prefix="test_")
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    @classmethod
    def from_checkpoint(cls, path) -> SpectraRegressor:
        """Rebuild from a checkpoint written by this class (the grid buffer sizes itself)."""
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        state = ckpt["state_dict"]
        module = cls(**ckpt["hyper_parameters"], wavelengths=state["wavelengths"].tolist(),
                     input_mean=state.get("input_mean"), input_std=state.get("input_std"))
        module.load_state_dict(state)
        return module

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_mean.numel():
            x = (x - self.input_mean) / self.input_std
        if self.hparams.channels_last and x.ndim == 3 and self.model.input_kind == "image_2d":
            x = x.unsqueeze(1).contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predictions in target units (mass %)."""
        return self.model(self._prepare(x)).float() * self.target_std + self.target_mean

    def training_step(self, batch, batch_idx):
        x, y = batch[0], batch[1]
        z = self.model(self._prepare(x)).float()
        loss = nn.functional.mse_loss(z, (y - self.target_mean) / self.target_std)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(x))
        return loss

    def _eval_step(self, batch, metrics: MetricCollection, stage: str) -> None:
        x, y = batch[0], batch[1]
        pred = self(x)
        loss = nn.functional.mse_loss((pred - self.target_mean) / self.target_std,
                                      (y - self.target_mean) / self.target_std)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(x))
        metrics.update(pred, y)

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, self.val_metrics, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, self.test_metrics, "test")

    def _log_metrics(self, metrics: MetricCollection) -> None:
        values = {}
        for key, metric in metrics.items():
            try:
                values[key] = metric.compute()
            except ValueError:  # R2 of fewer than two items is undefined, not an error
                values[key] = torch.full((len(self.target_names),), float("nan"))
        for key, per_target in values.items():
            per_target = per_target.reshape(-1)
            for name, v in zip(self.target_names, per_target, strict=True):
                self.log(f"{key}_{name}", v)
            self.log(f"{key}_mean", per_target.mean(), prog_bar=key.endswith("r2"))
        metrics.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metrics(self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_metrics(self.test_metrics)

    def on_train_epoch_start(self) -> None:
        if self.hparams.freeze_features:
            # Frozen layers run as at inference: BatchNorm on running stats, dropout off.
            self.model.features.eval()

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=self.hparams.lr_step, gamma=self.hparams.lr_gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
