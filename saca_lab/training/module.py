"""One LightningModule for regression with any registered model.

MSE on standardised targets, Adam with the ``train.lr_schedule`` decay (the schema's default is
TrCSL Table 1's: lr 0.01, x0.1 every 100 epochs; the shipped TrCSL experiments use lr 0.001 with
cosine decay), per-element R2 / RMSE / MAE from torchmetrics in target units, optional
channels_last.
The checkpoint carries what inference needs: model name and config, targets, their scaling,
the feature spec and the wavelength grid (a buffer, so it travels in the state dict).

Models with ``predicts_std = True`` (GLL, TrCSL ref. 35; see :mod:`saca_lab.models.gll`) output
a mean and a log-variance per target. They train on the Gaussian negative log-likelihood; the
evaluation loss stays the MSE of the means, so ``val_loss`` compares across models, and
``val_nll`` / ``test_nll``, the mean predicted standard deviation and the 1- and 2-sigma coverage
of the test items are logged besides.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError, R2Score

from saca_lab.config import DEFAULTS, LR_SCHEDULES
from saca_lab.errors import InputError
from saca_lab.models import create_model
from saca_lab.models.gll import split_mean_logvar

#: The schedule when none is given: the config's default, kept in one place.
DEFAULT_LR_SCHEDULE: str = DEFAULTS["train"]["lr_schedule"]


def lr_step_epochs(lr_step: float, max_epochs: int | None) -> int:
    """Epochs between step decays: ``lr_step`` < 1 is a fraction of ``max_epochs``.

    A fraction keeps the schedule's shape when a run is shortened (quick mode, sweeps): TrCSL's
    x0.1 every 100 of 800 epochs is ``lr_step=0.125``, and a 150-epoch run then decays at
    epochs 19, 38, ... instead of never. A value >= 1 is a fixed number of epochs.

    Raises
    ------
    InputError
        If ``lr_step`` is not positive, or a fraction is given without ``max_epochs``.
    """
    if not isinstance(lr_step, (int, float)) or isinstance(lr_step, bool) or not lr_step > 0:
        raise InputError(f"train.lr_step must be a positive number, got {lr_step!r}")
    if lr_step >= 1:
        return int(round(lr_step))
    if not max_epochs or max_epochs < 1:
        raise InputError(f"train.lr_step={lr_step} is a fraction of train.max_epochs, which is not set")
    return max(1, int(round(lr_step * max_epochs)))


def describe_lr_schedule(train: dict) -> str:
    """The ``train`` section's LR schedule in words, e.g. ``"x0.1 every 100 epochs"``."""
    schedule = train.get("lr_schedule", DEFAULT_LR_SCHEDULE)
    if schedule != "step":
        return {"cosine": f"cosine to 0 over {train['max_epochs']} epochs"}.get(schedule, schedule)
    step = lr_step_epochs(train["lr_step"], train["max_epochs"])
    return f"x{train['lr_gamma']} every {step} epochs"


def _metrics(n: int) -> MetricCollection:
    return MetricCollection({
        "r2": R2Score(multioutput="raw_values"),
        "rmse": MeanSquaredError(squared=False, num_outputs=n),
        "mae": MeanAbsoluteError(num_outputs=n),
    })


