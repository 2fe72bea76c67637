"""Transfer learning (TrCSL Sec. 2.4): reuse a pre-trained feature extractor, fine-tune the head.

The feature extractor (conv, SE, LSTM, dropout) is frozen and kept in eval mode; only the fully
connected head trains. Optionally the features are unfrozen at a later epoch with their own
learning rate (Lightning's ``BaseFinetuning`` pattern).
"""

from __future__ import annotations

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


def load_pretrained(module: pl.LightningModule, checkpoint_path: str) -> list[str]:
    """Copy the source model's weights into ``module.model`` where names and shapes match.

    Returns the names of head parameters that were re-initialised (e.g. a different number of
    targets). A feature extractor that does not match is an error: transfer would be meaningless.
    """
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)["state_dict"]
    source = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    target = module.model.state_dict()
    skipped = []
    for name, tensor in target.items():
        if name in source and source[name].shape == tensor.shape:
            target[name] = source[name]
        elif name.startswith("features."):
            raise InputError(f"checkpoint {checkpoint_path} has a different feature extractor "
                             f"({name}: {tuple(source.get(name, torch.empty(0)).shape)} vs {tuple(tensor.shape)})")
        else:
            skipped.append(name)
    module.model.load_state_dict(target)
    return skipped
