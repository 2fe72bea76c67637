"""Two-column CSV (``wavelength,intensity``): one spectrum per file, a folder of them a dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from saca_lab.data.readers._parse import (
    PathLike,
    check_grid,
    check_ragged,
    err,
    load_csv,
    parse_numeric,
    to_float32,
)
from saca_lab.data.readers.resampling import concat_tables
from saca_lab.data.table import SpectralTable


def read_two_column_csv(path: PathLike) -> SpectralTable:
    """Read one spectrum from a CSV with the header ``wavelength,intensity``.

    The first header name must start with ``wavelength`` (``wavelength_nm`` is fine); the
    sample id is the file stem. Intensities may be negative (dark-subtracted counts).

    Parameters
    ----------
    path : str or PathLike
        The CSV file.

    Returns
    -------
    SpectralTable
        One sample, one shot, no targets.

    Raises
    ------
    InputError
        On a bad header, cell or wavelength order; the message names file and line.
    """
    path = Path(path)
    ct = load_csv(path, 1)
    names = ct.header[0]
    if len(names) != 2 or not names[0].lower().startswith("wavelength"):
        raise err(
            path,
            f"line {ct.header_lines[0]}: expected the header 'wavelength,intensity', found {','.join(names)!r}",
        )
    check_ragged(ct, 2)
    values = parse_numeric(ct, [0, 1], names)
    wavelengths = values[:, 0]
    check_grid(path, wavelengths, lambda k: ct.at(k))
    spectrum = to_float32(values[:, 1], lambda idx: ct.at(idx[0], 1, names[1]))
    return SpectralTable(
        wavelengths.copy(), spectrum[None, None, :], [path.stem], {}, source=str(path)
    )


def read_two_column_folder(folder: PathLike, *, grid: np.ndarray | None = None) -> SpectralTable:
    """Read every ``*.csv`` in a folder as two-column spectra, one sample per file.

    Files are taken in name order; sample ids are the file stems. Spectra on a different grid
    from the first file's (or from ``grid``, when given) are resampled onto it, which is refused
    where that would mean extrapolating.

    Parameters
    ----------
    folder : str or PathLike
        Folder holding the CSV files; other files (a README) are ignored.
    grid : ndarray, optional
        Target wavelength grid in nm.

    Returns
    -------
    SpectralTable
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise err(folder, "no such folder")
    files = csv_files(folder)
    if not files:
        raise err(folder, "folder holds no .csv files")
    tables = [read_two_column_csv(p) for p in files]
    return concat_tables(tables, grid=grid, source=str(folder))


def csv_files(folder: Path) -> list[Path]:
    """The ``*.csv`` files directly in ``folder`` (any case of the suffix), in name order."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
