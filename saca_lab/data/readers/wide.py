"""Wide CSV: one spectrum per row, the wavelengths (nm) as column names."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from saca_lab.data.readers._layout import Layout, table_from_layout
from saca_lab.data.readers._parse import (
    PathLike,
    as_wavelength,
    err,
    find_id_column,
    load_one_header_csv,
    normalise_name,
    select_labels,
)
from saca_lab.data.table import SpectralTable

_SHOT_NAMES = frozenset({"shot", "shot_number", "shot_no", "shot_index", "shot_id"})


def read_wide_csv(path: PathLike, label_columns: Sequence[str] | None = None) -> SpectralTable:
    """Read a CSV with one spectrum per row and the wavelengths (nm) as column names.

    Columns whose name is not a number are: the sample id (``sample_id``, ``id`` or
    ``sample``; without one, ids are ``<file stem>_<row>``), an optional ``shot`` column, and
    label columns named by element or oxide (mass %). Rows that share a sample id and differ in
    shot become the shots of one sample, sorted by shot; every sample must have as many shots.

    Parameters
    ----------
    path : str or PathLike
        The CSV file.
    label_columns : sequence of str, optional
        Label columns to keep as targets; they must exist. By default every non-numeric column
        other than the id and shot columns is a label and must be an element or oxide.

    Returns
    -------
    SpectralTable
        Samples in order of first appearance, each with its shots sorted by shot number.

    Raises
    ------
    InputError
        On any malformed header, cell or composition; the message names file, line and column.
    """
    path = Path(path)
    ct, names, header_line = load_one_header_csv(path)
    wl_cols, wavelengths, other = [], [], []
    for i, name in enumerate(names):
        value = as_wavelength(name)
        if value is None:
            other.append(i)
        else:
            wl_cols.append(i)
            wavelengths.append(value)
    if not wl_cols:
        raise err(
            path,
            f"line {header_line}: no spectral columns (column names that are wavelengths in nm)",
        )
    id_col = find_id_column(names, other)
    shot_col = next((i for i in other if normalise_name(names[i]) in _SHOT_NAMES), None)
    candidates = [i for i in other if i not in (id_col, shot_col)]
    layout = Layout(
        wl_cols=wl_cols,
        wavelengths=np.asarray(wavelengths),
        header_line=header_line,
        id_col=id_col,
        shot_col=shot_col,
        label_cols=select_labels(path, names, candidates, label_columns, header_line),
    )
    return table_from_layout(ct, names, layout)
