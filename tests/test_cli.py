"""The saca-lab command: happy paths and bad input (exit 2, one-line error, nothing written)."""

import numpy as np
import pytest

from saca_lab.cli import main
from saca_lab.data.store import open_dataset


def test_simulate_one_spectrum(tmp_path, capsys):
    out = tmp_path / "x.csv"
    assert main(["simulate", "--composition", "Fe=98.2,Mn=0.8,C=0.4", "--instrument", "trcsl",
                 "--out", str(out)]) == 0
    data = np.loadtxt(out, delimiter=",", skiprows=1)
    assert out.read_text().splitlines()[0] == "wavelength,intensity"
    assert data.shape == (16375, 2) and data[0, 0] == pytest.approx(216.589)
    assert np.all(data[:, 1] >= 0)


def test_simulate_preset_then_reuse(tmp_path, capsys):
    args = ["simulate", "--preset", "carbon-steel", "--samples", "2", "--shots", "3",
            "--out", str(tmp_path / "cs"), "--jobs", "1", "--quiet"]
    assert main(args) == 0
    assert open_dataset(tmp_path / "cs").shape == (2, 3, 16375)
    assert main(args[:-1]) == 0
    assert "reusing cached dataset" in capsys.readouterr().err


def test_import_and_info(real_data, tmp_path, capsys):
    out = tmp_path / "geo"
    assert main(["import", str(real_data / "libs_geostandards_sio2.csv"), "--out", str(out)]) == 0
    assert main(["info", str(out), "--verify"]) == 0
    text = capsys.readouterr().out
    assert "103 samples" in text and "checksums: ok" in text


def test_import_folder_with_grid(real_data, tmp_path):
    out = tmp_path / "bhvo2"
    assert main(["import", str(real_data / "bhvo2"), "--out", str(out), "--grid", "300:800:2001"]) == 0
    assert open_dataset(out).shape == (12, 1, 2001)


@pytest.mark.parametrize("argv, message", [
    (["simulate", "--composition", "Fe=98,Mn=-1", "--out", "{tmp}/x.csv"], "negative"),
    (["simulate", "--composition", "Fe=98,Qq=1", "--out", "{tmp}/x.csv"], "unknown element"),
    (["simulate", "--composition", "Fe=90,Mn=20", "--out", "{tmp}/x.csv"], "over 100"),
    (["simulate", "--preset", "granite", "--out", "{tmp}/x"], "unknown preset"),
    (["simulate", "--preset", "slag", "--samples", "0", "--out", "{tmp}/x"], ">= 1"),
    (["import", "{tmp}/missing.csv", "--out", "{tmp}/x"], "missing.csv"),
    (["import", "{tmp}/bad.csv", "--out", "{tmp}/x"], "bad.csv"),
    (["import", "{tmp}/bad.csv", "--out", "{tmp}/x", "--grid", "1:0:5"], "START < STOP"),
    (["info", "{tmp}"], "not a saca-lab dataset"),
])
def test_bad_input_exit_2_and_nothing_written(tmp_path, capsys, argv, message):
    (tmp_path / "bad.csv").write_text("wavelength,intensity\n300,1\n299,nan\n")
    before = set(tmp_path.iterdir())
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert set(tmp_path.iterdir()) == before


def test_allocator_tuning_can_be_switched_off(monkeypatch):
    from saca_lab.runtime import tune_allocator

    monkeypatch.setenv("SACA_LAB_MALLOC_TUNING", "0")
    assert tune_allocator() is False
    monkeypatch.delenv("SACA_LAB_MALLOC_TUNING")
    assert tune_allocator() in (True, False)  # True on glibc
