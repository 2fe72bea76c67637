"""PyHAT/ChemCam-style CSV: two header rows, ``meta``/``comp``/``wvl`` column groups."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from saca_lab.data.readers._layout import Layout, table_from_layout
from saca_lab.data.readers._parse import (
    PathLike,
    as_wavelength,
    check_columns,
    err,
    find_id_column,
    load_csv,
    select_labels,
)
from saca_lab.data.table import SpectralTable

PYHAT_GROUPS = frozenset({"meta", "comp", "wvl"})


def read_pyhat_csv(path: PathLike, label_columns: Sequence[str] | None = None) -> SpectralTable:
    """Read a PyHAT/ChemCam-style CSV with two header rows.

    Row 1 groups the columns as ``meta``, ``comp`` or ``wvl``; row 2 names them. ``wvl`` names are
    wavelengths in nm; ``comp`` columns are compositions (mass %) named by element or oxide;
    ``meta`` columns are descriptive, and the one named like an id (``LIBS ID``, ``id``,
    ``sample`` ...) gives the sample id, else the first meta column does.

    Parameters
    ----------
    path : str or PathLike
        The CSV file.
    label_columns : sequence of str, optional
        ``comp`` columns to keep as targets; all of them by default.

    Returns
    -------
    SpectralTable
        One shot per sample.

    Raises
    ------
    InputError
        On any malformed header, cell or composition; the message names file, line and column.
    """
    path = Path(path)
    ct = load_csv(path, 2)
    groups, names = ct.header
    group_line, name_line = ct.header_lines
    if len(groups) != len(names):
        raise err(
            path,
            f"line {name_line}: {len(names)} column names but {len(groups)} groups on line {group_line}",
        )
    check_columns(ct, names, name_line)
    by_group: dict[str, list[int]] = {g: [] for g in PYHAT_GROUPS}
    for i, group in enumerate(groups):
        key = group.lower()
        if key not in PYHAT_GROUPS:
            raise err(
                path, f"line {group_line}, column {i + 1}: group {group!r} is not meta, comp or wvl"
            )
        by_group[key].append(i)
    if not by_group["wvl"]:
        raise err(path, f"line {group_line}: no 'wvl' columns")
    wavelengths = []
    for i in by_group["wvl"]:
        value = as_wavelength(names[i])
        if value is None:
            raise err(
                path, f"line {name_line}, column {i + 1}: wavelength {names[i]!r} is not a number"
            )
        wavelengths.append(value)
    meta = by_group["meta"]
    id_col = find_id_column(names, meta)
    layout = Layout(
        wl_cols=by_group["wvl"],
        wavelengths=np.asarray(wavelengths),
        header_line=name_line,
        id_col=id_col if id_col is not None else (meta[0] if meta else None),
        label_cols=select_labels(path, names, by_group["comp"], label_columns, name_line),
    )
    return table_from_layout(ct, names, layout)
