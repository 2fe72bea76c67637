"""Fine-tuning (issue 11 section 2): dropout in the head, weightless overrides, LR schedules."""

from __future__ import annotations

import copy

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from saca_lab.config import DEFAULTS, validate
from saca_lab.errors import InputError
from saca_lab.training.checkpoint import fill_legacy_model_config, load_checkpoint
from saca_lab.training.module import SpectraRegressor, lr_step_epochs
from saca_lab.training.transfer import (
    FreezeFeatures,
    finetune_model_config,
    load_pretrained,
    output_layer_matches,
    window_targets,
)

LENGTH = 64


def _module(**kwargs) -> SpectraRegressor:
    config = {"in_length": LENGTH, "n_outputs": 2, **kwargs.pop("model", {})}
    return SpectraRegressor("trcsl_1d", config, ["Mn", "Cr"], [0.0, 0.0], [1.0, 1.0],
                            {"input_kind": "lines_1d"}, **kwargs)


def _loader(n: int = 16) -> DataLoader:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(n, LENGTH, generator=gen), torch.rand(n, 2, generator=gen)
    return DataLoader(TensorDataset(x, y, torch.arange(n)), batch_size=8)


def _fit(module: SpectraRegressor, epochs: int, callbacks=()) -> None:
    pl.seed_everything(0, verbose=False)
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=list(callbacks), accelerator="cpu", precision="32-true")
    trainer.fit(module, _loader())


class _Modes(pl.Callback):
    """Train/eval mode of the dropout layers at every training batch."""

    def __init__(self) -> None:
        self.head: list[bool] = []
        self.features: list[bool] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        drop = [m for m in module.model.modules() if isinstance(m, nn.Dropout)]
        head = {id(m) for m in module.model.head.modules()}
        self.head += [m.training for m in drop if id(m) in head]
        self.features += [m.training for m in drop if id(m) not in head]
        self.features += [m.training for m in module.model.features.modules()]


def test_head_dropout_is_active_while_fine_tuning_with_frozen_features():
    modes = _Modes()
    module = _module(freeze_features=True)
    frozen = {k: v.clone() for k, v in module.model.features.state_dict().items()}
    _fit(module, 2, [FreezeFeatures(), modes])
    assert modes.head and all(modes.head), "head dropout was off while fine-tuning"
    assert not any(modes.features), "frozen features were in train mode"
    for k, v in module.model.features.state_dict().items():
        assert torch.equal(v, frozen[k])
    # the head in train mode is stochastic: dropout really acts on the fine-tuned head's input
    module.model.head.train()
    z = module.model.features(torch.rand(4, LENGTH))
    assert not torch.equal(module.model.head(z), module.model.head(z))


def test_paper_literal_dropout_is_frozen_with_the_features():
    modes = _Modes()
    _fit(_module(freeze_features=True, model={"dropout_position": "features"}), 1,
         [FreezeFeatures(), modes])
    assert not modes.head  # no dropout layer in the head
    assert not any(modes.features)


def test_fine_tune_may_move_dropout_but_not_change_the_network():
    source = _module().model.config
    config = finetune_model_config("trcsl_1d", source,
                                   {"dropout_position": "features", "dropout": 0.3})
    assert (config["dropout_position"], config["dropout"]) == ("features", 0.3)
    assert {k: v for k, v in config.items() if not k.startswith("dropout")} == \
        {k: v for k, v in source.items() if not k.startswith("dropout")}
    assert finetune_model_config("trcsl_1d", source, {"kernels": source["kernels"]}) == source
    with pytest.raises(InputError, match="model.overrides.kernels"):
        finetune_model_config("trcsl_1d", source, {"kernels": 8})


def test_fine_tune_override_equal_to_a_default_of_an_overrides_only_checkpoint_is_accepted():
    # what older checkpoints hold: the run's overrides only (kernels left at its default, 32)
    source = {"n_outputs": 2, "in_length": LENGTH, **LEGACY}
    config = finetune_model_config("trcsl_1d", source, {"kernels": 32})
    assert config["kernels"] == 32 and config["lstm_output"] == "last"
    with pytest.raises(InputError, match="kernels=32"):  # the source's value, not None
        finetune_model_config("trcsl_1d", source, {"kernels": 8})


def test_checkpoint_stores_every_constructor_argument(tmp_path):
    module = _module()
    _fit(module, 1)
    module.trainer.save_checkpoint(tmp_path / "m.ckpt")
    stored = load_checkpoint(tmp_path / "m.ckpt")["hyper_parameters"]["model_config"]
    assert stored == module.model.config
    assert {"lstm_output", "dropout_position", "kernels", "fc_units", "in_length"} <= set(stored)


