"""Line windows from NIST (issue 11 section 3): blend and detection checks, dropped targets."""

from __future__ import annotations

import numpy as np
import pytest

from saca_lab.chemistry import to_elements
from saca_lab.errors import InputError
from saca_lab.preprocessing.line_selection import (
    TRCSL_LINES,
    matrix_composition,
    select_lines,
    strongest_lines,
    target_element,
    usable_windows,
)

TRCSL_GRID = np.linspace(216.589, 942.568, 16375)
# a carbon steel in the middle of the preset's ranges, mass %
STEEL = {"C": 0.6, "Cu": 0.3, "Mn": 1.2, "Cr": 1.0, "Si": 0.3}


def test_paper_lines_are_the_printed_ones_and_bad_sources_are_input_errors():
    sel = select_lines("paper", ["Mn"], TRCSL_GRID)
    assert sel.lines == tuple(line.wavelength_nm for line in TRCSL_LINES)
    assert sel.elements[0] == "Mn" and not sel.dropped
    with pytest.raises(InputError, match="data.lines"):
        select_lines("nsit", ["Mn"], TRCSL_GRID)
    with pytest.raises(InputError, match="FeCr"):
        target_element("FeCr")
    assert target_element("Cr2O3") == "Cr" and target_element("MnO") == "Mn"


def test_blend_with_a_major_element_removes_the_line():
    # C I 247.856 nm is C's strongest line in the grid, and Fe II 247.857 nm sits on it
    assert strongest_lines("C", TRCSL_GRID, n_lines=1)[0] == pytest.approx(247.856, abs=1e-3)
    iron_per_carbon = (97 / 55.845) / (0.6 / 12.011)
    lines = strongest_lines("C", TRCSL_GRID, n_lines=3, interferers={"Fe": iron_per_carbon},
                            detect_ratio=0.0)
    assert not np.any(np.abs(lines - 247.856) < 0.01)
    # without a blend partner of weight the line stays
    lines = strongest_lines("C", TRCSL_GRID, n_lines=3, interferers={"Fe": 1e-6}, detect_ratio=0.0)
    assert np.any(np.abs(lines - 247.856) < 0.01)


def test_element_without_a_usable_line_is_dropped_with_the_reason():
    grid = np.linspace(247.0, 249.0, 400)  # C's only line here is the Fe-blended 247.856 nm
    sel = select_lines("nist", ["C", "Fe"], grid, {"Fe": 97.0, "C": 0.6})
    assert "C" in sel.dropped and "Fe" in sel.dropped["C"]
    assert set(sel.elements) == {"Fe"} and sel.majors == ("Fe",)
    with pytest.raises(InputError, match="no target has a usable line"):
        select_lines("nist", ["C"], grid, {"Fe": 97.0, "C": 0.6})


def test_nist_windows_hold_a_line_of_their_element_in_simulated_spectra():
    """Every NIST window of an element shows a peak that goes when the element is removed."""
    from saca_lab.spectra.simulate import simulate_spectrum

    wl, full = simulate_spectrum(STEEL, n_shots=2, matrix="steel", seed=3)
    sel = select_lines("nist", list(STEEL)[:4], wl, {"Fe": 100 - sum(STEEL.values()), **STEEL})
    # C's lines are too weak next to iron's (or blended with it): C is left out, as the issue expects
    assert "C" in sel.dropped
    assert set(sel.elements) == {"Cu", "Mn", "Cr"}
    for element in ("Cu", "Mn", "Cr"):
        _, without = simulate_spectrum({k: v for k, v in STEEL.items() if k != element},
                                       n_shots=2, matrix="steel", seed=3)
        diff = full - without
        noise = 1.4826 * np.median(np.abs(diff - np.median(diff)))
        for line in np.asarray(sel.lines)[np.asarray(sel.elements) == element]:
            centre = int(np.argmin(np.abs(wl - line)))
            peak = diff[centre - 2:centre + 3].max()
            assert peak > 3 * noise, f"{element} {line:.3f} nm: {peak:.3g} vs noise {noise:.3g}"


def test_data_module_resolves_nist_lines_on_training_samples_and_drops_lineless_targets(
        tiny_steel, capsys):
    from saca_lab.datasets.datamodules import SpectraDataModule

    dm = SpectraDataModule(tiny_steel, targets=["C", "Cu", "Mn", "Cr"], input_kind="lines_1d",
                           lines="nist", split={"train": 0.67, "val": 0.0, "test": 0.33, "seed": 0})
    dm.prepare_data()
    dm.setup()
    assert "C is left out of the targets" in capsys.readouterr().err
    assert dm.target_names == ["Cu", "Mn", "Cr"] and dm.y_samples.shape[1] == 3
    sel = dm.line_selection
    assert "Fe" in sel.majors and set(sel.elements) == {"Cu", "Mn", "Cr"}
    # the resolved wavelengths travel with the feature spec (checkpoints, inference)
    assert dm.feature_spec.lines == sel.lines
    assert dm.input_shape == (11 * len(sel.lines),)
    paper = SpectraDataModule(tiny_steel, targets=["C", "Mn"], input_kind="lines_1d", lines="paper")
    paper.prepare_data()
    paper.setup()
    assert paper.target_names == ["C", "Mn"] and paper.input_shape == (11 * len(TRCSL_LINES),)


