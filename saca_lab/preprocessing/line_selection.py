"""Which emission lines to read: the TrCSL paper's, or NIST's strongest unblended ones.

Lines come from the TrCSL paper (:data:`TRCSL_LINES`) or from NIST via libskit, the strongest
lines of each element that are not blended with a line of a major element of the matrix
(:func:`select_lines`, :func:`strongest_lines`); :func:`usable_windows` re-checks chosen
windows on another matrix (transfer). :class:`~saca_lab.preprocessing.windows.LineWindows`
cuts the spectra around them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from saca_lab.chemistry import ATOMIC_MASS, is_species, parse_formula, to_elements
from saca_lab.config import DEFAULTS
from saca_lab.errors import InputError
from saca_lab.preprocessing.nist_lines import (
    MatrixLines,
    element_lines,
    line_scores,
)
from saca_lab.preprocessing.paper_lines import TRCSL_LINES, CharacteristicLine  # noqa: F401  (public here too)

#: Where the 1D line windows come from (``data.lines``): the strongest unblended NIST lines of
#: each target element, or the lines printed in the TrCSL paper (:data:`TRCSL_LINES`).
LINE_SOURCES = ("nist", "paper")
#: An element with at least this mean mass % in a matrix is a major element: its lines are
#: checked for blends with every target line.
MAJOR_PCT = 1.0
#: Grid points within which two line centres count as one (unresolved) peak; on the TrCSL
#: instrument 2 points are 0.05-0.12 nm, about its resolution (0.075-0.17 nm FWHM).
BLEND_POINTS = 2
#: A target line is blended when a major element's line within BLEND_POINTS is estimated at
#: least this fraction of its intensity.
BLEND_RATIO = 0.1
#: A target line estimated below this fraction of the matrix's brightest line is under one count
#: of a 16-bit detector whose range the brightest line fills: not detectable (2 ** -16).
DETECT_RATIO = 2.0**-16
#: Lines per element of ``data.lines: nist`` (the default lives in the config's DEFAULTS).
LINES_PER_ELEMENT: int = DEFAULTS["data"]["lines_per_element"]


def strongest_lines(
    element: str,
    wavelengths: np.ndarray,
    n_lines: int = 4,
    temperature_ev: float = 1.0,
    half_width: int = 5,
    interferers: Mapping[str, float] | None = None,
    blend_points: int = BLEND_POINTS,
    blend_ratio: float = BLEND_RATIO,
    detect_ratio: float = DETECT_RATIO,
) -> np.ndarray:
    """The strongest NIST lines of an element whose window fits the wavelength grid.

    Lines of the neutral atom and the singly charged ion are ranked by
    ``g_k * A_ki * exp(-E_k / kT)``, the relative emissivity of lines of one species in
    local thermodynamic equilibrium (no Saha factor between the two stages). A line is
    skipped when its window (``half_width`` points each side of its nearest grid point)
    would overlap a stronger line's window or leave the grid.

    With ``interferers`` a line is also skipped when it is blended: some line of an
    interfering element lies within ``blend_points`` grid points of it and is estimated at
    ``>= blend_ratio`` of its intensity. The estimate of a line is its score times the
    number of atoms of its element, ``abundance * g_k * A_ki * exp(-E_k / kT)``; it leaves out
    partition functions and the Saha balance between stages, so it is good to about an
    order of magnitude, which is what a blend check needs (C I 247.856 nm and Fe II
    247.857 nm in steel differ by two orders of magnitude). With ``interferers`` a line
    estimated below ``detect_ratio`` of the brightest interferer line is skipped as well, as
    undetectable next to the matrix (the C I lines in steel, at 0.05-1 % C).

    Parameters
    ----------
    element : str
        Element symbol, e.g. ``"Mn"``.
    wavelengths : ndarray of shape (n_points,)
        Strictly increasing air-wavelength grid, nm.
    n_lines : int, default=4
        Number of lines to return (fewer if the grid has fewer).
    temperature_ev : float, default=1.0
        Excitation temperature ``kT`` in eV.
    half_width : int, default=5
        Window half-width in grid points.
    interferers : mapping of str to float, optional
        Interfering element -> its number of atoms per atom of ``element`` in the sample
        (e.g. the matrix's major elements). None: no blend check.
    blend_points : int, default=BLEND_POINTS
        Two line centres closer than this many grid points (inclusive) are one peak.
    blend_ratio : float, default=BLEND_RATIO
        Estimated interferer / line intensity from which a line counts as blended.
    detect_ratio : float, default=DETECT_RATIO
        Smallest estimated line / brightest interferer line intensity kept.

    Returns
    -------
    ndarray of shape (<= n_lines,)
        Air wavelengths in nm, strongest first.

    Raises
    ------
    ValueError
        If libskit knows no line of ``element`` inside the grid, or none survives.
    """
    lines = element_lines(element, wavelengths)
    score = line_scores(lines, temperature_ev)
    order = score.sort_values(ascending=False).index
    ranked = lines.loc[order, "wl_air"].to_numpy()
    ranked_scores = score.loc[order].to_numpy()
    matrix = MatrixLines(element, wavelengths, interferers, temperature_ev, blend_points,
                          blend_ratio, detect_ratio)
    chosen: list[float] = []
    taken: list[int] = []
    for line, line_score in zip(ranked, ranked_scores, strict=True):
        centre = int(nearest_indices(wavelengths, np.array([line]))[0])
        fits = half_width <= centre < wavelengths.size - half_width
        if line_score < matrix.floor:
            break  # ranked: every later line is weaker still
        if not (fits and all(abs(centre - c) > 2 * half_width for c in taken)):
            continue
        if matrix.blended(line, line_score):
            continue
        chosen.append(float(line))
        taken.append(centre)
        if len(chosen) == n_lines:
            break
    if not chosen:
        blends = (f", detectable and unblended by {', '.join(sorted(interferers))},"
                  if interferers else "")
        raise ValueError(
            f"no line of {element}{blends} fits a window of +-{half_width} points inside "
            f"{wavelengths[0]:.3f}-{wavelengths[-1]:.3f} nm."
        )
    return np.array(chosen)


def matrix_composition(composition: Mapping[str, float] | None) -> dict[str, float]:
    """Element mass % of a targets table's mean composition (oxide columns converted).

    ``SiO2: 40`` counts as Si 18.7 and O 21.3 %: an oxide table's metals are as much major
    elements of the matrix as those of an element table. Columns that are neither element
    symbols nor formulas (``LOI``, ``total``) and missing values are left out.
    """
    out: dict[str, float] = {}
    for name, pct in (composition or {}).items():
        if not is_species(str(name)) or not np.isfinite(float(pct)):
            continue
        for element, value in to_elements({str(name): float(pct)}).items():
            out[element] = out.get(element, 0.0) + value
    return out


def _interferers(element: str, composition: Mapping[str, float],
                 majors: Sequence[str]) -> dict[str, float] | None:
    """Atoms of each major element per atom of ``element`` (None: no majors, no check)."""
    if not majors:
        return None
    moles = max(composition.get(element, 0.0), 1e-9) / ATOMIC_MASS[element]
    return {m: composition[m] / ATOMIC_MASS[m] / moles for m in majors if m != element}


def _majors(composition: Mapping[str, float], major_pct: float) -> tuple[str, ...]:
    majors = tuple(sorted(e for e, pct in composition.items() if pct >= major_pct))
    if composition and not majors:
        warnings.warn(f"data.lines=nist: no element of the matrix reaches {major_pct} mass % "
                      f"(columns {', '.join(sorted(composition))}), so no line is checked "
                      "for blends", UserWarning, stacklevel=3)
    return majors


class LineSelection(NamedTuple):
    """Line windows chosen for a set of target elements (see :func:`select_lines`)."""

    lines: tuple[float, ...]
    elements: tuple[str, ...]
    dropped: dict[str, str]
    majors: tuple[str, ...]


def target_element(name: str) -> str:
    """The element a target stands for: ``"Mn"`` -> Mn, ``"MnO"`` or ``"Cr2O3"`` -> the metal.

    Raises
    ------
    InputError
        If ``name`` is neither an element symbol nor an oxide of one element.
    """
    counts = parse_formula(name)
    metals = [e for e in counts if e != "O"] or list(counts)
    if len(metals) != 1:
        raise InputError(f"data.lines: target {name!r} is not an element or the oxide of one")
    return metals[0]


def select_lines(
    source: str,
    targets: Sequence[str],
    wavelengths: np.ndarray,
    composition: Mapping[str, float] | None = None,
    lines_per_element: int = LINES_PER_ELEMENT,
    half_width: int = 5,
    temperature_ev: float = 1.0,
    major_pct: float = MAJOR_PCT,
) -> LineSelection:
    """Line windows for the 1D models: ``"nist"`` lines of the targets, or the paper's.

    ``"nist"``: for each target element, its ``lines_per_element`` strongest NIST lines inside
    the grid that are not blended with a line of a major element of the matrix (mean mass %
    ``>= major_pct`` in ``composition``; see :func:`strongest_lines`). An element none of
    whose lines survives is reported in ``dropped`` (with the reason) and has no window; its
    target should be left out, as nothing in the input carries it.

    ``"paper"``: :data:`TRCSL_LINES`, whatever the targets (the literal TrCSL reproduction).
    Of these, C 414.6 nm and Cu 316.4 / 386.0 nm hold no line of their element in NIST.

    Parameters
    ----------
    source : {"nist", "paper"}
        See :data:`LINE_SOURCES`.
    targets : sequence of str
        Target names (element symbols or single-metal oxides), in output order.
    wavelengths : ndarray of shape (n_points,)
        The spectra's air-wavelength grid, nm.
    composition : mapping of str to float, optional
        Mean element mass % of the matrix (of the training samples; never the test samples).
        None or empty: no blend check.
    lines_per_element : int, default=LINES_PER_ELEMENT
    half_width : int, default=5
    temperature_ev : float, default=1.0
    major_pct : float, default=MAJOR_PCT

    Returns
    -------
    LineSelection
        ``lines`` and their ``elements`` (target order, strongest line first), ``dropped``
        (element -> why), ``majors`` (the blend-checked elements).

    Raises
    ------
    InputError
        If ``source`` is unknown, or no target element has a usable line.
    """
    if source == "paper":
        return LineSelection(tuple(line.wavelength_nm for line in TRCSL_LINES),
                             tuple(line.element for line in TRCSL_LINES), {}, ())
    if source != "nist":
        raise InputError(f"data.lines {source!r} is not one of {', '.join(LINE_SOURCES)} "
                         "or a list of wavelengths (nm)")
    composition = matrix_composition(composition)
    majors = _majors(composition, major_pct)
    lines: list[float] = []
    elements: list[str] = []
    dropped: dict[str, str] = {}
    for name in dict.fromkeys(target_element(t) for t in targets):
        interferers = _interferers(name, composition, majors)
        try:
            found = strongest_lines(name, wavelengths, lines_per_element, temperature_ev,
                                    half_width, interferers=interferers)
        except ValueError as e:
            dropped[name] = str(e)
            continue
        lines += found.tolist()
        elements += [name] * found.size
    if not lines:
        raise InputError(f"data.lines=nist: no target has a usable line ({dropped})")
    return LineSelection(tuple(lines), tuple(elements), dropped, majors)


def usable_windows(
    lines: Sequence[float],
    targets: Sequence[str],
    wavelengths: np.ndarray,
    composition: Mapping[str, float] | None,
    temperature_ev: float = 1.0,
    major_pct: float = MAJOR_PCT,
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Which given windows still read each target element in another matrix.

    The check :func:`select_lines` applies when it chooses lines (detectable, not blended with
    a line of a major element of ``composition``), applied to windows chosen elsewhere: a
    fine-tune inherits its pre-training's windows, chosen on another matrix.

    A window reads an element when one of the element's NIST lines lies within half a grid
    step of its centre (its score is that of the strongest such line).

    Parameters
    ----------
    lines : sequence of float
        Window centres, nm.
    targets : sequence of str
        Target names (elements or single-metal oxides).
    wavelengths : ndarray of shape (n_points,)
        The spectra's air-wavelength grid, nm.
    composition : mapping of str to float or None
        Mean composition (element or oxide mass %) of the training samples of the matrix.
    temperature_ev, major_pct : see :func:`select_lines`.

    Returns
    -------
    usable : dict of str to list of float
        Element -> its windows that survive (elements with none are absent).
    dropped : dict of str to str
        Element -> why none of its windows survives.
    """
    composition = matrix_composition(composition)
    majors = _majors(composition, major_pct)
    grid = np.asarray(wavelengths, dtype=float)
    centres = np.asarray(lines, dtype=float)
    # half the local grid step around each window centre
    tol = 0.5 * np.gradient(grid)[nearest_indices(grid, centres)] if grid.size > 1 else np.zeros(0)
    usable: dict[str, list[float]] = {}
    dropped: dict[str, str] = {}
    for name in dict.fromkeys(target_element(t) for t in targets):
        try:
            table = element_lines(name, grid)
        except ValueError as e:
            dropped[name] = str(e)
            continue
        scores = line_scores(table, temperature_ev).to_numpy()
        wl = table["wl_air"].to_numpy()
        matrix = MatrixLines(name, grid, _interferers(name, composition, majors), temperature_ev,
                              BLEND_POINTS, BLEND_RATIO, DETECT_RATIO)
        reasons = []
        for centre, t in zip(centres, tol, strict=True):
            own = np.abs(wl - centre) <= t
            if not own.any():
                continue
            why = matrix.why_not(float(centre), float(scores[own].max()))
            if why is None:
                usable.setdefault(name, []).append(float(centre))
            else:
                reasons.append(f"{centre:.2f} nm {why}")
        if name not in usable:
            dropped[name] = ("; ".join(reasons) if reasons else "no window holds one of its lines")
            if majors:
                dropped[name] += f" (majors {', '.join(majors)})"
    return usable, dropped


def nearest_indices(grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of the grid point nearest to each value (grid strictly increasing)."""
    right = np.clip(np.searchsorted(grid, values), 1, grid.size - 1)
    left = right - 1
    return np.where(values - grid[left] <= grid[right] - values, left, right)
