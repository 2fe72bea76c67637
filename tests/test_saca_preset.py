"""The presence-aware stainless preset and its cache (issue 10 §4)."""

from __future__ import annotations

import numpy as np
import pytest

from saca_lab.errors import InputError
from saca_lab.spectra import presets, simulate
from saca_lab.spectra.simulate import preset_config


def test_stainless_preset_is_deterministic_and_presence_aware():
    a = preset_config("stainless", n_samples=40, seed=3).design
    b = preset_config("stainless", n_samples=40, seed=3).design
    c = preset_config("stainless", n_samples=40, seed=4).design
    assert a.keys() == b.keys()
    for el in a:
        np.testing.assert_array_equal(a[el], b[el])
    assert any(not np.array_equal(a[el], c[el]) for el in presets.RARE_EARTHS)
    lo, hi = presets.RARE_EARTH_RANGE
    for el in presets.RARE_EARTHS:
        v = a[el]
        # absent means exactly 0 %, in the documented share of samples (a hypercube column)
        assert np.sum(v == 0) == round(40 * (1 - presets.RARE_EARTH_PRESENT))
        present = v[v > 0]
        assert present.min() >= lo and present.max() <= hi
    assert np.sum(a["Mo"] == 0) == round(40 * (1 - presets.MO_PRESENT))
    assert a["Mo"][a["Mo"] > 0].min() >= presets.STAINLESS["Mo"][0]
    # presence of different rare earths is not the same set of samples
    assert not np.array_equal(a["La"] > 0, a["Ce"] > 0)


def _tiny(root, **extra):
    from saca_lab.datasets.datamodules import resolve_dataset

    return resolve_dataset({"preset": "stainless", "samples": 2, "shots": 1, **extra}, str(root))


def test_a_preset_cache_is_regenerated_when_the_generator_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(simulate, "GENERATOR_VERSION", "0-old")
    old = _tiny(tmp_path)
    assert old.provenance["generator_version"] == "0-old"
    monkeypatch.setattr(simulate, "GENERATOR_VERSION", "0-new")
    new = _tiny(tmp_path)
    assert new.path == old.path and new.provenance["generator_version"] == "0-new"
    assert new.provenance["config_hash"] != old.provenance["config_hash"]


def test_a_folder_holding_another_dataset_is_still_refused(tmp_path):
    folder = tmp_path / "x"
    simulate.simulate_dataset(preset_config("stainless", n_samples=2, n_shots=1), folder,
                              n_jobs=1, progress=False)
    other = preset_config("carbon-steel", n_samples=2, n_shots=1)
    with pytest.raises(InputError, match="holds a different dataset"):
        simulate.simulate_dataset(other, folder, n_jobs=1, progress=False, refresh_cache=True)
    with pytest.raises(InputError, match="holds a different dataset"):
        simulate.simulate_dataset(preset_config("stainless", n_samples=2, n_shots=1, seed=5), folder,
                                  n_jobs=1, progress=False)
    # same preset, another size or seed: a different dataset even for a cache refresh
    for cfg in (preset_config("stainless", n_samples=3, n_shots=1),
                preset_config("stainless", n_samples=2, n_shots=1, seed=5)):
        with pytest.raises(InputError, match="holds a different dataset"):
            simulate.simulate_dataset(cfg, folder, n_jobs=1, progress=False, refresh_cache=True)


def test_a_folder_the_user_named_is_never_regenerated(tmp_path, monkeypatch):
    monkeypatch.setattr(simulate, "GENERATOR_VERSION", "0-old")
    _tiny(tmp_path, path="mine")
    monkeypatch.setattr(simulate, "GENERATOR_VERSION", "0-new")
    with pytest.raises(InputError, match="holds a different dataset"):
        _tiny(tmp_path, path="mine")


def test_reproduce_saca_table1_regenerates_an_old_data_folder(tmp_path, mlflow_tmp, monkeypatch, capsys):
    from saca_lab.cli import main

    spec = "{preset: stainless, samples: 7, shots: 2}"
    monkeypatch.setattr(simulate, "GENERATOR_VERSION", "1")  # the design before issue 10
    from saca_lab.datasets.datamodules import resolve_dataset

    old = resolve_dataset({"preset": "stainless", "samples": 7, "shots": 2}, str(tmp_path / "data"))
    monkeypatch.undo()
    monkeypatch.chdir(mlflow_tmp)
    argv = ["reproduce", "--quick", "--only", "saca_table1", "--data-root", str(tmp_path / "data"),
            "--out", str(tmp_path / "rep"), "--set", f"stainless={spec}", "--set", "saca_epochs=1", "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    again = resolve_dataset({"preset": "stainless", "samples": 7, "shots": 2}, str(tmp_path / "data"))
    assert again.path == old.path
    assert again.provenance["generator_version"] == simulate.GENERATOR_VERSION != "1"
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "constant" in text and "PLSR" in text
