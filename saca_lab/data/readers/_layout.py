"""Tables from labelled CSV columns, shared by the wide and PyHAT readers.

A :class:`Layout` says which columns hold wavelengths, the sample id, the shot number and the
labels; :func:`table_from_layout` parses them and groups repeated shots of one sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from saca_lab.data.readers._parse import (
    CsvText,
    check_compositions,
    check_grid,
    column_strings,
    parse_numeric,
    to_float32,
)
from saca_lab.data.table import SpectralTable
from saca_lab.errors import InputError


@dataclass
class Layout:
    """Which columns of a CSV hold what."""

    wl_cols: list[int]
    wavelengths: np.ndarray
    header_line: int  # the header line holding the wavelengths
    id_col: int | None = None
    shot_col: int | None = None
    label_cols: list[int] = field(default_factory=list)


def table_from_layout(ct: CsvText, names: Sequence[str], layout: Layout) -> SpectralTable:
    path = ct.path
    check_grid(
        path,
        layout.wavelengths,
        lambda k: f"{path}: line {layout.header_line}, column {layout.wl_cols[k] + 1}",
    )
    extra = layout.label_cols + ([layout.shot_col] if layout.shot_col is not None else [])
    cols = layout.wl_cols + extra
    values = parse_numeric(ct, cols, [names[c] for c in cols])
    n_wl = len(layout.wl_cols)
    spectra = to_float32(
        values[:, :n_wl],
        lambda idx: ct.at(idx[0], layout.wl_cols[idx[1]], names[layout.wl_cols[idx[1]]]),
    )
    labels = values[:, n_wl : n_wl + len(layout.label_cols)]
    shots = values[:, -1] if layout.shot_col is not None else None

    if layout.id_col is not None:
        row_ids = column_strings(ct, layout.id_col, names[layout.id_col])
    else:
        row_ids = [f"{path.stem}_{row + 1}" for row in range(len(ct.lines))]
    groups = _group_shots(ct, row_ids, shots)
    first_rows = groups[:, 0]
    label_names = [names[c] for c in layout.label_cols]
    _check_labels_agree(ct, groups, labels, label_names)
    sample_ids = [row_ids[r] for r in first_rows]
    sample_labels = labels[first_rows]
    check_compositions(ct, first_rows, sample_ids, label_names, sample_labels)
    targets = {name: sample_labels[:, k].copy() for k, name in enumerate(label_names)}
    # One shot per row in file order needs no gather: a view avoids copying a big block.
    if groups.shape[1] == 1:
        stacked = spectra[:, None, :]
    else:
        stacked = spectra[groups]
    return SpectralTable(layout.wavelengths, stacked, sample_ids, targets, source=str(path))


def _group_shots(ct: CsvText, row_ids: list[str], shots: np.ndarray | None) -> np.ndarray:
    """Row indices as an (n_samples, n_shots) array: samples in order of first appearance,
    shots sorted by shot number."""
    groups: dict[str, list[int]] = {}
    for row, sample in enumerate(row_ids):
        groups.setdefault(sample, []).append(row)
    if shots is None:
        for sample, rows in groups.items():
            if len(rows) > 1:
                raise InputError(
                    f"{ct.at(rows[1])}: sample id {sample!r} repeats line {ct.line_numbers[rows[0]]}; "
                    "ids must be unique, or add a 'shot' column to mark repeated shots of one sample"
                )
        return np.arange(len(row_ids))[:, None]
    ordered = []
    for sample, rows in groups.items():
        rows = sorted(rows, key=lambda r: shots[r])
        for a, b in zip(rows, rows[1:], strict=False):
            if shots[a] == shots[b]:
                raise InputError(
                    f"{ct.at(b)}: sample {sample!r} has shot {shots[b]:g} twice (also line {ct.line_numbers[a]})"
                )
        ordered.append(rows)
    n_shots = len(ordered[0])
    for rows in ordered:
        if len(rows) != n_shots:
            raise InputError(
                f"{ct.at(rows[0])}: sample {row_ids[rows[0]]!r} has {len(rows)} shots but sample "
                f"{row_ids[ordered[0][0]]!r} has {n_shots}; every sample needs the same number of shots"
            )
    return np.asarray(ordered, dtype=np.intp)


def _check_labels_agree(
    ct: CsvText, groups: np.ndarray, labels: np.ndarray, names: Sequence[str]
) -> None:
    """Shots of one sample are one material: their label cells must be equal."""
    if groups.shape[1] == 1 or not names:
        return
    per_shot = labels[groups]  # (n_samples, n_shots, n_labels)
    differs = (per_shot != per_shot[:, :1, :]).any(axis=2)
    if differs.any():
        s, k = (int(i) for i in np.argwhere(differs)[0])
        raise InputError(
            f"{ct.at(int(groups[s, k]))}: labels differ between shots of one sample "
            f"(line {ct.line_numbers[groups[s, 0]]} has other values)"
        )
