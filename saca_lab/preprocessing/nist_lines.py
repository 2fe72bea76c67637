"""NIST's lines through libskit and the estimate of which of them a matrix hides.

The line list is libskit's bundled NIST table (air wavelengths); a line's strength is estimated
as ``g_k A_ki exp(-E_k / kT)`` times the element's abundance (LTE, one temperature), the rule
:func:`saca_lab.preprocessing.line_selection.strongest_lines` chooses lines by and
:func:`~saca_lab.preprocessing.line_selection.usable_windows` re-checks them with.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

# neutral atoms and singly charged ions: the stages whose lines dominate LIBS spectra
_ION_STAGES = (1, 2)


@functools.lru_cache(maxsize=1)
def nist_table() -> Any:
    """libskit's NIST line list with air wavelengths, loaded once per process."""
    import libskit
    import pandas as pd

    table = pd.read_csv(libskit.Database.extended().path / "lines_processed_all.csv")
    table = table[table["sp_num"].isin(_ION_STAGES)]
    table = table.dropna(subset=["ritz_wl_vac(nm)", "Aki(s^-1)", "Ek(eV)", "g_k"])
    table = table[(table["Aki(s^-1)"] > 0) & (table["g_k"] > 0)].copy()
    table["wl_air"] = libskit.vacuum_to_air(table["ritz_wl_vac(nm)"].to_numpy())
    return table


def line_scores(table: Any, temperature_ev: float) -> Any:
    return table["g_k"] * table["Aki(s^-1)"] * np.exp(-table["Ek(eV)"] / temperature_ev)


def element_lines(element: str, wavelengths: np.ndarray) -> Any:
    """NIST lines of ``element`` inside the grid (ValueError if libskit knows none at all)."""
    table = nist_table()
    lines = table[table["element"] == element]
    if lines.empty:
        raise ValueError(f"no NIST lines for element {element!r} in libskit's database.")
    return lines[lines["wl_air"].between(wavelengths[0], wavelengths[-1])]


class MatrixLines:
    """The lines of a matrix's major elements that can hide a line of ``element``.

    One rule for choosing lines (:func:`strongest_lines`) and for checking inherited ones
    (:func:`usable_windows`); see :func:`strongest_lines` for the estimate.
    """

    def __init__(self, element: str, wavelengths: np.ndarray,
                 interferers: Mapping[str, float] | None, temperature_ev: float,
                 blend_points: int, blend_ratio: float, detect_ratio: float) -> None:
        self.wavelengths = wavelengths
        self.blend_points = blend_points
        self.blend_ratio = blend_ratio
        # interfering lines inside the grid: grid position, estimated intensity per target atom
        self.pos = np.empty(0)
        self.intensity = np.empty(0)
        if interferers:
            table = nist_table()
            others = table[table["element"].isin([e for e in interferers if e != element])]
            others = others[others["wl_air"].between(wavelengths[0], wavelengths[-1])]
            abundance = others["element"].map(dict(interferers)).to_numpy(dtype=float)
            self.intensity = abundance * line_scores(others, temperature_ev).to_numpy()
            self.pos = np.interp(others["wl_air"].to_numpy(), wavelengths,
                                 np.arange(wavelengths.size))
        self.floor = detect_ratio * self.intensity.max() if self.intensity.size else 0.0

    def blended(self, line: float, score: float) -> bool:
        """Whether a major element's line within ``blend_points`` outshines ``blend_ratio`` of it."""
        if not self.pos.size:
            return False
        pos = np.interp(line, self.wavelengths, np.arange(self.wavelengths.size))
        near = np.abs(self.pos - pos) <= self.blend_points
        return bool(near.any() and self.intensity[near].max() >= self.blend_ratio * score)

    def why_not(self, line: float, score: float) -> str | None:
        """Why a line of the element is unusable in this matrix, or None when it is usable."""
        if score < self.floor:
            return "undetectable next to the matrix"
        if self.blended(line, score):
            return "blended with a major element's line"
        return None