class Calibration:
    """Mean predicted std and k-sigma coverage per target, accumulated over test batches.

    Coverage ``k`` is the fraction of test items (spectra) with ``|y - mean| <= k * std``; a
    calibrated Gaussian gives 0.683 for k = 1 and 0.954 for k = 2. Items of one sample share
    its true value, so with few test samples the coverage moves in coarse steps.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.sums = torch.zeros(3, self.n, dtype=torch.float64)

    def update(self, mean: torch.Tensor, std: torch.Tensor, y: torch.Tensor) -> None:
        err = (y - mean).abs()
        rows = torch.stack([std, (err <= std).float(), (err <= 2 * std).float()])
        self.sums += rows.detach().double().sum(dim=1).cpu()
        self.count += len(y)

    def compute(self) -> dict[str, torch.Tensor]:
        """``pred_std``, ``coverage1`` and ``coverage2`` per target (NaN before any update)."""
        values = (self.sums / self.count if self.count else torch.full_like(self.sums, float("nan"))).float()
        return dict(zip(("pred_std", "coverage1", "coverage2"), values, strict=True))


class SpectraRegressor(pl.LightningModule):
    """Regression of element concentrations from spectra features.

    Parameters
    ----------
    model_name, model_config : registry name and constructor arguments (``create_model``).
    target_names : element/oxide names, in output order.
    target_mean, target_std : training-set statistics; outputs are trained standardised.
    feature_spec : :class:`~saca_lab.datasets.features.FeatureSpec` as a dict (for inference).
    wavelengths : the raw-spectrum grid the features were built from (for inference).
    lr, weight_decay : optimiser settings.
    optimizer : ``"adam"`` (``weight_decay`` is an L2 term added to the gradient, so Adam divides
        it by the gradient's running scale) or ``"adamw"`` (decoupled: every weight shrinks by
        ``lr * weight_decay`` per step).
    lr_schedule : ``"step"`` (x ``lr_gamma`` every ``lr_step``), ``"cosine"`` (cosine annealing
        to 0 over ``max_epochs``) or ``"constant"``; see :func:`lr_step_epochs`.
    lr_step, lr_gamma : step decay: ``lr_step`` < 1 is a fraction of the trainer's
        ``max_epochs`` (TrCSL's x0.1 every 100 of 800 epochs is 0.125), >= 1 a number of epochs.
    channels_last : use channels_last memory format for 2D inputs (faster on CPU with bf16).
    freeze_features : keep ``model.features`` frozen and in eval mode (transfer learning).
    input_mean, input_std : per-feature statistics of the training inputs; when given, inputs are
        standardised (chemometric autoscaling) before the model. Min-max spectra are mostly ~0
        with a few saturating lines, and gradient descent on them barely moves (see README).
    """

    def __init__(self, model_name: str, model_config: dict, target_names: Sequence[str],
                 target_mean: Sequence[float], target_std: Sequence[float], feature_spec: dict,
                 wavelengths: Sequence[float] | None = None, lr: float = DEFAULTS["train"]["lr"],
                 lr_step: float = DEFAULTS["train"]["lr_step"],
                 lr_gamma: float = DEFAULTS["train"]["lr_gamma"], lr_schedule: str = DEFAULT_LR_SCHEDULE,
                 weight_decay: float = DEFAULTS["train"]["weight_decay"],
                 optimizer: str = DEFAULTS["train"]["optimizer"], channels_last: bool = False,
                 freeze_features: bool = False, input_mean=None, input_std=None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["wavelengths", "input_mean", "input_std"])
        self.model: nn.Module = create_model(model_name, **model_config)
        # Every constructor argument, not only the overrides: a checkpoint must rebuild this
        # network even after a default changes.
        self.hparams["model_config"] = dict(getattr(self.model, "config", model_config))
        self.target_names = list(target_names)
        n = len(self.target_names)
        composition = getattr(self.model, "head_type", None) == "composition"
        # A softmax composition head already outputs mass %; standardising would break the sum.
        mean = np.zeros(n) if composition else np.asarray(target_mean, dtype=np.float32)
        std = np.ones(n) if composition else np.asarray(target_std, dtype=np.float32)
        self.register_buffer("target_mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("target_std", torch.as_tensor(std, dtype=torch.float32))
        # Every element's error counts in units of its training std: on raw mass % Fe (std ~5 %)
        # would outweigh a rare earth (~0.1 %) ~1500 times. Standardised outputs have that
        # already; a composition head outputs mass %, so its errors are divided by the std here
        # (``train.standardize_targets=false`` passes std 1: plain mass-% MSE).
        self._loss_scale = torch.as_tensor(np.asarray(target_std, dtype=np.float32) if composition
                                           else np.ones(n, dtype=np.float32))
        if composition:
            self._start_at_mean_composition(np.asarray(target_mean, dtype=np.float64))
        grid = np.asarray(wavelengths if wavelengths is not None else [], dtype=np.float64)
        self.register_buffer("wavelengths", torch.as_tensor(grid))
        empty = torch.empty(0)
        self.register_buffer("input_mean", empty if input_mean is None else torch.as_tensor(input_mean, dtype=torch.float32))
        self.register_buffer("input_std", empty if input_std is None else torch.as_tensor(input_std, dtype=torch.float32))
        self.val_metrics = _metrics(n).clone(prefix="val_")
        self.test_metrics = _metrics(n).clone(prefix="test_")
        self._calibration = Calibration(n)
        # True while training on cached frozen features (training/transfer.py)
        self.features_cached = False
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def _start_at_mean_composition(self, mean: np.ndarray) -> None:
        """Set the composition head's bias to the log of the training mean composition.

        From a uniform softmax (~9 % each) a rare earth (mean ~0.1 %) starts ~90 training stds
        off, and the std-weighted loss spends its first hundreds of steps pulling it down. From
        the mean composition (the constant predictor, with the rest output taking what the
        targets leave) training starts at the constant predictor's loss and learns deviations.
        A checkpoint's weights replace this on loading.
        """
        linear = self.model.head[0]
        # no statistics (train.standardize_targets=false passes zeros): keep the uniform start
        if not isinstance(linear, nn.Linear) or not np.isfinite(mean).all() or not mean.sum() > 0:
            return
        rest = linear.out_features - mean.size
        if rest not in (0, 1):
            return
        parts = np.concatenate([mean, [max(100.0 - mean.sum(), 0.0)]] if rest else [mean])
        with torch.no_grad():
            linear.bias.copy_(torch.as_tensor(np.log(np.maximum(parts, 1e-4) / 100.0)))
            linear.weight.mul_(0.1)

    @classmethod
    def from_checkpoint(cls, path) -> SpectraRegressor:
        """Rebuild from a checkpoint written by this class (the grid buffer sizes itself); read
        by :func:`~saca_lab.training.checkpoint.load_checkpoint`, which runs no code from it."""
        from saca_lab.training.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path)
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

    @property
    def predicts_std(self) -> bool:
        """Whether the model predicts a standard deviation next to every mean."""
        return bool(getattr(self.model, "predicts_std", False))

    def _standardised(self, x: torch.Tensor, augment=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Means and (for ``predicts_std`` models) log-variances, in standardised units.

        ``augment`` (:class:`~saca_lab.datasets.augment.Augment`) shifts the raw spectra and adds
        its noise after the input standardisation, in units of each pixel's spread.
        """
        if getattr(self, "features_cached", False) and self.training:  # x: the batch's frozen features, cached
            z = self.model.head(x).float()
        elif augment is None:
            z = self.model(self._prepare(x)).float()
        else:
            z = self.model(augment.noise(self._prepare(augment.shift(x)))).float()
        return split_mean_logvar(z) if self.predicts_std else (z, None)

    def _augment(self):
        """The data module's training augmentation (``data.augment``), if any."""
        trainer = self._trainer
        return getattr(getattr(trainer, "datamodule", None), "augment", None) if trainer else None

    def _mse(self, mean: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """MSE with every target's error in units of its training std (see ``__init__``)."""
        scale = self._loss_scale.to(mean.device)
        return nn.functional.mse_loss(mean / scale, y / scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predictions in target units (mass %); the means for a model that predicts std."""
        return self._standardised(x)[0] * self.target_std + self.target_mean

    def predict_with_std(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and standard deviations in target units, each ``(B, n_targets)``.

        Raises
        ------
        ValueError
            If the model does not predict a standard deviation.
        """
        if not self.predicts_std:
            raise ValueError(f"model {self.hparams.model_name!r} does not predict a standard deviation")
        mean, logvar = self._standardised(x)
        return mean * self.target_std + self.target_mean, torch.exp(0.5 * logvar) * self.target_std

    def training_step(self, batch, batch_idx):
        x, y = batch[0], batch[1]
        mean, logvar = self._standardised(x, self._augment())
        y = (y - self.target_mean) / self.target_std
        if logvar is None:
            loss = self._mse(mean, y)
        else:
            loss = nn.functional.gaussian_nll_loss(mean, y, logvar.exp())
        # sync_dist: under DDP the epoch loss is averaged over the ranks (no-op on one device)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(x),
                 sync_dist=True)
        return loss

    def _eval_step(self, batch, metrics: MetricCollection, stage: str) -> dict[str, torch.Tensor | None]:
        """Log the batch's loss and update ``metrics``; return the predictions in target units
        (``pred``, and ``std`` for a model that predicts it, else None)."""
        x, y = batch[0], batch[1]
        mean, logvar = self._standardised(x)
        pred = mean * self.target_std + self.target_mean
        y_std = (y - self.target_mean) / self.target_std
        loss = self._mse(mean, y_std)
        # over all ranks under DDP, so best-checkpoint and early-stopping choices see every item
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(x),
                 sync_dist=True)
        metrics.update(pred, y)
        std = None
        if logvar is not None:
            nll = nn.functional.gaussian_nll_loss(mean, y_std, logvar.exp())
            self.log(f"{stage}_nll", nll, on_step=False, on_epoch=True, batch_size=len(x), sync_dist=True)
            std = torch.exp(0.5 * logvar) * self.target_std
            if stage == "test":
                self._calibration.update(pred, std, y)
        return {"pred": pred, "std": std}

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, self.val_metrics, "val")

    def test_step(self, batch, batch_idx):
        # the predictions reach on_test_batch_end: the run's per-sample metrics and figure
        # come from this one pass (saca_lab/training/evaluate.py)
        return self._eval_step(batch, self.test_metrics, "test")

    def predict_step(self, batch, batch_idx, dataloader_idx=0) -> dict[str, torch.Tensor | None]:
        """``test_step``'s predictions (``pred``, ``std``) without its loss and metrics: the
        calibration samples' pass (saca_lab/training/evaluate.py), on the tester's device and
        precision as the test pass."""
        mean, logvar = self._standardised(batch[0])
        return {"pred": mean * self.target_std + self.target_mean,
                "std": None if logvar is None else torch.exp(0.5 * logvar) * self.target_std}

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

    def on_test_epoch_start(self) -> None:
        self._calibration.reset()

    def on_test_epoch_end(self) -> None:
        self._log_metrics(self.test_metrics)
        if self.predicts_std:
            for key, per_target in self._calibration.compute().items():
                for name, v in zip(self.target_names, per_target, strict=True):
                    self.log(f"test_{key}_{name}", v)
                self.log(f"test_{key}_mean", per_target.mean())

    def on_train_epoch_start(self) -> None:
        if self.hparams.freeze_features:
            # Frozen layers run as at inference: BatchNorm on running stats, their dropout off.
            # Only ``features`` is switched: a dropout layer in the head (TrCSL models'
            # dropout_position="head") keeps regularising the head being fine-tuned.
            self.model.features.eval()

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        # a checkpoint from before train.optimizer has no such hparam: it trained with Adam
        kind = self.hparams.get("optimizer", "adam")
        if kind not in ("adam", "adamw"):
            raise InputError(f"train.optimizer {kind!r} is not one of adam, adamw")
        opt = (torch.optim.AdamW if kind == "adamw" else torch.optim.Adam)(
            params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        schedule = self.hparams.lr_schedule  # __init__ records its default
        max_epochs = self.trainer.max_epochs if self._trainer is not None else None
        if schedule == "cosine":
            if not max_epochs or max_epochs < 1:
                raise InputError("train.lr_schedule=cosine needs a finite train.max_epochs")
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=int(max_epochs))
        elif schedule == "constant":
            sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
        elif schedule == "step":
            step = lr_step_epochs(self.hparams.lr_step, max_epochs)
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=step, gamma=self.hparams.lr_gamma)
        else:
            raise InputError(f"train.lr_schedule {schedule!r} is not one of {', '.join(LR_SCHEDULES)}")
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