#: the behaviour before lstm_output / dropout_position existed
LEGACY = {"lstm_output": "last", "dropout_position": "features"}


def _old_checkpoint(path) -> SpectraRegressor:
    """A checkpoint written as before those options: overrides-only model_config, no
    lr_schedule, a last-state LSTM head (32 inputs) and dropout among the features."""
    old = _module(model=dict(LEGACY))
    hp = {k: v for k, v in dict(old.hparams).items() if k != "lr_schedule"}
    hp["model_config"] = {"n_outputs": 2, "in_length": LENGTH}
    torch.save({"state_dict": old.state_dict(), "hyper_parameters": hp}, path)
    return old


def test_old_checkpoint_loads_with_the_head_it_was_trained_with(tmp_path):
    path = tmp_path / "old.ckpt"
    old = _old_checkpoint(path)
    assert old.model.head.get_submodule("0").weight.shape == (128, 32)  # head "0": last hidden state only
    module = SpectraRegressor.from_checkpoint(path)
    assert {k: module.model.config[k] for k in LEGACY} == LEGACY
    x = torch.rand(3, LENGTH)
    old.eval(), module.eval()
    torch.testing.assert_close(module(x), old(x))
    # transfer from it: the fine-tune's network is the source's, and nothing is re-initialised
    hp = load_checkpoint(path)["hyper_parameters"]
    config = finetune_model_config("trcsl_1d", hp["model_config"], {})
    fine = _module(model=config, freeze_features=True)
    assert load_pretrained(fine, str(path)) == []
    torch.testing.assert_close(fine.model.head.get_submodule("0").weight, old.model.head.get_submodule("0").weight)


def test_legacy_settings_are_filled_only_where_the_model_takes_them():
    gll = fill_legacy_model_config({"model_name": "gll", "model_config": {"n_outputs": 2}})
    assert gll["model_config"] == {"n_outputs": 2}
    new = fill_legacy_model_config({"model_name": "trcsl_1d",
                                    "model_config": {"lstm_output": "sequence"}})
    assert new["model_config"] == {"lstm_output": "sequence", "dropout_position": "features"}


def test_fine_tune_on_another_name_of_the_element_reinitialises_the_output_layer(tmp_path):
    # pre-trained on the oxide, fine-tuned on the element: same windows, outputs re-fitted
    assert window_targets(["Mn"], ["MnO"]) == ["Mn"]
    assert not output_layer_matches(["Mn"], ["MnO"])
    assert not output_layer_matches(["Cr", "Mn"], ["Mn", "Cr"])
    assert output_layer_matches(["Mn", "Cr"], ["Mn", "Cr"])
    source = _module()
    path = tmp_path / "src.ckpt"
    torch.save({"state_dict": source.state_dict(), "hyper_parameters": dict(source.hparams)}, path)
    fine = _module(freeze_features=True)
    skipped = load_pretrained(fine, str(path), reinit_output=True)
    assert skipped == ["head.2.weight", "head.2.bias"]
    assert torch.equal(fine.model.head.get_submodule("0").weight, source.model.head.get_submodule("0").weight)
    assert not torch.equal(fine.model.head.get_submodule("2").weight, source.model.head.get_submodule("2").weight)


def test_lr_step_is_a_fraction_of_max_epochs_below_one():
    assert lr_step_epochs(0.125, 800) == 100  # Table 1: x0.1 every 100 of 800 epochs
    assert lr_step_epochs(0.125, 150) == 19
    assert lr_step_epochs(100, 150) == 100  # >= 1: epochs, as before
    assert lr_step_epochs(0.001, 10) == 1
    with pytest.raises(InputError, match="lr_step"):
        lr_step_epochs(0.5, None)
    with pytest.raises(InputError, match="lr_step"):
        lr_step_epochs(-1, 10)


@pytest.mark.parametrize(("schedule", "lr_step", "expected"),
                         [("step", 0.5, 0.01 * 0.1 ** 2), ("step", 100, 0.01), ("constant", 0.5, 0.01),
                          ("cosine", 0.5, 0.0)])
def test_lr_schedule_follows_max_epochs(schedule, lr_step, expected):
    module = _module(lr=0.01, lr_step=lr_step, lr_schedule=schedule)
    _fit(module, 4)
    lr = module.trainer.optimizers[0].param_groups[0]["lr"]
    assert lr == pytest.approx(expected, abs=1e-12)


