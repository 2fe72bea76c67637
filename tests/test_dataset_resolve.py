"""One owner of "dataset spec -> Dataset": one folder name for a preset, whoever asks."""

from __future__ import annotations

import pytest

from saca_lab.cli import main
from saca_lab.data.store import is_dataset
from saca_lab.datasets.resolve import (
    legacy_folders,
    preset_folder,
    preset_simulation,
    resolve_dataset,
)
from saca_lab.errors import InputError

SPEC = {"preset": "carbon-steel", "samples": 2, "shots": 1}


def _folders(root):
    return sorted(p.name for p in root.iterdir() if is_dataset(p))


def test_preset_folder_names_given_fields_and_the_nuisance():
    assert preset_folder({"preset": "slag", "samples": 100, "shots": 20}) == \
        "slag-samples100-shots20-nuisance-calibrated"
    assert preset_folder({"preset": "slag", "seed": 3, "nuisance": "none"}) == "slag-seed3"
    assert preset_folder({"preset": "slag", "instrument": "trcsl-b"}) == \
        "slag-instrumenttrcsl-b-nuisance-calibrated"
    assert preset_folder({"preset": "slag", "path": "mine"}) == "mine"
    # null is the preset's own nuisance, as the simulator reads it
    assert preset_folder({"preset": "slag", "nuisance": None}) == preset_folder({"preset": "slag"})
    assert preset_folder({"preset": "slag", "nuisance": {"heterogeneity": 0.1}}).startswith("slag-nuisance-")


def test_bad_spec_names_the_field():
    with pytest.raises(InputError, match=r"data.dataset: unknown field\(s\) \['sample'\]"):
        preset_folder({"preset": "slag", "sample": 3})
    with pytest.raises(InputError, match="unknown preset 'granite'"):
        preset_folder({"preset": "granite"})
    with pytest.raises(InputError, match="data.dataset must be a directory"):
        resolve_dataset(42)


def test_legacy_names_are_the_old_simulate_and_plot_folders():
    assert legacy_folders({"preset": "slag", "shots": 5}) == ["slag", "slag-shots5"]
    assert legacy_folders({"preset": "slag", "samples": 3, "nuisance": "none"}) == ["slag"]
    assert legacy_folders({"preset": "slag", "samples": 3}) == ["slag", "slag-samples3"]
    assert legacy_folders({"preset": "slag", "path": "mine"}) == []


def test_simulate_writes_the_folder_training_reads(tmp_path):
    """``saca-lab simulate --preset`` and ``data.dataset: {preset: ...}`` share one folder."""
    root = tmp_path / "data"
    code = main(["simulate", "--preset", "carbon-steel", "--samples", "2", "--shots", "1",
                 "--jobs", "1", "--quiet", "--data-root", str(root)])
    assert code == 0
    assert _folders(root) == [preset_folder(SPEC)]
    ds = resolve_dataset(SPEC, root, progress=False)
    assert ds.path == root / preset_folder(SPEC)
    assert _folders(root) == [preset_folder(SPEC)]  # reused, not generated again


def test_an_old_folder_is_read_only_when_it_holds_the_same_dataset(tmp_path):
    from saca_lab.spectra.simulate import simulate_dataset

    root = tmp_path / "data"
    # what ``saca-lab simulate --preset carbon-steel --samples 2 --shots 1`` used to write
    simulate_dataset(preset_simulation(SPEC), root / "carbon-steel", n_jobs=1, progress=False)
    assert resolve_dataset(SPEC, root, progress=False).path == root / "carbon-steel"
    assert _folders(root) == ["carbon-steel"]
    # another seed is another dataset: the old folder is left alone and the new one generated
    other = {**SPEC, "seed": 5}
    ds = resolve_dataset(other, root, n_jobs=1, progress=False)
    assert ds.path == root / preset_folder(other)
    assert _folders(root) == sorted(["carbon-steel", preset_folder(other)])
