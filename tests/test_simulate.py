"""The simulator: determinism, layout, provenance, matrix effects, backgrounds, shot scatter."""

import hashlib

import numpy as np
import pytest

from saca_lab.errors import InputError
from saca_lab.spectra.instruments import get_instrument
from saca_lab.spectra.lines import line_rsd, net_line_intensity
from saca_lab.spectra.matrices import get_matrix
from saca_lab.spectra.simulate import preset_config, simulate_dataset, simulate_shots


def _sha(path):
    return hashlib.sha256((path / "spectra.npy").read_bytes()).hexdigest()


def test_instrument_grids_match_the_papers():
    wl = get_instrument("trcsl").wavelengths()
    assert wl.size == 16375 and wl[0] == pytest.approx(216.589) and wl[-1] == pytest.approx(942.568)
    assert np.all(np.diff(wl) > 0)
    wl = get_instrument("saca").wavelengths()
    assert wl.size == 4001 and np.allclose(np.diff(wl), 0.1)


def test_channel_seams_are_visible_in_the_response():
    inst = get_instrument("trcsl")
    r, ch, dark = inst.response(), inst.channel_index(), inst.dark_offsets()
    for seam in np.flatnonzero(np.diff(ch)):
        # Response dips towards both edges and the detector offset steps across the seam.
        assert r[seam] < 0.8 * r[seam - 400] and r[seam + 1] < 0.8 * r[seam + 400]
        assert abs(dark[seam + 1] - dark[seam]) > 5


def test_same_seed_is_byte_identical_and_jobs_do_not_matter(tmp_path):
    cfg = preset_config("carbon-steel", n_samples=2, n_shots=4, seed=11)
    a = simulate_dataset(cfg, tmp_path / "a", n_jobs=1, progress=False)
    b = simulate_dataset(cfg, tmp_path / "b", n_jobs=2, progress=False)
    assert _sha(a.path) == _sha(b.path)
    assert a.manifest["sha256"]["targets.csv"] == b.manifest["sha256"]["targets.csv"]
    c = simulate_dataset(preset_config("carbon-steel", n_samples=2, n_shots=4, seed=12),
                         tmp_path / "c", n_jobs=1, progress=False)
    assert _sha(a.path) != _sha(c.path)


def test_dataset_layout_and_provenance(tiny_steel):
    ds = tiny_steel
    assert ds.shape == (3, 40, 16375)
    assert ds.spectra.dtype == np.float32 and np.isfinite(ds.spectra).all()
    prov = ds.provenance
    assert prov["seed"] == 7 and prov["generator_version"] and prov["libskit_version"]
    assert prov["matrix"]["temperature"] > 0 and prov["instrument"]["channels"]
    # Every sample's composition closes to 100 % with Fe as the balance.
    totals = sum(ds.targets.values())
    np.testing.assert_allclose(totals, 100.0, atol=1e-6)
    # the design covers the preset's ranges; the labels are reference analyses of it (the
    # calibrated nuisance's reference error), a few % off
    bulk = ds.table("bulk_targets")
    for el, (lo, hi) in {"C": (0.05, 1.0), "Mn": (0.3, 1.6), "Cu": (0.02, 0.5)}.items():
        assert np.all((bulk[el] >= lo) & (bulk[el] <= hi))
        np.testing.assert_allclose(ds.targets[el], bulk[el], rtol=0.3)
    assert ds.array("shot_temperature").shape == (3, 40)
    assert set(ds.table("plasma")) >= {"temperature_K", "electron_density_m3", "length_m"}


def test_cached_dataset_is_reused_and_conflicts_refused(tiny_steel):
    cfg = preset_config("carbon-steel", n_samples=3, n_shots=40, seed=7)
    before = (tiny_steel.path / "manifest.json").stat().st_mtime_ns
    again = simulate_dataset(cfg, tiny_steel.path, progress=False)
    assert (again.path / "manifest.json").stat().st_mtime_ns == before
    with pytest.raises(InputError, match="different dataset"):
        simulate_dataset(preset_config("carbon-steel", n_samples=3, n_shots=40, seed=8),
                         tiny_steel.path, progress=False)


