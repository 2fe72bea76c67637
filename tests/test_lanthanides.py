"""Nd and Eu (and the other heavy lanthanides) simulate: libskit's level list is completed.

libskit 0.2 raised ``IndexError: unordered_map::at`` for any composition with Nd or Eu because
the NIST level list it ships has no "Nd VI" / "Eu VI" level (see ``plasma.MISSING_TOP_STAGE_G``).
The planned fallback line model was not needed: ``plasma.line_database`` adds the missing ground
levels, so libskit itself computes these lines. These tests guard that fix.
"""

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("libskit")

from saca_lab.chemistry import fill_balance  # noqa: E402
from saca_lab.spectra import plasma  # noqa: E402
from saca_lab.spectra.instruments import get_instrument  # noqa: E402
from saca_lab.spectra.matrices import get_matrix  # noqa: E402
from saca_lab.spectra.simulate import simulate_shots  # noqa: E402

STAINLESS = {"Cr": 18.0, "Ni": 9.0, "Mn": 1.2, "Si": 0.5, "Mo": 0.3, "C": 0.04}
# Strongest lines in 300-700 nm by libskit's own line list at 9000 K, air wavelengths (nm).
LINES = {
    "Eu": (381.967, 412.973, 420.505),  # Eu II
    "Nd": (401.225, 406.109, 430.358),  # Nd II
}
LANTHANIDES = ("La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm",
               "Yb", "Lu")


def _window(wl, line_nm, half_width=0.35):
    return np.abs(wl - line_nm) < half_width


def test_every_lanthanide_in_the_database_gets_lines():
    import libskit

    db = plasma.line_database()
    in_db = set(pd.read_csv(db.path / "lines_processed_all.csv", usecols=["element"])["element"])
    wl = libskit.air_to_vacuum(np.linspace(380.0, 440.0, 601))
    for el in (e for e in LANTHANIDES if e in in_db):
        model = libskit.LTEModel({"Fe": 0.999, el: 0.001}, 9000.0, 5e22, 8e-4)
        assert any(name.split()[0] == el for name, *_ in model.get_lines(wl)), el
    # The patch only adds what is missing, so applying it again changes nothing.
    assert plasma._add_missing_levels(db.path / "levels_processed.csv") == []


def test_nd_eu_stainless_simulates_and_shows_the_lines():
    wl, ref = simulate_shots(STAINLESS, instrument="saca", matrix="stainless-spark", n_shots=2)
    wl, shots = simulate_shots({**STAINLESS, "Nd": 0.5, "Eu": 0.5}, instrument="saca",
                               matrix="stainless-spark", n_shots=2)
    assert shots.shape == (2, 4001) and np.isfinite(shots).all()
    # Same seed, so temperature and ablated mass match: the difference is the rare earths' lines.
    diff = shots.mean(axis=0) - ref.mean(axis=0)
    # Nd II 406.11 and 430.36 sit on Fe lines and are checked noise-free below.
    for line in (*LINES["Eu"], LINES["Nd"][0]):
        w = _window(wl, line)
        assert abs(wl[w][np.argmax(diff[w])] - line) <= 0.1, line
        assert diff[w].max() > 5 * np.std(diff[(wl > 640) & (wl < 690)]), line


def test_lines_at_the_right_place_and_growing_with_concentration():
    inst = get_instrument("saca")
    state = get_matrix("stainless-spark").state_at(9000.0)
    wl = inst.wavelengths()
    ref = plasma.emission(fill_balance(STAINLESS, "Fe"), state, inst)
    net = []
    for c in (0.05, 0.2, 0.5):
        comp = fill_balance({**STAINLESS, "Nd": c, "Eu": c}, "Fe")
        diff = plasma.emission(comp, state, inst) - ref
        row = []
        for line in (*LINES["Eu"], *LINES["Nd"]):
            w = _window(wl, line)
            assert abs(wl[w][np.argmax(diff[w])] - line) <= 0.1, (c, line)
            row.append(diff[w].max())
        net.append(row)
    net = np.asarray(net)
    assert np.all(net > 0) and np.all(np.diff(net, axis=0) > 0)


def test_element_shares_cover_nd_and_eu():
    inst = get_instrument("saca")
    state = get_matrix("stainless-spark").state_at(9000.0)
    comp = fill_balance({**STAINLESS, "Nd": 0.5, "Eu": 0.5}, "Fe")
    elements, shares = plasma.element_shares(comp, state, inst)
    wl = inst.wavelengths()
    assert {"Nd", "Eu"} <= set(elements)
    # Eu II 412.97 and Nd II 401.23 are clear of the Fe lines, so the rare earth dominates there.
    assert shares[elements.index("Eu"), np.argmin(np.abs(wl - 412.973))] > 0.5
    assert shares[elements.index("Nd"), np.argmin(np.abs(wl - 401.225))] > 0.5
