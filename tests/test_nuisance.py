"""Nuisance that does not average away (issue 16): reachability, identity at none, each source."""

import dataclasses
import hashlib

import numpy as np
import pytest

from saca_lab.errors import InputError
from saca_lab.spectra.instruments import get_instrument
from saca_lab.spectra.nuisance import (
    CALIBRATED,
    NuisanceLevels,
    SampleNuisance,
    horwitz_rsd,
    nuisance_tag,
    resolve_nuisance,
)
from saca_lab.spectra.plasma import libskit_version
from saca_lab.spectra.simulate import preset_config, simulate_dataset

# sha256 of spectra.npy and targets.csv of preset_config("carbon-steel", n_samples=2, n_shots=3,
# seed=5), written by the generator before the nuisance model existed (numpy 2.4.6, libskit 0.2).
GOLDEN = {"numpy": "2.4.6", "libskit": "0.2",
          "spectra": "c5c78ea7fdc5e3b3499309b5a79146720b12050a1545774f7117452d8268eb4d",
          "targets": "4e1a2f4030c2a09d44e29cb074936a91d8d854353bd1ea506d2b8e29646cb708"}


def _sha(ds) -> str:
    return hashlib.sha256((ds.path / "spectra.npy").read_bytes()).hexdigest()


def _sim(tmp_path, name, nuisance, n=2, shots=3, seed=5):
    cfg = preset_config("carbon-steel", n_samples=n, n_shots=shots, seed=seed, nuisance=nuisance)
    return simulate_dataset(cfg, tmp_path / name, n_jobs=1, progress=False)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return _sim(tmp_path_factory.mktemp("nuisance"), "none", "none")


def test_none_is_todays_generator_byte_for_byte(clean):
    assert "nuisance" not in clean.provenance
    assert "nuisance" not in preset_config("carbon-steel", n_samples=2, seed=5, nuisance="none").describe()
    if (np.__version__, libskit_version()) != (GOLDEN["numpy"], GOLDEN["libskit"]):
        pytest.skip("golden hashes were recorded with other numpy/libskit versions")
    assert _sha(clean) == GOLDEN["spectra"]
    assert clean.manifest["sha256"]["targets.csv"] == GOLDEN["targets"]


def test_zero_levels_run_every_hook_without_changing_a_byte(clean, tmp_path):
    zero = _sim(tmp_path, "zero", {"session_size": 1})
    assert _sha(zero) == _sha(clean)
    assert zero.manifest["sha256"]["targets.csv"] == clean.manifest["sha256"]["targets.csv"]
    # recorded, so a cache never mixes it with `none`
    assert zero.provenance["nuisance"]["levels"]["session_size"] == 1
    assert zero.provenance["config_hash"] != clean.provenance["config_hash"]


def test_session_drift_moves_whole_sessions(clean, tmp_path):
    ds = _sim(tmp_path, "session", {"session_size": 1, "session_gain_rsd": 0.3}, n=2)
    table = ds.table("nuisance")
    inst = get_instrument("trcsl")
    dark = inst.dark_offsets()
    ratio = ((np.asarray(ds.spectra, np.float64).mean(1) - dark)
             / (np.asarray(clean.spectra, np.float64).mean(1) - dark))
    ch = inst.channel_index()
    signal = np.asarray(clean.spectra, np.float64).mean(1) - dark
    for i in range(2):
        for k in range(len(inst.channels)):
            # the brightest tenth of the channel, well above read and photon noise
            sel = (ch == k) & (signal[i] > max(100.0, np.percentile(signal[i, ch == k], 90)))
            assert sel.sum() > 100
            # every bright pixel of a channel scales by that session's channel gain
            assert np.median(ratio[i, sel]) == pytest.approx(table[f"session_gain_ch{k}"][i], rel=0.02)
    assert table["session"].tolist() == [0, 1]
    assert not np.isclose(table["session_gain_ch1"][0], table["session_gain_ch1"][1])


