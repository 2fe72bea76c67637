"""Fine-tuning on cached frozen features (issue 12 §3): same results, features computed once."""

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from saca_lab.config import load_config
from saca_lab.models import create_model
from saca_lab.training import transfer
from saca_lab.training.run import run_experiment

EXP = Path(__file__).resolve().parents[1] / "experiments"


class Spy(pl.Callback):
    """Records, per training step, whether the module trained on cached features and the
    shape of what the loader handed it."""

    def __init__(self) -> None:
        self.steps: list[tuple[bool, tuple]] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.steps.append((module.features_cached, tuple(batch[0].shape)))


@pytest.fixture(scope="module")
def pretrained(train_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp}/mlflow.db")
        pre = run_experiment(load_config(EXP / "trcsl_1d_pretrain_slag.yaml", [
            f"data.dataset={train_data['slag']}", "train.max_epochs=1", "data.shots=5",
            "tracking.log_model=false"]), progress=False)
    return pre.checkpoint


def _finetune(train_data, checkpoint, cache, monkeypatch, extra=()):
    monkeypatch.setattr(transfer, "CACHE_FROZEN_FEATURES", cache)
    spy = Spy()
    result = run_experiment(load_config(EXP / "trcsl_1d_finetune_carbon_steel.yaml", [
        f"data.dataset={train_data['carbon-steel']}", f"transfer.from={checkpoint}",
        "train.max_epochs=3", "data.shots=5", "data.batch_size=4", "train.precision=32-true",
        "tracking.log_model=false", *extra]), progress=False, callbacks=[spy])
    return result, spy


def test_cached_features_give_the_same_fine_tune(train_data, pretrained, mlflow_tmp, monkeypatch):
    plain, spy_plain = _finetune(train_data, pretrained, False, monkeypatch)
    cached, spy_cached = _finetune(train_data, pretrained, True, monkeypatch)
    # the cached run really trained the head on features (not on the line-window inputs)
    assert spy_cached.steps and all(c for c, _ in spy_cached.steps)
    assert not any(c for c, _ in spy_plain.steps)
    assert spy_cached.steps[0][1] != spy_plain.steps[0][1]
    assert len(spy_cached.steps) == len(spy_plain.steps) > 3  # several steps per epoch, 3 epochs
    # same seed, same items in the same order: equal up to float round-off
    for key, value in plain.test.items():
        np.testing.assert_allclose(cached.test[key], value, rtol=1e-5, atol=1e-7, err_msg=key)
    a = torch.load(plain.checkpoint, weights_only=False)["state_dict"]
    b = torch.load(cached.checkpoint, weights_only=False)["state_dict"]
    assert a.keys() == b.keys()  # the whole network is saved, not only the head
    # measured: the test metrics agreed to the last digit, the weights (|w| <= 0.1) within
    # 1.5e-6 (head.0.weight; Adam's normalised steps carry the round-off of elements whose
    # gradients are ~0); the frozen features are bit-identical
    for k, v in a.items():
        if v.dtype.is_floating_point:
            torch.testing.assert_close(b[k], v, rtol=1e-5, atol=1e-5, msg=k)
            if k.startswith("model.features."):
                assert torch.equal(b[k], v), k


def test_features_are_cached_only_when_they_cannot_change(monkeypatch):
    model = create_model("trcsl_1d")
    monkeypatch.setattr(transfer, "CACHE_FROZEN_FEATURES", True)
    assert transfer.caches_features(model, None, None)
    assert not transfer.caches_features(model, object(), None)  # augmentation: new inputs each epoch
    assert not transfer.caches_features(model, None, 2)  # the features train from epoch 2
    assert not transfer.caches_features(create_model("resnet_dcnn_small"), None, None)
    monkeypatch.setattr(transfer, "CACHE_FROZEN_FEATURES", False)
    assert not transfer.caches_features(model, None, None)