# TrCSL slag mean composition (mass %) and the windows nist chooses on it for C, Cu, Mn, Cr
SLAG = {"Al": 2.3, "C": 0.8, "Ca": 30.5, "Cr": 1.4, "Cu": 0.1, "Fe": 14.8, "Mg": 4.3, "Mn": 3.5,
        "O": 33.3, "P": 0.75, "Si": 6.8, "Ti": 0.7, "V": 0.9}
CARBON_STEEL = {"Fe": 96.9, "C": 0.55, "Cr": 0.62, "Cu": 0.27, "Mn": 0.97, "Ni": 0.25, "Si": 0.35}


def test_inherited_slag_windows_are_checked_against_the_steel_matrix():
    from saca_lab.spectra.instruments import get_instrument

    grid = get_instrument("trcsl").wavelengths()  # its channels are not one even grid
    targets = ["C", "Cu", "Mn", "Cr"]
    slag = select_lines("nist", targets, grid, SLAG)
    assert "C" in slag.elements  # usable in slag ...
    usable, dropped = usable_windows(slag.lines, targets, grid, CARBON_STEEL)
    assert "C" in dropped and "C" not in usable  # ... undetectable next to ~97 % Fe
    assert "Fe" in dropped["C"]
    assert set(usable) == {"Cu", "Mn", "Cr"}
    # the same rule as choosing lines on steel: every survivor passes strongest_lines' check
    for element, lines in usable.items():
        steel = strongest_lines(element, grid, n_lines=50, interferers=_per_atom(element))
        assert set(lines) <= set(steel)
    # Cu 327.40 nm, next to Fe 327.35 nm, reads no Cu in steel
    cu = [w for w, e in zip(slag.lines, slag.elements, strict=True) if e == "Cu"]
    assert any(abs(w - 327.40) < 0.01 for w in cu)
    assert not any(abs(w - 327.40) < 0.01 for w in usable["Cu"])
    # a window holding no NIST line of the element (the paper's C 414.6 nm) reads nothing
    assert usable_windows([414.626], ["C"], grid, SLAG)[0] == {}


def _per_atom(element: str) -> dict[str, float]:
    """Fe atoms per atom of ``element`` in CARBON_STEEL (its only major element)."""
    from saca_lab.chemistry import ATOMIC_MASS

    return {"Fe": CARBON_STEEL["Fe"] / ATOMIC_MASS["Fe"]
            / (CARBON_STEEL[element] / ATOMIC_MASS[element])}


def test_oxide_columns_count_as_their_elements_for_the_blend_check():
    comp = matrix_composition({"SiO2": 40.0, "CaO": 40.0, "MnO": 5.0, "LOI": 2.0, "x": float("nan")})
    assert comp["Si"] == pytest.approx(40 * 28.085 / 60.083, rel=1e-3)
    assert comp["Mn"] == pytest.approx(5 * 54.938 / 70.937, rel=1e-3) and "LOI" not in comp
    oxide = select_lines("nist", ["MnO"], TRCSL_GRID, {"SiO2": 40.0, "CaO": 40.0, "MnO": 5.0})
    element = select_lines("nist", ["Mn"], TRCSL_GRID, to_elements({"SiO2": 40.0, "CaO": 40.0,
                                                                    "MnO": 5.0}))
    assert {"Si", "Ca"} <= set(oxide.majors) and oxide == element


def test_a_matrix_without_a_major_element_warns_that_no_blend_is_checked():
    with pytest.warns(UserWarning, match="no line is checked for blends"):
        sel = select_lines("nist", ["Mn"], TRCSL_GRID, {"Mn": 0.5, "Cr": 0.2})
    assert sel.majors == ()


def _copy_with_other_test_samples(ds, out, test, scale: float):
    """The dataset with the test samples' targets and spectra replaced."""
    from saca_lab.data.store import DatasetWriter

    spectra = np.array(ds.spectra, dtype=np.float32)
    spectra[test] *= scale
    targets = {k: np.array(v, dtype=float) for k, v in ds.targets.items()}
    targets["Fe"][test], targets["Cr"][test] = 20.0, 70.0  # a chromium matrix
    with DatasetWriter(out, ds.wavelengths, *spectra.shape[:2]) as writer:
        writer.append(spectra)
        writer.add_table("targets", ds.sample_ids, targets)
        return writer.close({"test": "test samples replaced"})


def test_line_choice_ignores_the_test_samples(train_data, tmp_path):
    from saca_lab.data.store import open_dataset
    from saca_lab.datasets.datamodules import SpectraDataModule
    from saca_lab.datasets.splits import make_split

    split = {"train": 0.5, "val": 0.0, "test": 0.5, "seed": 0}
    ds = open_dataset(train_data["carbon-steel"])
    test = make_split(ds.shape[0], split).test
    other = open_dataset(_copy_with_other_test_samples(ds, tmp_path / "other", test, 3.0))
    chosen = []
    for data in (ds, other):
        dm = SpectraDataModule(data, targets=["C", "Cu", "Mn", "Cr"], input_kind="lines_1d",
                               lines="nist", split=split, shots="average")
        dm.setup()
        chosen.append((dm.feature_spec.lines, dm.target_names, dm.line_selection.majors))
    assert chosen[0] == chosen[1]
    # the change is one a choice reading every sample would see: Cr becomes a major element
    every = {k: float(np.mean(v)) for k, v in other.targets.items()}
    assert "Cr" in select_lines("nist", ["Mn"], other.wavelengths, every).majors
    assert "Cr" not in chosen[1][2]
