"""Shared fixtures: small simulated datasets, cached per session, and paths to real data."""

from __future__ import annotations

from pathlib import Path

import pytest

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip(f"real data not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def tiny_steel(tmp_path_factory):
    """A 3-sample, 40-shot carbon-steel dataset on the full TrCSL instrument."""
    from saca_lab.spectra.simulate import preset_config, simulate_dataset

    out = tmp_path_factory.mktemp("data") / "carbon-steel"
    return simulate_dataset(preset_config("carbon-steel", n_samples=3, n_shots=40, seed=7), out,
                            n_jobs=1, progress=False)


@pytest.fixture(scope="session")
def tiny_slag(tmp_path_factory):
    from saca_lab.spectra.simulate import preset_config, simulate_dataset

    out = tmp_path_factory.mktemp("data") / "slag"
    return simulate_dataset(preset_config("slag", n_samples=3, n_shots=10, seed=7), out,
                            n_jobs=1, progress=False)


@pytest.fixture(scope="session")
def train_data(tmp_path_factory):
    """Tiny slag and carbon-steel datasets for training tests."""
    from saca_lab.spectra.simulate import preset_config, simulate_dataset

    root = tmp_path_factory.mktemp("train-data")
    specs = {"slag": (8, 10), "carbon-steel": (6, 10)}
    return {name: simulate_dataset(preset_config(name, n_samples=n, n_shots=s, seed=1), root / name,
                                   n_jobs=1, progress=False).path
            for name, (n, s) in specs.items()}


@pytest.fixture
def mlflow_tmp(tmp_path, monkeypatch):
    """A private MLflow store: runs and artifacts stay inside the test's tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    return tmp_path


@pytest.fixture(scope="session")
def stainless_data(tmp_path_factory):
    """A tiny SACA-like stainless dataset (saca instrument, rare earths)."""
    from saca_lab.spectra.simulate import preset_config, simulate_dataset

    out = tmp_path_factory.mktemp("train-data") / "stainless"
    return simulate_dataset(preset_config("stainless", n_samples=8, n_shots=3, seed=1), out,
                            n_jobs=1, progress=False).path
