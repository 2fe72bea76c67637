"""Transfer learning (TrCSL Sec. 2.4): reuse a pre-trained feature extractor, fine-tune the head.

The feature extractor (conv, SE, LSTM; and dropout when the model places it there) is frozen and
kept in eval mode; only the head (dropout, when placed there, and the fully connected layers)
trains. Optionally the features are unfrozen at a later epoch with their own
learning rate (Lightning's ``BaseFinetuning`` pattern).

Line windows (1D models). The fine-tune reads the pre-training's windows: the network's input
is those points, so they cannot change. With ``data.lines: nist`` they were chosen as
unblended and detectable in the *source* matrix (slag), which says nothing of the target one
(carbon steel, ~97 % Fe): C 940.57 nm is usable in slag and undetectable next to Fe, Cu 327.40
nm sits next to Fe 327.35 nm. So with ``data.lines: nist`` the fine-tune applies the same
blend / detection rule (:func:`~saca_lab.preprocessing.line_selection.usable_windows`) to the
inherited windows against the major elements of the target's *training* samples, keeps every
window as input, and drops from the fine-tune targets each element none of whose windows
survives, with a message (:func:`target_windows`). This is simpler than choosing the
pre-training lines against both matrices (which would need the target data at pre-training).
On the carbon-steel preset it leaves out C and keeps Cu, Mn, Cr, as ``gll`` trained on carbon
steel alone does (checked in tests/test_transfer.py on a tiny preset draw; an element could in
principle keep a line of its own in steel while losing every inherited window).
``data.lines: paper`` is the literal reproduction and keeps every target.
"""

from __future__ import annotations

import sys

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BaseFinetuning

from saca_lab.errors import InputError


class FreezeFeatures(BaseFinetuning):
    """Freeze ``model.features`` before training; unfreeze at ``unfreeze_at_epoch`` if given."""

    def __init__(self, unfreeze_at_epoch: int | None = None, unfreeze_lr: float | None = None) -> None:
        super().__init__()
        self.unfreeze_at_epoch = unfreeze_at_epoch
        self.unfreeze_lr = unfreeze_lr

    def freeze_before_training(self, pl_module: pl.LightningModule) -> None:
        self.freeze(pl_module.model.features, train_bn=False)

    def finetune_function(self, pl_module: pl.LightningModule, epoch: int, optimizer) -> None:
        if self.unfreeze_at_epoch is not None and epoch == self.unfreeze_at_epoch:
            pl_module.hparams.freeze_features = False
            pl_module.model.features.train()
            for m in pl_module.model.features.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.track_running_stats = True
            self.unfreeze_and_add_param_group(pl_module.model.features, optimizer, lr=self.unfreeze_lr,
                                              train_bn=True)


#: Whether a fine-tune whose features stay frozen trains its head on features computed once
#: (:class:`CacheFrozenFeatures`); tests and benchmarks switch it off to compare.
CACHE_FROZEN_FEATURES = True


def caches_features(model, augment, unfreeze_at_epoch) -> bool:
    """Whether a fine-tune can train the head on cached features: the network is
    ``head(features(x))`` (the TrCSL family), nothing unfreezes the features, and no augmentation
    changes the training inputs between epochs."""
    from saca_lab.models.cnn_se_lstm import CNNSELSTM

    return (CACHE_FROZEN_FEATURES and isinstance(model, CNNSELSTM) and augment is None
            and unfreeze_at_epoch is None)


class CacheFrozenFeatures(pl.Callback):
    """Compute the frozen features of the training items once, and train the head on them.

    With the feature extractor frozen and in eval mode (:class:`FreezeFeatures`) and no
    augmentation, an item's features are the same at every epoch, yet each training step ran
    them again; for the 2D TrCSL network that forward pass is most of a head-only step. Here
    they are computed at the start of ``fit``, under the Trainer's precision context (bf16
    autocast where it trains in bf16), on its device, and the data module's training loader
    hands them out instead of the inputs (same items, same order). Validation and test still
    run the whole network on the inputs, and the checkpoint holds the whole network.
    The features of one item do not depend on the others in its batch, so the head sees the
    values it would have seen, up to the round-off of kernels chosen for another batch size.
    """

    def __init__(self, datamodule, batch_size: int = 256) -> None:
        self.datamodule = datamodule
        self.batch_size = batch_size

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        dm = self.datamodule
        dm.train_inputs = None
        x = dm.tensors("train").tensors[0]
        features = pl_module.model.features
        mode = features.training
        features.eval()
        out = []
        with torch.no_grad(), trainer.precision_plugin.forward_context():
            for i in range(0, len(x), self.batch_size):
                out.append(features(pl_module._prepare(x[i:i + self.batch_size].to(pl_module.device))).cpu())
        features.train(mode)
        dm.train_inputs = torch.cat(out)
        pl_module.features_cached = True

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.datamodule.train_inputs = None
        pl_module.features_cached = False


#: Model settings a fine-tune may change from its source: they hold no weights, so the source's
#: state dict still loads. Dropout is one: TrCSL freezes it with the features (Sec. 2.4,
#: ``dropout_position: features``); in the head (``head``) it regularises the fine-tuned head.
FINETUNE_MODEL_SETTINGS = ("dropout", "dropout_position")