def test_session_wavelength_offset_moves_the_lines_of_a_session(clean, tmp_path):
    ds = _sim(tmp_path, "shift", {"session_size": 1, "session_shift_nm": 0.04})
    shift = ds.table("nuisance")["session_shift_nm"]
    assert np.abs(shift).max() > 0.01  # at least one offset well above the tolerance
    wl, dark = ds.wavelengths, get_instrument("trcsl").dark_offsets()

    def centroid(data, i, line=404.581):  # Fe I, strong in every steel
        y = np.asarray(data.spectra[i], np.float64).mean(0) - dark
        k = int(np.argmin(np.abs(wl - line)))
        sl = slice(k - 3, k + 4)
        return float(np.sum(wl[sl] * y[sl]) / np.sum(y[sl]))

    for i in range(2):
        # y(l) + d y'(l) ~ y(l + d): the line appears d nm lower
        moved = centroid(ds, i) - centroid(clean, i)
        assert moved == pytest.approx(-shift[i], abs=0.3 * abs(shift[i]) + 0.002)


def test_session_draws_are_shared_within_a_session():
    levels = NuisanceLevels(session_size=3, session_gain_rsd=0.1, session_tilt_sd=0.1,
                            session_shift_nm=0.01, session_background_rsd=0.2)
    nz = SampleNuisance(levels, seed=1, n_samples=7, n_channels=3)
    inst = get_instrument("trcsl")
    assert nz.session.tolist() == [0, 0, 0, 1, 1, 1, 2]
    assert nz.instrument(0, inst) == nz.instrument(2, inst)
    assert not np.allclose(nz.instrument(0, inst).response(), nz.instrument(3, inst).response())
    t = nz.table()
    for col in ("session_shift_nm", "session_background_factor", "session_tilt_ch0"):
        assert len(set(t[col][:3])) == 1 and t[col][0] != t[col][3]


def test_reference_noise_changes_labels_not_spectra(clean, tmp_path):
    ds = _sim(tmp_path, "reference", {"reference_horrat": 1.0})
    assert _sha(ds) == _sha(clean)
    bulk = ds.table("bulk_targets")
    for el, v in clean.targets.items():
        np.testing.assert_array_equal(bulk[el], v)
        assert np.all(ds.targets[el] >= 0)
        if el != "Fe":
            assert not np.allclose(ds.targets[el], v)
            # a reference lab's error: a few % at these concentrations, never a different sample
            np.testing.assert_allclose(ds.targets[el], v, rtol=0.35)
    np.testing.assert_allclose(sum(ds.targets.values()), 100.0)


def test_reference_noise_keeps_zeros_and_grows_at_low_concentration():
    nz = SampleNuisance(NuisanceLevels(reference_horrat=1.0), seed=2, n_samples=4000, n_channels=1)
    c = {"Mn": np.full(4000, 1.0), "La": np.where(np.arange(4000) % 2 == 0, 0.0, 0.01),
         "Fe": np.full(4000, 99.0)}
    out = nz.reference_labels(c, "Fe")
    assert np.all(out["La"][::2] == 0.0) and np.all(out["La"][1::2] > 0)
    assert np.all(out["Mn"] >= 0)
    assert np.std(np.log(out["Mn"])) == pytest.approx(0.04, rel=0.1)  # Horwitz: 4 % at 1 %
    assert np.std(np.log(out["La"][1::2])) > 1.5 * np.std(np.log(out["Mn"]))
    assert horwitz_rsd(1.0) == pytest.approx(0.04) and horwitz_rsd(0.0) == 0.0


def test_heterogeneity_changes_spectra_not_labels_and_grows_at_low_concentration(clean, tmp_path):
    ds = _sim(tmp_path, "heterogeneity", {"heterogeneity": 0.05})
    assert _sha(ds) != _sha(clean)
    for el, v in clean.targets.items():
        np.testing.assert_array_equal(ds.targets[el], v)
    nz = SampleNuisance(NuisanceLevels(heterogeneity=0.02), seed=3, n_samples=3000, n_channels=1)
    local = np.array([nz.local_concentration(i, {"Mn": 1.0, "Cu": 0.04}, ["Mn", "Cu"])
                      for i in range(3000)])
    sd = np.log(local).std(axis=0)
    assert sd[0] == pytest.approx(0.02, rel=0.1) and sd[1] == pytest.approx(0.10, rel=0.1)