def test_bad_schedule_settings_are_input_errors_naming_the_field():
    cfg = copy.deepcopy(DEFAULTS)
    cfg["model"]["name"], cfg["data"]["dataset"] = "trcsl_1d", {"preset": "slag"}
    validate(cfg)
    for key, value, field in [("lr_schedule", "linear", "train.lr_schedule"),
                              ("lr_step", 0, "train.lr_step")]:
        bad = copy.deepcopy(cfg)
        bad["train"][key] = value
        with pytest.raises(InputError, match=field):
            validate(bad)
    bad = copy.deepcopy(cfg)
    bad["data"]["lines"] = "nsit"
    with pytest.raises(InputError, match="data.lines"):
        validate(bad)
    for value in (0, -1, 2.5, "3", True, None):
        bad = copy.deepcopy(cfg)
        bad["data"]["lines_per_element"] = value
        with pytest.raises(InputError, match="data.lines_per_element"):
            validate(bad)


def test_unset_lines_mean_the_default_and_an_old_spec_the_papers(train_data):
    from saca_lab.compare.features import PAPER_WAVELENGTHS, line_setting
    from saca_lab.datasets.datamodules import SpectraDataModule
    from saca_lab.training.run import build_datamodule

    assert DEFAULTS["data"]["lines"] == "nist"
    assert SpectraDataModule(train_data["slag"], input_kind="lines_1d").lines_source == "nist"
    assert SpectraDataModule(train_data["slag"], input_kind="lines_1d",
                             lines=None).lines_source == "nist"
    # a feature spec without lines (a checkpoint from before data.lines) read the paper's lines
    cfg = copy.deepcopy(DEFAULTS)
    cfg["data"].update(dataset=str(train_data["slag"]), targets=["Mn"])
    dm = build_datamodule(cfg, "lines_1d", {"airpls": None, "minmax": True, "lines": None,
                                            "half_width": 5})
    assert dm.lines_source == "paper"
    setting = line_setting({}, {"trcsl_1d": {"lines": None, "half_width": 5}}, DEFAULTS["data"])
    assert setting.lines == PAPER_WAVELENGTHS and setting.fixed
    assert line_setting({}, {}, {**DEFAULTS["data"], "lines": None}).lines == "nist"


def test_the_lr_schedule_default_is_the_configs():
    import inspect

    default = DEFAULTS["train"]["lr_schedule"]
    assert inspect.signature(SpectraRegressor).parameters["lr_schedule"].default == default
    assert _module().hparams.lr_schedule == default


def test_fine_tune_targets_without_a_pretrained_window_are_left_out(capsys):
    assert window_targets(["C", "Cu", "Mn", "Cr"], ["Cu", "Mn", "Cr"]) == ["Cu", "Mn", "Cr"]
    assert "C left out" in capsys.readouterr().err
    with pytest.raises(InputError, match="none of the targets"):
        window_targets(["C"], ["Mn"])



def test_fine_tune_drops_targets_whose_slag_windows_read_nothing_in_steel(train_data, mlflow_tmp,
                                                                         capsys):
    from pathlib import Path

    from saca_lab.config import load_config
    from saca_lab.training.run import run_experiment

    exp = Path(__file__).resolve().parents[1] / "experiments"
    common = ["train.fast_dev_run=true", "data.shots=5", "tracking.log_model=false"]
    pre = run_experiment(load_config(exp / "trcnn_1d_pretrain_slag.yaml",
                                     [f"data.dataset={train_data['slag']}", *common]), progress=False)
    assert "C" in pre.targets  # C has a usable NIST line in slag (C I 940.57 nm)
    windows = load_checkpoint(pre.checkpoint)["hyper_parameters"]["feature_spec"]["lines"]
    fine_cfg = exp / "trcnn_1d_finetune_carbon_steel.yaml"
    sets = [f"data.dataset={train_data['carbon-steel']}", f"transfer.from={pre.checkpoint}",
            *common]
    capsys.readouterr()
    fine = run_experiment(load_config(fine_cfg, sets), progress=False)
    # as a model trained on carbon steel alone (gll) would: C left out, with a message
    assert fine.targets == ["Cu", "Mn", "Cr"]
    assert "C left out of the fine-tune targets" in capsys.readouterr().err
    # the windows stay the input of the pre-trained network
    spec = load_checkpoint(fine.checkpoint)["hyper_parameters"]["feature_spec"]
    assert spec["lines"] == windows
    # the literal reproduction keeps every target
    paper = run_experiment(load_config(fine_cfg, [*sets, "data.lines=paper"]), progress=False)
    assert paper.targets == ["C", "Cu", "Mn", "Cr"]