def test_slag_design_is_oxides_with_o_balance(tiny_slag):
    design = tiny_slag.table("design")
    assert {"CaO", "SiO2", "FeO", "MnO", "Cr2O3", "V2O5", "C", "Cu"} <= set(design)
    np.testing.assert_allclose(sum(design.values()), 100.0, atol=1e-6)
    np.testing.assert_allclose(sum(tiny_slag.targets.values()), 100.0, atol=1e-6)
    assert np.all(tiny_slag.targets["O"] > 25)


def test_matrix_effect_same_mn_different_intensity():
    mn_line = 403.076
    steel = {"Mn": 1.0, "Si": 0.3, "C": 0.3}
    slag = {"CaO": 45.0, "SiO2": 20.0, "FeO": 20.0, "MgO": 8.0, "Al2O3": 5.7, "Mn": 1.0}
    wl, a = simulate_shots(steel, matrix="steel", n_shots=20)
    _, b = simulate_shots(slag, matrix="slag", n_shots=20)
    ia = net_line_intensity(wl, a, mn_line).mean()
    ib = net_line_intensity(wl, b, mn_line).mean()
    assert ia > 0 and ib > 0
    assert abs(np.log(ia / ib)) > np.log(1.3)
    assert get_matrix("slag").temperature != get_matrix("steel").temperature


def _band(wl, y, lo, hi):
    return np.median(y[(wl > lo) & (wl < hi)])


def test_matrix_backgrounds_where_the_paper_shows_them(tiny_steel, tiny_slag):
    wl = tiny_slag.wavelengths
    slag = np.asarray(tiny_slag.spectra[0], dtype=np.float64).mean(0)
    steel = np.asarray(tiny_steel.spectra[0], dtype=np.float64).mean(0)
    # Slag: an arch at 600-650 nm above its surroundings; steel: a shelf over 500-600 nm.
    assert _band(wl, slag, 615, 640) > 2 * _band(wl, slag, 680, 720)
    assert _band(wl, steel, 520, 580) > 3 * _band(wl, steel, 455, 480)
    assert _band(wl, steel, 520, 580) > 3 * _band(wl, steel, 640, 700)


def test_shot_scatter_like_trcsl_fig13():
    comp = {"C": 0.4, "Mn": 0.8, "Cr": 0.6, "Cu": 0.03, "Si": 0.3, "Ni": 0.1}
    wl, shots = simulate_shots(comp, matrix="steel", n_shots=120, seed=3)
    mn = [line_rsd(wl, shots, x) for x in (403.076, 403.307, 404.136, 407.028)]
    cr = [line_rsd(wl, shots, x) for x in (425.435, 427.480, 428.972, 357.869)]
    cu = [line_rsd(wl, shots, x) for x in (327.396, 510.554)]
    assert 0.04 <= np.median(mn) <= 0.09
    assert 0.04 <= np.median(cr) <= 0.09
    assert min(cu) > np.median(mn + cr)


def test_stainless_rare_earths_skew_low():
    cfg = preset_config("stainless", n_samples=200, n_shots=1)
    for el in ("La", "Ce", "Nd", "Pr", "Sm", "Eu"):
        v = cfg.design[el]
        assert v.min() >= 0 and v.max() <= 0.5
        assert np.mean(v < 0.1) > 0.4
    assert cfg.instrument.name == "saca"


def test_bad_preset_arguments():
    with pytest.raises(InputError, match="unknown preset"):
        preset_config("granite")
    with pytest.raises(InputError, match=">= 1"):
        preset_config("slag", n_samples=0)
    with pytest.raises(InputError, match="cannot be simulated"):
        simulate_shots({"H": 1.0, "C": 5.0})
