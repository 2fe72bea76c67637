"""Choosing the reader for each input path and combining the results: :func:`read_any`."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from saca_lab.data.readers._labels import (
    merge_labels,
    read_labels_csv,
    require_complete_targets,
)
from saca_lab.data.readers._parse import PathLike, err, split_row
from saca_lab.data.readers.npz import read_npz
from saca_lab.data.readers.pyhat import PYHAT_GROUPS, read_pyhat_csv
from saca_lab.data.readers.resampling import concat_tables
from saca_lab.data.readers.two_column import (
    csv_files,
    read_two_column_csv,
    read_two_column_folder,
)
from saca_lab.data.readers.wide import read_wide_csv
from saca_lab.data.table import SpectralTable
from saca_lab.errors import InputError

_TEXT_SUFFIXES = frozenset({".csv", ".txt"})


def sniff_kind(path: PathLike) -> str:
    """Which reader a path needs: ``folder``, ``npz``, ``pyhat``, ``two_column`` or ``wide``.

    Parameters
    ----------
    path : str or PathLike
        A file or folder.

    Returns
    -------
    str
    """
    path = Path(path)
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise err(path, "no such file or folder")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "npz"
    if suffix not in _TEXT_SUFFIXES:
        raise err(
            path,
            f"unsupported file type {suffix or '(none)'!r}; expected .csv, .txt, .npz or a folder",
        )
    first = _first_line(path)
    cells = [cell.lower() for cell in split_row(first)] if first else []
    if cells and set(cells) <= PYHAT_GROUPS and "wvl" in cells:
        return "pyhat"
    if len(cells) == 2 and cells[0].startswith("wavelength"):
        return "two_column"
    return "wide"


def _first_line(path: Path) -> str:
    """First non-blank line; reading line by line avoids loading a big file twice."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for line in handle:
                if line.strip():
                    return line.rstrip("\r\n")
    except UnicodeDecodeError:
        raise err(path, "not UTF-8 text") from None
    except OSError as exc:
        raise err(path, f"cannot read file ({exc.strerror})") from None
    return ""


def _as_paths(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(p) for p in paths]


def input_files(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    """The files :func:`read_any` reads for ``paths``: folders expand to their ``*.csv`` files.

    Parameters
    ----------
    paths : path or sequence of paths

    Returns
    -------
    list of Path
    """
    files: list[Path] = []
    for path in _as_paths(paths):
        if path.is_dir():
            files.extend(csv_files(path))
        else:
            files.append(path)
    return files


def read_any(
    paths: PathLike | Sequence[PathLike],
    targets_csv: PathLike | None = None,
    *,
    grid: np.ndarray | None = None,
) -> SpectralTable:
    """Read one or more spectra files or folders of any supported layout into one table.

    The reader is chosen per path: a folder is a two-column folder, ``.npz`` is NPZ, and a
    ``.csv``/``.txt`` is PyHAT if its first row holds the ``meta``/``comp``/``wvl`` groups,
    two-column if its header is ``wavelength,intensity``, else wide. Several paths are
    concatenated as samples on the first path's grid (or ``grid``), resampling where needed.

    Parameters
    ----------
    paths : path or sequence of paths
        Files and/or folders.
    targets_csv : path, optional
        Labels CSV: a ``sample_id`` column plus element/oxide columns (mass %), merged by sample
        id. Every sample must have a row; extra rows are ignored. A value that the spectra
        file also gives must agree with it.
    grid : ndarray, optional
        Wavelength grid (nm) to resample everything onto; it must lie inside every file's range.

    Returns
    -------
    SpectralTable
        The samples of every path in order, on one grid; ``source`` is the paths joined by
        ``;``.

    Raises
    ------
    InputError
        On any unreadable or inconsistent input; nothing is written.
    """
    items = _as_paths(paths)
    if not items:
        raise InputError("no input files given")
    tables = []
    for path in items:
        kind = sniff_kind(path)
        if kind == "folder":
            tables.append(read_two_column_folder(path, grid=grid))
        else:
            tables.append(_READERS[kind](path))
    source = ";".join(str(p) for p in items)
    table = concat_tables(tables, grid=grid, source=source)
    table.source = source
    if targets_csv is not None:
        table = merge_labels(table, read_labels_csv(Path(targets_csv)))
    require_complete_targets(table)
    return table


_READERS: dict[str, Callable[[Path], SpectralTable]] = {
    "npz": read_npz,
    "pyhat": read_pyhat_csv,
    "two_column": read_two_column_csv,
    "wide": read_wide_csv,
}
