"""Issue 11 §5: no checkpoint choice, early stop or sweep objective reads a test sample."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from saca_lab import tracking
from saca_lab.config import load_config
from saca_lab.datasets.datamodules import SpectraDataModule
from saca_lab.datasets.splits import make_split
from saca_lab.errors import InputError
from saca_lab.training.run import run_experiment

ROOT = Path(__file__).resolve().parents[1]
BASE_1D = ROOT / "experiments" / "trcnn_1d_pretrain_slag.yaml"  # no LSTM: fast
VAL_SPLIT = "data.split={train: 0.5, val: 0.25, test: 0.25, seed: 0}"
NO_VAL_SPLIT = "data.split={train: 0.75, val: 0.0, test: 0.25, seed: 0}"


class Spy(Callback):
    """Sample indices of every validation and test batch, and what the selectors monitored."""

    def __init__(self) -> None:
        self.val: set[int] = set()
        self.test: set[int] = set()
        self.val_batches = 0
        self.monitored: list[str] = []
        self.val_loss: dict[int, float] = {}  # epoch -> val_loss
        self.tested: str | None = None  # the checkpoint trainer.test loaded
        self.best: str | None = None  # ModelCheckpoint's choice

    def on_fit_start(self, trainer, pl_module) -> None:
        self.monitored = [cb.monitor for cb in trainer.callbacks
                          if isinstance(cb, (ModelCheckpoint, EarlyStopping)) and cb.monitor]

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.val_batches += 1
        self.val |= set(batch[2].tolist())

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.test |= set(batch[2].tolist())

    def on_validation_end(self, trainer, pl_module) -> None:
        self.val_loss[trainer.current_epoch] = float(trainer.callback_metrics["val_loss"])

    def on_test_start(self, trainer, pl_module) -> None:
        self.tested = trainer.ckpt_path
        best = [cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint)]
        self.best = best[0].best_model_path if best else None


def _cfg(dataset, *extra: str) -> dict:
    return load_config(BASE_1D, [f"data.dataset={dataset}", "data.shots=5", "train.max_epochs=3",
                                 "tracking.log_model=false", *extra])


def _split_of(cfg: dict, dataset) -> tuple[set, set, set]:
    from saca_lab.data.store import open_dataset

    split = make_split(open_dataset(dataset).shape[0], cfg["data"]["split"])
    return set(split.train.tolist()), set(split.val.tolist()), set(split.test.tolist())


def test_without_a_validation_part_there_is_no_validation(train_data):
    dm = SpectraDataModule(str(train_data["slag"]), targets=["Mn"], input_kind="lines_1d",
                           split={"train": 0.75, "val": 0.0, "test": 0.25, "seed": 0}, shots=5)
    dm.setup()
    assert len(dm.split.test) and dm.val_dataloader() == []  # not the test samples
    dm = SpectraDataModule(str(train_data["slag"]), targets=["Mn"], input_kind="lines_1d",
                           split={"train": 0.5, "val": 0.25, "test": 0.25, "seed": 0}, shots=5)
    dm.setup()
    served = {int(g) for batch in dm.val_dataloader() for g in batch[2]}
    assert served == set(dm.split.val.tolist()) and served.isdisjoint(dm.split.test.tolist())


def test_checkpoint_choice_and_early_stop_see_validation_samples_only(train_data, mlflow_tmp):
    cfg = _cfg(train_data["slag"], VAL_SPLIT, "train.early_stopping={patience: 1}")
    _, val, test = _split_of(cfg, train_data["slag"])
    spy = Spy()
    result = run_experiment(cfg, progress=False, callbacks=[spy])
    assert spy.monitored == ["val_loss", "val_loss"]  # ModelCheckpoint and EarlyStopping
    assert spy.val == val and spy.val.isdisjoint(test)
    assert spy.test == test
    # the checkpoint that was tested is the one chosen on val_loss: the epoch of the lowest
    assert spy.tested and spy.tested == spy.best
    assert len(spy.val_loss) >= 2 and all(np.isfinite(v) for v in spy.val_loss.values())
    epoch = torch.load(spy.tested, map_location="cpu", weights_only=True)["epoch"]
    assert epoch == min(spy.val_loss, key=spy.val_loss.get)
    history = mlflow.MlflowClient(tracking.tracking_uri()).get_metric_history(result.run_id, "val_loss")
    assert sorted(m.value for m in history) == pytest.approx(sorted(spy.val_loss.values()), rel=1e-6)


def test_no_validation_part_no_validation_loop_and_last_epoch_is_tested(train_data, mlflow_tmp):
    cfg = _cfg(train_data["slag"], NO_VAL_SPLIT)
    _, val, test = _split_of(cfg, train_data["slag"])
    spy = Spy()
    result = run_experiment(cfg, progress=False, callbacks=[spy])
    assert not val and spy.val_batches == 0 and spy.monitored == []
    assert spy.test == test
    run = mlflow.MlflowClient(tracking.tracking_uri()).get_run(result.run_id)
    assert not [k for k in run.data.metrics if k.startswith("val_")]  # no val_* that is test


def test_early_stopping_without_validation_samples_is_refused(train_data, mlflow_tmp):
    cfg = _cfg(train_data["slag"], NO_VAL_SPLIT, "train.early_stopping={patience: 3}")
    with pytest.raises(InputError, match=r"train.early_stopping.*data.split.val") as err:
        run_experiment(cfg, progress=False)
    assert "train: 0.65, val: 0.1, test: 0.25" in str(err.value)  # how to carve one
    # refused before anything is logged
    assert mlflow.MlflowClient(tracking.tracking_uri()).get_experiment_by_name(
        cfg["tracking"]["experiment"]) is None


def test_a_split_without_test_samples_is_refused_before_training(train_data, mlflow_tmp):
    cfg = _cfg(train_data["slag"], "data.split={train: 1.0, val: 0.0, test: 0.0, seed: 0}")
    spy = Spy()
    with pytest.raises(InputError, match=r"leaves no test sample.*data.split.test=0.05"):
        run_experiment(cfg, progress=False, callbacks=[spy])
    assert spy.monitored == [] and spy.test == set()  # refused before fit, not after it
    assert mlflow.MlflowClient(tracking.tracking_uri()).get_experiment_by_name(
        cfg["tracking"]["experiment"]) is None


def test_carving_validation_keeps_the_test_samples():
    # the fix the error message proposes: val taken from train, the test samples unchanged
    for n, seed in ((20, 0), (100, 3), (8, 1)):
        before = make_split(n, {"train": 0.7, "val": 0.0, "test": 0.3, "seed": seed})
        after = make_split(n, {"train": 0.6, "val": 0.1, "test": 0.3, "seed": seed})
        assert np.array_equal(before.test, after.test)
        assert set(after.val.tolist()) <= set(before.train.tolist()) and len(after.val)


def _sweep(path: Path, dataset, split: dict) -> Path:
    spec = {"base": str(BASE_1D),
            "set": {"data.dataset": str(dataset), "data.shots": 5, "tracking.log_model": False,
                    "data.split": split, "train.max_epochs": 2},
            "space": {"model.overrides.kernels": {"type": "categorical", "choices": [4, 8]}},
            "sampler": {"name": "random", "seed": 0}, "n_trials": 1,
            "objective": {"metric": "val_r2_Mn"}, "heartbeat": {"interval": 1, "grace": 3}}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_sweep_objective_that_would_read_test_data_is_refused(tmp_path):
    from saca_lab.sweeps import load_sweep, run_sweep

    path = _sweep(tmp_path / "noval.yaml", tmp_path, {"train": 0.7, "val": 0.0, "test": 0.3})
    with pytest.raises(InputError, match=r"noval.yaml.*objective.metric val_r2_Mn.*data.split.val"):
        load_sweep(path)
    ok = _sweep(tmp_path / "ok.yaml", tmp_path, {"train": 0.5, "val": 0.25, "test": 0.25})
    load_sweep(ok)
    with pytest.raises(InputError, match="data.split.val"):  # an override that drops validation
        run_sweep(ok, storage=f"sqlite:///{tmp_path}/optuna.db", overrides=["data.split.val=0.0",
                                                                            "data.split.train=0.75"])


def test_sweep_objective_reads_validation_samples_only(train_data, mlflow_tmp, monkeypatch):
    from saca_lab.sweeps import run_sweep

    served, tested = [], []
    original_val, original_test = SpectraDataModule.val_dataloader, SpectraDataModule.test_dataloader

    def val_spy(self):
        loader = original_val(self)
        served.append(({int(g) for batch in loader for g in batch[2]}, set(self.split.test.tolist())))
        return loader

    def test_spy(self):
        tested.append(set(self.split.test.tolist()))
        return original_test(self)

    monkeypatch.setattr(SpectraDataModule, "val_dataloader", val_spy)
    monkeypatch.setattr(SpectraDataModule, "test_dataloader", test_spy)
    path = _sweep(mlflow_tmp / "spy.yaml", train_data["slag"],
                  {"train": 0.5, "val": 0.25, "test": 0.25, "seed": 0})
    study = run_sweep(path, storage=f"sqlite:///{mlflow_tmp}/optuna.db", progress=False)
    trial = study.get_trials()[0]
    assert trial.state.name == "COMPLETE" and np.isfinite(trial.value)
    assert served and tested
    for val_samples, test_samples in served:
        assert val_samples and val_samples.isdisjoint(test_samples)
