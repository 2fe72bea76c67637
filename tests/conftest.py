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
