"""``train.precision: auto`` and ``train.channels_last: auto`` (issue 12 §1): chosen by the
hardware, and on a machine without native bf16 every path to the Trainer trains in fp32."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import mlflow
import pytest
import torch
import yaml

from saca_lab import runtime, tracking
from saca_lab.cli import main
from saca_lab.config import DEFAULTS, load_config
from saca_lab.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
EXP = ROOT / "experiments"
AUTO = {"precision": "auto", "channels_last": "auto"}


def _probe(monkeypatch, cpu: bool, cuda: bool | None = None) -> None:
    """Set the CPU bf16 probe and, with ``cuda`` not None, pretend a CUDA device is there."""
    monkeypatch.delenv(runtime.NATIVE_BF16_ENV, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: cpu)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda is not None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bool(cuda))


@pytest.mark.parametrize("cpu, kind, expected", [
    (True, "image_2d", ("bf16-mixed", True)),
    (True, "lines_1d", ("bf16-mixed", False)),   # channels_last only helps 2D inputs
    (False, "image_2d", ("32-true", False)),
])
def test_auto_follows_the_cpu_probe(monkeypatch, cpu, kind, expected):
    _probe(monkeypatch, cpu)
    assert runtime.resolve_training(AUTO, kind) == expected


def test_auto_on_cuda_uses_the_gpu_without_emulation(monkeypatch):
    _probe(monkeypatch, cpu=True, cuda=False)  # an emulating GPU on a bf16 CPU
    assert runtime.resolve_training(AUTO, "image_2d") == ("32-true", False)
    assert runtime.resolve_training({**AUTO, "accelerator": "cpu"}, "image_2d") == ("bf16-mixed", True)
    _probe(monkeypatch, cpu=False, cuda=True)
    assert runtime.resolve_training(AUTO, "image_2d") == ("bf16-mixed", False)  # not on a CPU
    assert runtime.resolve_precision("auto", "mps") == "32-true"


def test_explicit_values_win(monkeypatch):
    _probe(monkeypatch, cpu=False)
    assert runtime.resolve_training({"precision": "bf16-mixed", "channels_last": True},
                                    "lines_1d") == ("bf16-mixed", True)
    _probe(monkeypatch, cpu=True)
    assert runtime.resolve_training({"precision": "32-true", "channels_last": False},
                                    "image_2d") == ("32-true", False)
    # explicit bf16 on a CPU that emulates it: channels_last auto stays off
    _probe(monkeypatch, cpu=False)
    assert runtime.resolve_training({"precision": "bf16-mixed", "channels_last": "auto"},
                                    "image_2d") == ("bf16-mixed", False)


def test_cpu_probe_is_avx512_bf16_or_amx_and_can_be_forced(monkeypatch):
    _probe(monkeypatch, cpu=False)
    assert not runtime.cpu_native_bf16()
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert runtime.cpu_native_bf16()
    monkeypatch.setenv(runtime.NATIVE_BF16_ENV, "0")
    assert not runtime.cpu_native_bf16()
    assert "forced off" in runtime.describe_auto_precision()
    assert runtime.describe_auto_precision().startswith("auto -> 32-true")


def test_config_default_is_auto_and_bad_values_are_refused():
    assert DEFAULTS["train"]["precision"] == "auto" and DEFAULTS["train"]["channels_last"] == "auto"
    path = EXP / "trcsl_pretrain_slag.yaml"
    cfg = load_config(path)
    assert cfg["train"]["precision"] == "auto" and cfg["train"]["channels_last"] == "auto"
    assert load_config(path, ["train.precision=bf16-mixed"])["train"]["precision"] == "bf16-mixed"
    with pytest.raises(InputError, match="train.precision"):
        load_config(path, ["train.precision=bf17"])
    with pytest.raises(InputError, match="train.channels_last"):
        load_config(path, ["train.channels_last=maybe"])


@pytest.fixture
def no_bf16(monkeypatch, mlflow_tmp):
    """The probe says "no native bf16"; every fitting Trainer records its precision; all run one batch."""
    _probe(monkeypatch, cpu=False)
    mlflow.set_tracking_uri(tracking.tracking_uri())
    seen: list[str] = []
    real = pl.Trainer

    class Recording(real):
        def __init__(self, *args, **kwargs):
            if "max_epochs" in kwargs:  # the fit's Trainer (the test pass has its own, in fp32)
                seen.append(kwargs["precision"])
            kwargs.update(max_epochs=1, limit_train_batches=1, limit_test_batches=1)
            if kwargs.get("limit_val_batches") != 0:
                kwargs["limit_val_batches"] = 1
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(pl, "Trainer", Recording)
    return seen


def test_train_trains_in_fp32_and_logs_it(no_bf16, train_data):
    sets = [f"data.dataset={train_data['slag']}", "data.shots=5", "tracking.log_model=false"]
    argv = ["train", str(EXP / "trcsl_pretrain_slag.yaml")]  # 2D: bf16 + channels_last before
    assert main([*argv, *(x for s in sets for x in ("--set", s))]) == 0
    assert no_bf16 == ["32-true"]
    run = mlflow.search_runs(experiment_names=["trcsl_pretrain_slag"], output_format="list")[0]
    assert run.data.tags["precision"] == "32-true" and run.data.tags["channels_last"] == "false"
    assert run.data.params["cfg.train.precision"] == "auto"
    # an explicit value still wins, and is what the run logs
    argv = ["train", str(EXP / "trcnn_1d_pretrain_slag.yaml"), "--set", "train.precision=bf16-mixed"]
    assert main([*argv, *(x for s in sets for x in ("--set", s))]) == 0
    assert no_bf16 == ["32-true", "bf16-mixed"]
    run = mlflow.search_runs(experiment_names=["trcnn_1d_pretrain_slag"], output_format="list")[0]
    assert run.data.tags["precision"] == "bf16-mixed"


def test_sweep_trial_trains_in_fp32(no_bf16, train_data, tmp_path):
    from saca_lab.sweeps import run_sweep

    spec = {"base": str(EXP / "trcnn_1d_pretrain_slag.yaml"),
            "set": {"data.dataset": str(train_data["slag"]), "data.shots": 5,
                    "tracking.log_model": False,
                    "data.split": {"train": 0.5, "val": 0.25, "test": 0.25, "seed": 0}},
            "space": {"model.overrides.n_units": {"type": "categorical", "choices": [1]}},
            "sampler": "grid", "objective": {"metric": "val_r2_Mn"}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    run_sweep(path, n_trials=1, storage=f"sqlite:///{tmp_path}/optuna.db", study_name="p",
              progress=False)
    assert no_bf16 == ["32-true"]


def test_compare_deep_fit_trains_in_fp32(no_bf16, train_data, tmp_path):
    from saca_lab.compare import run_compare

    run_compare(train_data["slag"], "Mn", "plsr,gll", sizes="6", repeats=1, out_dir=tmp_path / "c",
                n_jobs=1, epochs=1, progress=False, overrides=["data.shots=average"])
    assert no_bf16 == ["32-true"]


def test_reproduce_figures_train_in_fp32_and_the_report_says_so(no_bf16, train_data, tmp_path):
    from saca_lab.reproduce import figs_training
    from saca_lab.reproduce.context import Context
    from saca_lab.reproduce.settings import get_mode

    tiny = [f"slag={train_data['slag']}", "shots=5", "sweep_epochs=1", "sweep_trials=1",
            "pretrain_epochs=1", "dims=2d"]
    # Fig. S3: a 2D sweep, set up by the same code as Fig. 9's (which hard-coded bf16 before)
    argv = ["reproduce", "--quick", "--only", "figS3", "--out", str(tmp_path / "rep"), "--quiet"]
    assert main([*argv, *(x for s in tiny for x in ("--set", s))]) == 0
    assert no_bf16 == ["32-true"]
    header = (tmp_path / "rep" / "report.md").read_text().split("## ")[0]
    assert "Training precision: auto -> 32-true (CPU without native bf16)" in header
    # the TrCSL training figures (Fig. 11/12) in 2D
    ctx = Context(get_mode("quick", tiny), tmp_path / "rep", progress=False)
    figs_training.pretrain(ctx, "trcsl", 0, "fig12")
    assert no_bf16 == ["32-true"] * 2
