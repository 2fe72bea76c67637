"""Model files cannot run code (issue 13 §1): every checkpoint load goes through one
weights-only loader, which refuses a crafted file before any of it runs."""

from __future__ import annotations

import csv
import os
import pickle
import shlex
from pathlib import Path

import pytest
import torch

from saca_lab.cli import main
from saca_lab.config import load_config
from saca_lab.training import checkpoint
from saca_lab.training.run import run_experiment

EXP = Path(__file__).resolve().parents[1] / "experiments"


class OpenFile:
    """Unpickling calls ``open(target, "w")``: the file appears."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


class Shell:
    """Unpickling runs a shell command (the issue's report), which creates the file."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.target)}",))


def craft(path: Path, payload, legacy: bool) -> Path:
    """A file shaped like a saca-lab checkpoint, with the payload among its hyper-parameters."""
    ckpt = {"state_dict": {"model.head.weight": torch.zeros(2, 2)},
            "hyper_parameters": {"model_name": "trcnn_1d", "note": payload}}
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    return path


def _flags(sets: list[str]) -> list[str]:
    return [x for s in sets for x in ("--set", s)]


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("payload, global_name", [(OpenFile, "open"), (Shell, "system")])
def test_crafted_checkpoint_is_refused_before_its_code_runs(payload, global_name, legacy,
                                                            train_data, tmp_path, capsys):
    # the payload is live: an ordinary unpickler runs it
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(payload(proof)))
    assert proof.exists()

    target = tmp_path / "pwned"
    crafted = craft(tmp_path / "crafted.ckpt", payload(target), legacy)
    out = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(crafted), "--input", str(train_data["slag"]),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{crafted}: refused to load: the file asks to import '" in err, err
    assert f".{global_name}'" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not target.exists() and not out.exists()


def test_transfer_from_a_crafted_checkpoint_is_refused(train_data, tmp_path, mlflow_tmp, capsys):
    target = tmp_path / "pwned"
    crafted = craft(tmp_path / "crafted.ckpt", Shell(target), legacy=False)
    argv = ["train", str(EXP / "trcnn_1d_finetune_carbon_steel.yaml"),
            *_flags([f"data.dataset={train_data['carbon-steel']}", f"transfer.from={crafted}"])]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert str(crafted) in err and "refused to load" in err
    assert not target.exists()


@pytest.mark.parametrize("content", [b"sample,C\nA,0.1\n", "truncated", "list", "no_keys"])
def test_a_file_that_is_not_a_checkpoint_is_a_clear_error(content, train_data, tmp_path, capsys):
    path = tmp_path / "bad.ckpt"
    if content == "list":
        torch.save([torch.zeros(1)], path)
    elif content == "no_keys":
        torch.save({"state_dict": {}}, path)
    elif content == "truncated":
        torch.save({"state_dict": {"w": torch.zeros(100)}, "hyper_parameters": {}}, path)
        path.write_bytes(path.read_bytes()[:200])
    else:
        path.write_bytes(content)
    assert main(["predict", "--model", str(path), "--input", str(train_data["slag"]),
                 "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert f"{path} is not a saca-lab checkpoint" in err and "Traceback" not in err, err
    assert err.count("is not a saca-lab checkpoint") == 1, err


def test_real_checkpoints_load_predict_and_transfer_through_the_one_loader(
        train_data, tmp_path, mlflow_tmp, monkeypatch, capsys):
    # a validation split and early stopping put the callbacks' state into the checkpoint too
    common = ["train.max_epochs=1", "data.shots=5", "tracking.log_model=false",
              "data.split={train: 0.5, val: 0.25, test: 0.25, seed: 0}"]
    pre = run_experiment(load_config(EXP / "trcnn_1d_pretrain_slag.yaml", [
        *common, f"data.dataset={train_data['slag']}", "train.early_stopping={patience: 2}"]),
        progress=False)
    ckpt = checkpoint.load_checkpoint(pre.checkpoint)
    assert ckpt["hyper_parameters"]["model_name"] == "trcnn_1d" and ckpt["callbacks"]

    out = tmp_path / "pred.csv"
    for model in (pre.checkpoint, pre.run_id):  # a path, and a run's logged checkpoint
        assert main(["predict", "--model", model, "--input", str(train_data["slag"]),
                     "--out", str(out)]) == 0, capsys.readouterr().err
        with open(out) as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 8 and set(rows[0]) == {"sample_id", "C", "Cu", "Mn", "Cr"}

    # transfer.from a checkpoint path: the hyper-parameters and the weights both come through
    # load_checkpoint
    calls = []
    real = checkpoint.load_checkpoint

    def spy(path):
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(checkpoint, "load_checkpoint", spy)
    monkeypatch.setattr("saca_lab.training.run.load_checkpoint", spy)
    fine = run_experiment(load_config(EXP / "trcnn_1d_finetune_carbon_steel.yaml", [
        *common, f"data.dataset={train_data['carbon-steel']}", f"transfer.from={pre.checkpoint}"]),
        progress=False)
    assert calls == [pre.checkpoint] * 2
    # the fine-tuned model's checkpoint (with the FreezeFeatures state) is safe to load as well
    assert main(["predict", "--model", fine.checkpoint, "--input", str(train_data["carbon-steel"]),
                 "--out", str(out)]) == 0, capsys.readouterr().err