def finetune_model_config(model_name: str, source_config: dict, overrides: dict | None) -> dict:
    """The source model's config with the fine-tune's ``model.overrides`` of weightless settings.

    Parameters
    ----------
    model_name : str
        Registered model name, to resolve ``source_config`` to every constructor argument (an
        older checkpoint holds only its run's overrides), so an override equal to the source's
        value, default or not, is accepted.
    source_config : dict
        ``model_config`` of the pre-trained checkpoint (as read by ``load_checkpoint``, which
        fills the settings older checkpoints lack).
    overrides : dict or None
        The fine-tune experiment's ``model.overrides``.

    Returns
    -------
    dict
        A new config; only keys of :data:`FINETUNE_MODEL_SETTINGS` differ from the source's.

    Raises
    ------
    InputError
        If an override changes any other setting of the pre-trained network.
    """
    from saca_lab.models import create_model

    config = dict(create_model(model_name, **source_config).config)
    for key, value in (overrides or {}).items():
        if key in FINETUNE_MODEL_SETTINGS:
            config[key] = value
        elif key != "n_outputs" and config.get(key) != value:
            raise InputError(f"model.overrides.{key}: a fine-tune keeps the pre-trained network "
                             f"({key}={config.get(key)!r}); only "
                             f"{', '.join(FINETUNE_MODEL_SETTINGS)} may change")
    return config


def window_targets(targets: list[str], source_targets: list[str]) -> list[str]:
    """The fine-tune targets a line-window model can read: elements it was pre-trained on.

    The pre-training's windows (which the fine-tune inherits) were chosen for its own targets,
    and with ``data.lines: nist`` a target without a usable line was left out there; a
    fine-tune target with no window of its own is left out too, with a message. Targets match
    by element: ``Mn`` reads the windows of a pre-training on ``MnO`` (its output layer is then
    re-initialised, see :func:`output_layer_matches`).

    Raises
    ------
    InputError
        If no target is left.
    """
    from saca_lab.preprocessing.line_selection import target_element

    source_elements = {target_element(t) for t in source_targets}
    kept = [t for t in targets if target_element(t) in source_elements]
    dropped = [t for t in targets if target_element(t) not in source_elements]
    if dropped:
        print(f"transfer: {', '.join(dropped)} left out of the targets: the pre-trained line "
              f"windows are for {', '.join(source_targets)} only", file=sys.stderr)
    if not kept:
        raise InputError(f"transfer: none of the targets {targets} has a window among the "
                         f"pre-trained model's lines (targets {source_targets})")
    return kept


def target_windows(targets: list[str], lines, wavelengths, composition: dict) -> list[str]:
    """The fine-tune targets whose inherited windows still read them on the target matrix.

    Parameters
    ----------
    targets : list of str
        Fine-tune targets (already those the pre-training has windows for).
    lines : sequence of float
        The pre-training's window centres (nm), kept as the input whatever is dropped here.
    wavelengths : ndarray
        The target dataset's grid.
    composition : dict
        Mean composition of the target's training samples (never its test samples).

    Raises
    ------
    InputError
        If no target is left.
    """
    from saca_lab.preprocessing.line_selection import target_element, usable_windows

    usable, dropped = usable_windows(lines, targets, wavelengths, composition)
    kept = [t for t in targets if target_element(t) in usable]
    for element, why in dropped.items():
        print(f"transfer (data.lines=nist): {element} left out of the fine-tune targets: none "
              f"of the pre-trained windows reads it in this matrix ({why}); the windows stay "
              "in the input", file=sys.stderr)
    if not kept:
        raise InputError(f"transfer: none of the targets {targets} has a pre-trained window that "
                         f"is usable in this matrix ({dropped}); use data.lines: paper for the "
                         "literal reproduction")
    return kept


def output_layer_matches(targets: list[str], source_targets: list[str]) -> bool:
    """Whether the source's output layer predicts exactly these targets, in this order.

    Otherwise (another order, ``Mn`` after ``MnO``, fewer targets) its weights would give each
    output another target's meaning, so the layer is re-initialised (:func:`load_pretrained`).
    """
    return list(targets) == list(source_targets)


def load_pretrained(module: pl.LightningModule, checkpoint_path: str,
                    reinit_output: bool = False) -> list[str]:
    """Copy the source model's weights into ``module.model`` where names and shapes match.

    Returns the names of head parameters that were re-initialised (e.g. a different number of
    targets; every parameter of the last linear layer of the head with ``reinit_output``, when
    the targets differ from the source's). A feature extractor that does not match is an
    error: transfer would be meaningless.
    """
    from saca_lab.training.checkpoint import load_checkpoint  # the one safe loader

    state = load_checkpoint(checkpoint_path)["state_dict"]
    source = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    target = module.model.state_dict()
    output = ""
    if reinit_output:
        linears = [n for n, m in module.model.head.named_modules() if isinstance(m, torch.nn.Linear)]
        output = f"head.{linears[-1]}." if linears else ""
    skipped = []
    for name, tensor in target.items():
        if output and name.startswith(output):
            skipped.append(name)
        elif name in source and source[name].shape == tensor.shape:
            target[name] = source[name]
        elif name.startswith("features."):
            raise InputError(f"checkpoint {checkpoint_path} has a different feature extractor "
                             f"({name}: {tuple(source.get(name, torch.empty(0)).shape)} vs {tuple(tensor.shape)})")
        else:
            skipped.append(name)
    module.model.load_state_dict(target)
    return skipped
