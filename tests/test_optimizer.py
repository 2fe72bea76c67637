"""``train.optimizer``: Adam with coupled L2 (the default) or AdamW's decoupled weight decay."""

from __future__ import annotations

import copy

import pytest
import torch

from saca_lab.config import DEFAULTS, validate
from saca_lab.errors import InputError
from saca_lab.training.module import SpectraRegressor


def _module(**kwargs) -> SpectraRegressor:
    return SpectraRegressor("trcnn_1d", {"in_length": 16, "n_outputs": 1}, ["Mn"], [0.0], [1.0],
                            {"input_kind": "lines_1d"}, lr=0.1, lr_schedule="constant", **kwargs)


def _step_without_gradient(module: SpectraRegressor) -> torch.Tensor:
    """Weight of the last layer after one optimiser step whose loss gradient is zero."""
    opt = module.configure_optimizers()["optimizer"]
    weight = module.model.head.get_submodule("2").weight
    for p in module.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    return weight.detach().clone()


def test_adamw_shrinks_every_weight_by_lr_times_decay_whatever_the_gradient():
    module = _module(optimizer="adamw", weight_decay=0.5)
    before = module.model.head.get_submodule("2").weight.detach().clone()
    after = _step_without_gradient(module)
    assert isinstance(module.configure_optimizers()["optimizer"], torch.optim.AdamW)
    torch.testing.assert_close(after, before * (1 - 0.1 * 0.5))


def test_adam_default_adds_the_decay_to_the_gradient_instead():
    module = _module(weight_decay=0.5)
    assert module.hparams.optimizer == DEFAULTS["train"]["optimizer"] == "adam"
    before = module.model.head.get_submodule("2").weight.detach().clone()
    after = _step_without_gradient(module)
    # Adam normalises the L2 gradient: every weight moves by ~lr, not by lr * decay * weight
    assert torch.allclose((before - after).abs(), torch.full_like(before, 0.1), rtol=1e-3)


def test_unknown_optimizer_is_an_input_error_naming_the_field():
    cfg = copy.deepcopy(DEFAULTS)
    cfg["model"]["name"], cfg["data"]["dataset"] = "trcnn_1d", {"preset": "slag"}
    cfg["train"]["optimizer"] = "sgd"
    with pytest.raises(InputError, match="train.optimizer"):
        validate(cfg)
    with pytest.raises(InputError, match="train.optimizer"):
        _module(optimizer="sgd").configure_optimizers()