def test_sample_plasma_sources_are_recorded_and_applied(clean, tmp_path):
    ds = _sim(tmp_path, "plasma", {"ablated_mass_rsd": 0.2, "electron_density_rsd": 0.2})
    t = ds.table("nuisance")
    assert not np.allclose(t["ablated_mass_factor"], 1.0)
    np.testing.assert_allclose(ds.array("shot_mass"),
                               clean.array("shot_mass") * t["ablated_mass_factor"][:, None])
    np.testing.assert_allclose(ds.table("plasma")["electron_density_m3"],
                               clean.table("plasma")["electron_density_m3"] * t["electron_density_factor"])
    np.testing.assert_array_equal(ds.table("plasma")["temperature_K"], clean.table("plasma")["temperature_K"])
    assert _sha(ds) != _sha(clean)


def test_same_seed_same_dataset_other_seed_other_draws(tmp_path):
    levels = {"heterogeneity": 0.03, "ablated_mass_rsd": 0.1, "session_size": 1,
              "session_shift_nm": 0.01, "session_background_rsd": 0.2, "reference_horrat": 0.5}
    a = _sim(tmp_path, "a", levels)
    cfg = preset_config("carbon-steel", n_samples=2, n_shots=3, seed=5, nuisance=levels)
    b = simulate_dataset(cfg, tmp_path / "b", n_jobs=1, progress=False)
    assert _sha(a) == _sha(b)
    assert a.manifest["sha256"]["targets.csv"] == b.manifest["sha256"]["targets.csv"]
    t1 = SampleNuisance(NuisanceLevels(**levels), 5, 2, 3).table()
    t2 = SampleNuisance(NuisanceLevels(**levels), 6, 2, 3).table()
    assert not np.allclose(t1["ablated_mass_factor"], t2["ablated_mass_factor"])


def test_settings_resolve_and_bad_levels_are_named():
    assert resolve_nuisance("none") is None and resolve_nuisance(None) is None
    assert resolve_nuisance("calibrated", "slag") == CALIBRATED["slag"]
    cfg = preset_config("slag", n_samples=2, n_shots=1, nuisance="calibrated")
    assert cfg.describe()["nuisance"] == {"spec": "calibrated", "levels": CALIBRATED["slag"].to_dict()}
    assert cfg.cache_key() != preset_config("slag", n_samples=2, n_shots=1, nuisance="none").cache_key()
    assert nuisance_tag("none") is None and nuisance_tag("calibrated") == "nuisance-calibrated"
    assert nuisance_tag({"heterogeneity": 0.1}) != nuisance_tag({"heterogeneity": 0.2})
    with pytest.raises(InputError, match="nuisance.ablated_mass_rsd"):
        resolve_nuisance({"ablated_mass_rsd": -0.1})
    with pytest.raises(InputError, match="nuisance.session_size"):
        resolve_nuisance({"session_size": 0})
    with pytest.raises(InputError, match="unknown field"):
        resolve_nuisance({"dust": 0.1})
    with pytest.raises(InputError, match="session_shift_nm"):
        resolve_nuisance({"session_shift_nm": 0.2})
    with pytest.raises(InputError, match="no calibrated level"):
        resolve_nuisance("calibrated", "granite")
    with pytest.raises(InputError, match="nuisance must be"):
        resolve_nuisance(3)


def test_dataset_spec_and_command_line_reach_the_nuisance(tmp_path, monkeypatch):
    from saca_lab.datasets.datamodules import resolve_dataset
    from saca_lab.spectra import simulate
    from saca_lab.spectra.nuisance import parse_nuisance_text

    monkeypatch.setattr(simulate, "default_jobs", lambda: 1)  # no worker start-up for 2 samples

    ds = resolve_dataset({"preset": "carbon-steel", "samples": 2, "shots": 1, "nuisance": "calibrated"},
                         data_root=str(tmp_path))
    assert ds.path.name == "carbon-steel-samples2-shots1-nuisance-calibrated"
    assert ds.provenance["nuisance"]["levels"] == CALIBRATED["carbon-steel"].to_dict()
    assert set(ds.table("nuisance")) >= {"session", "ablated_mass_factor", "session_gain_ch0"}
    assert parse_nuisance_text('{"heterogeneity": 0.02}') == {"heterogeneity": 0.02}
    assert parse_nuisance_text("calibrated") == "calibrated"
    with pytest.raises(InputError, match="--nuisance"):
        parse_nuisance_text("{heterogeneity: 0.02")


