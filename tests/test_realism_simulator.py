"""Realism of the simulator as the presets use it (channels, backgrounds, noise) on real BHVO-2."""

import pytest

from saca_lab.spectra.realism_report import score_files

REFERENCE_FILES = ("csa_bhvo2_1000pulse", "chemcam_bhvo2_loc1", "supercam_1545mm_loc1")


@pytest.fixture(scope="module")
def scores(real_data, tmp_path_factory):
    paths = [real_data / "bhvo2" / f"{name}_spectrum.csv" for name in REFERENCE_FILES]
    out = tmp_path_factory.mktemp("realism")
    return dict(score_files(paths, simulator="preset", out_dir=out)), out


@pytest.mark.parametrize("name", REFERENCE_FILES)
def test_preset_simulator_matches_measured_peaks(scores, name):
    score = scores[0][f"{name}_spectrum"]
    assert score.recall >= 0.6
    assert score.overlap >= 0.5
    assert abs(score.offset_nm) <= 0.3


def test_overlays_written(scores):
    out = scores[1]
    for name in REFERENCE_FILES:
        assert (out / f"overlay_{name}_spectrum.png").stat().st_size > 10_000


def test_wrong_composition_fails(real_data):
    paths = [real_data / "bhvo2" / f"{name}_spectrum.csv" for name in REFERENCE_FILES]
    for _, score in score_files(paths, composition={"Cu": 100.0}, simulator="preset"):
        assert score.recall <= 0.1
