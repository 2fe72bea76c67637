"""Element symbols, atomic masses and oxide formulas: the vocabulary of compositions.

Compositions are mass % throughout the project. Slags and rocks are reported as oxides
(``CaO``, ``SiO2``); the plasma model wants element mass fractions, so oxides are split here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from saca_lab.errors import InputError

# Standard atomic weights (IUPAC 2021, abridged), enough for steels, slags and rocks.
ATOMIC_MASS: dict[str, float] = {
    "H": 1.008, "Li": 6.94, "Be": 9.012, "B": 10.81, "C": 12.011, "N": 14.007, "O": 15.999,
    "F": 18.998, "Na": 22.990, "Mg": 24.305, "Al": 26.982, "Si": 28.085, "P": 30.974,
    "S": 32.06, "Cl": 35.45, "Ar": 39.95, "K": 39.098, "Ca": 40.078, "Sc": 44.956,
    "Ti": 47.867, "V": 50.942, "Cr": 51.996, "Mn": 54.938, "Fe": 55.845, "Co": 58.933,
    "Ni": 58.693, "Cu": 63.546, "Zn": 65.38, "Ga": 69.723, "Ge": 72.630, "As": 74.922,
    "Se": 78.971, "Rb": 85.468, "Sr": 87.62, "Y": 88.906, "Zr": 91.224, "Nb": 92.906,
    "Mo": 95.95, "Ag": 107.87, "Cd": 112.41, "Sn": 118.71, "Sb": 121.76, "Ba": 137.33,
    "La": 138.91, "Ce": 140.12, "Pr": 140.91, "Nd": 144.24, "Sm": 150.36, "Eu": 151.96,
    "Gd": 157.25, "Tb": 158.93, "Dy": 162.50, "Er": 167.26, "Yb": 173.05, "Hf": 178.49,
    "Ta": 180.95, "W": 183.84, "Pt": 195.08, "Au": 196.97, "Pb": 207.2, "Bi": 208.98,
}
ELEMENTS = frozenset(ATOMIC_MASS)

_FORMULA_TOKEN = re.compile(r"([A-Z][a-z]?)(\d*)")


def parse_formula(name: str) -> dict[str, int]:
    """Atom counts of a simple formula such as ``Fe2O3``; raises InputError if not one."""
    tokens = _FORMULA_TOKEN.findall(name)
    if not name or "".join(sym + cnt for sym, cnt in tokens) != name:
        raise InputError(f"{name!r} is not an element symbol or oxide formula")
    counts: dict[str, int] = {}
    for sym, cnt in tokens:
        if sym not in ELEMENTS:
            raise InputError(f"unknown element {sym!r} in {name!r}")
        counts[sym] = counts.get(sym, 0) + int(cnt or 1)
    return counts


def is_species(name: str) -> bool:
    """True if ``name`` is an element symbol or a formula made of known elements."""
    try:
        parse_formula(name)
    except InputError:
        return False
    return True


def mass_fractions_of(formula: str) -> dict[str, float]:
    """Mass fraction of each element in a formula (``SiO2`` -> Si 0.467, O 0.533)."""
    counts = parse_formula(formula)
    total = sum(ATOMIC_MASS[s] * n for s, n in counts.items())
    return {s: ATOMIC_MASS[s] * n / total for s, n in counts.items()}


def to_elements(composition: Mapping[str, float]) -> dict[str, float]:
    """Convert a composition of elements and/or oxides (mass %) into element mass %."""
    out: dict[str, float] = {}
    for species, pct in composition.items():
        for el, frac in mass_fractions_of(species).items():
            out[el] = out.get(el, 0.0) + pct * frac
    return out


def validate_composition(composition: Mapping[str, float], where: str = "composition") -> None:
    """Reject unknown species, negative or non-finite % and totals above 100 %."""
    total = 0.0
    for species, pct in composition.items():
        if not is_species(species):
            raise InputError(f"{where}: unknown element or oxide {species!r}")
        if not (pct == pct) or pct in (float("inf"), float("-inf")):
            raise InputError(f"{where}: {species} is not a finite number ({pct})")
        if pct < 0:
            raise InputError(f"{where}: {species} is negative ({pct} %)")
        total += pct
    if total > 100.0 + 1e-6:
        raise InputError(f"{where}: composition sums to {total:.4g} %, over 100 %")


def fill_balance(composition: Mapping[str, float], balance: str) -> dict[str, float]:
    """Return element mass % with ``balance`` (e.g. Fe in steel, O in oxides) making 100 %.

    An explicitly given balance element is kept as given (the plasma model normalises).
    """
    validate_composition(composition)
    elements = to_elements(composition)
    if balance not in composition:
        elements[balance] = elements.get(balance, 0.0) + max(100.0 - sum(elements.values()), 0.0)
    return elements


def parse_composition(text: str) -> dict[str, float]:
    """Parse ``"Fe=98.2,Mn=0.8,C=0.4"`` (mass %) into a dict, with clear errors."""
    comp: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in item:
            raise InputError(f"composition item {item!r} is not NAME=PERCENT")
        key, _, value = item.partition("=")
        key = key.strip()
        if key in comp:  # which value would win is a guess the user should not have to make
            raise InputError(f"composition: {key} is given twice")
        try:
            comp[key] = float(value)
        except ValueError:
            raise InputError(f"composition: {key} has non-numeric value {value.strip()!r}") from None
    if not comp:
        raise InputError("composition is empty")
    validate_composition(comp)
    return comp