def test_command_line_nuisance(tmp_path, capsys):
    from saca_lab.cli import main
    from saca_lab.data.store import open_dataset

    out = tmp_path / "cs"
    assert main(["simulate", "--preset", "carbon-steel", "--samples", "1", "--shots", "1", "--out",
                 str(out), "--jobs", "1", "--quiet", "--nuisance", '{"reference_horrat": 0.5}']) == 0
    assert open_dataset(out).provenance["nuisance"] == {
        "spec": "explicit", "levels": NuisanceLevels(reference_horrat=0.5).to_dict()}
    bad = [["--preset", "slag", "--nuisance", "{oops", "--out", str(tmp_path / "a")],
           ["--preset", "slag", "--nuisance", "loud", "--out", str(tmp_path / "b")],
           ["--composition", "Fe=99,Mn=1", "--nuisance", "calibrated", "--out", str(tmp_path / "c.csv")]]
    for argv in bad:
        assert main(["simulate", *argv]) == 2
        assert "nuisance" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in ("a", "b", "c.csv"))


def test_the_papers_presets_default_to_their_calibrated_level():
    from saca_lab.spectra.presets import PRESETS

    for name in ("slag", "carbon-steel", "stainless"):
        assert PRESETS[name].nuisance == "calibrated"
        cfg = preset_config(name, n_samples=2, n_shots=1)
        assert cfg.describe()["nuisance"] == {"spec": "calibrated", "levels": CALIBRATED[name].to_dict()}
    # spark OES: far smaller plasma and session effects than the LIBS presets
    assert CALIBRATED["stainless"].ablated_mass_rsd < CALIBRATED["slag"].ablated_mass_rsd / 3
    assert CALIBRATED["stainless"].session_gain_rsd < CALIBRATED["slag"].session_gain_rsd / 3


def test_default_and_none_caches_never_mix_and_a_new_calibration_regenerates(tmp_path, monkeypatch):
    from saca_lab.datasets.datamodules import resolve_dataset
    from saca_lab.spectra import nuisance, simulate

    monkeypatch.setattr(simulate, "default_jobs", lambda: 1)
    spec = {"preset": "carbon-steel", "samples": 2, "shots": 1, "seed": 5}
    clean = resolve_dataset({**spec, "nuisance": "none"}, data_root=str(tmp_path))
    default = resolve_dataset(spec, data_root=str(tmp_path))
    assert clean.path.name == "carbon-steel-samples2-shots1-seed5"
    assert default.path.name == "carbon-steel-samples2-shots1-seed5-nuisance-calibrated"
    assert "nuisance" not in clean.provenance and default.provenance["nuisance"]["spec"] == "calibrated"
    # a new calibration replaces the calibrated cache (as a new generator version does) ...
    original = CALIBRATED["carbon-steel"]
    moved = dataclasses.replace(original, reference_horrat=0.9)
    monkeypatch.setitem(nuisance.CALIBRATED, "carbon-steel", moved)
    again = resolve_dataset(spec, data_root=str(tmp_path))
    assert again.path == default.path
    assert again.provenance["nuisance"]["levels"] == moved.to_dict()
    # ... and never the `none` cache, which still holds today's spectra
    assert resolve_dataset({**spec, "nuisance": "none"}, data_root=str(tmp_path)).provenance[
        "config_hash"] == clean.provenance["config_hash"]
    # a folder the user named is not replaced silently
    named = resolve_dataset({**spec, "path": "mine"}, data_root=str(tmp_path))
    monkeypatch.setitem(nuisance.CALIBRATED, "carbon-steel", original)
    with pytest.raises(InputError, match="different dataset"):
        resolve_dataset({**spec, "path": "mine"}, data_root=str(tmp_path))
    assert named.provenance["nuisance"]["levels"] == moved.to_dict()
