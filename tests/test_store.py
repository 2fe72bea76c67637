import json

import numpy as np
import pytest

from saca_lab.data.store import DatasetWriter, open_dataset, write_dataset
from saca_lab.data.table import SpectralTable
from saca_lab.errors import InputError


def _table(n=4, shots=3, p=50):
    rng = np.random.default_rng(0)
    return SpectralTable(np.linspace(300, 400, p), rng.random((n, shots, p)).astype(np.float32),
                         [f"s{i}" for i in range(n)], {"Mn": rng.random(n), "SiO2": rng.random(n)},
                         source="unit")


def test_round_trip_is_lazy_and_exact(tmp_path):
    t = _table()
    ds = open_dataset(write_dataset(t, tmp_path / "d", provenance={"kind": "test"}))
    assert isinstance(ds.spectra, np.memmap)
    np.testing.assert_array_equal(ds.spectra, t.spectra)
    np.testing.assert_array_equal(ds.wavelengths, t.wavelengths)
    assert ds.sample_ids == t.sample_ids
    np.testing.assert_allclose(ds.targets["Mn"], t.targets["Mn"], rtol=1e-8)
    assert ds.manifest["provenance"]["kind"] == "test"
    assert set(ds.manifest["sha256"]) >= {"spectra.npy", "wavelengths.npy", "targets.csv"}
    ds.verify()


def test_corruption_is_detected(tmp_path):
    path = write_dataset(_table(), tmp_path / "d", provenance={})
    with open(path / "spectra.npy", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x00\x80\x7f")
    with pytest.raises(InputError, match="checksum"):
        open_dataset(path).verify()


def test_interrupted_write_leaves_nothing(tmp_path):
    t = _table()
    with pytest.raises(RuntimeError):
        with DatasetWriter(tmp_path / "d", t.wavelengths, 4, 3) as w:
            w.append(t.spectra[:2])
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_incomplete_write_refused(tmp_path):
    t = _table()
    with DatasetWriter(tmp_path / "d", t.wavelengths, 4, 3) as w:
        w.append(t.spectra[:2])
        w.add_table("targets", t.sample_ids, {})
        with pytest.raises(ValueError, match="2 of 4"):
            w.close({})
    assert not (tmp_path / "d").exists()
    assert list(tmp_path.iterdir()) == []


def test_existing_dataset_not_overwritten_by_default(tmp_path):
    write_dataset(_table(), tmp_path / "d", provenance={})
    with pytest.raises(InputError, match="already exists"):
        write_dataset(_table(), tmp_path / "d", provenance={})
    write_dataset(_table(n=2), tmp_path / "d", provenance={}, overwrite=True)
    assert open_dataset(tmp_path / "d").shape == (2, 3, 50)


def test_not_a_dataset(tmp_path):
    with pytest.raises(InputError, match="not a saca-lab dataset"):
        open_dataset(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(InputError, match="schema version"):
        open_dataset(tmp_path)
