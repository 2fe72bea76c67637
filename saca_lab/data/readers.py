"""Readers for measured spectra files; each returns a :class:`~saca_lab.data.table.SpectralTable`.

Supported layouts
-----------------
* PyHAT CSV (:func:`read_pyhat_csv`): two header rows, ``meta``/``comp``/``wvl`` groups.
* Two-column CSV (:func:`read_two_column_csv`): ``wavelength,intensity``, one spectrum per file;
  a folder of them is one dataset (:func:`read_two_column_folder`).
* Wide CSV (:func:`read_wide_csv`): one spectrum per row, wavelengths as column names.
* NPZ (:func:`read_npz`): NumPy arrays, see the function for the keys.

:func:`read_any` picks the reader from the extension and the first lines of the file.

Every problem with a file is an :class:`~saca_lab.errors.InputError` whose message starts with
the file path and names the line (1-based, as a text editor shows it) and column, or the NPZ
key, where the problem is. Numbers are parsed in bulk with :func:`numpy.loadtxt`; only when a
block fails to parse are its rows re-read one by one, to point at the offending cell.
"""

from __future__ import annotations

import csv
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from saca_lab.chemistry import is_species, validate_composition
from saca_lab.data.table import SpectralTable
from saca_lab.errors import InputError

PathLike = str | os.PathLike

# Column names (lower case, spaces and hyphens as "_") taken as the sample id, in preference order.
_ID_NAMES = ("sample_id", "libs_id", "id", "sample", "sample_name", "spectrum_id", "name")
_SHOT_NAMES = frozenset({"shot", "shot_number", "shot_no", "shot_index", "shot_id"})
_PYHAT_GROUPS = frozenset({"meta", "comp", "wvl"})
_TEXT_SUFFIXES = frozenset({".csv", ".txt"})
# Bulk parsing works on blocks of about this many bytes: big enough that numpy's per-call
# overhead vanishes, small enough that a failing block is cheap to re-scan row by row.
_CHUNK_BYTES = 16 * 2**20
# Resampling computes in float64; rows are processed in blocks of at most this many values.
_RESAMPLE_BLOCK = 2**22
_FLOAT32_MAX = float(np.finfo(np.float32).max)


# --------------------------------------------------------------------------------------------
# Low-level CSV text handling
# --------------------------------------------------------------------------------------------


@dataclass
class _CsvText:
    """A CSV file split into header rows and data lines, with the file line number of each."""

    path: Path
    header: list[list[str]]
    header_lines: list[int]
    lines: list[str]
    line_numbers: list[int]

    def at(self, row: int, col: int | None = None, name: str | None = None) -> str:
        """Location prefix for data row ``row`` (0-based) and optionally column ``col`` (0-based)."""
        where = f"{self.path}: line {self.line_numbers[row]}"
        if col is not None:
            where += f", column {col + 1}"
            if name is not None:
                where += f" ({name!r})"
        return where


def _err(path: PathLike, message: str) -> InputError:
    return InputError(f"{path}: {message}")


def _read_text(path: Path) -> str:
    """Whole file as text with ``\\n`` line ends; a BOM is dropped."""
    if not path.exists():
        raise _err(path, "no such file")
    if path.is_dir():
        raise _err(path, "is a folder, expected a file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _err(path, f"cannot read file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _err(path, f"line {line}: not UTF-8 text") from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _split_row(line: str) -> list[str]:
    """Cells of one CSV line, honouring quotes, with surrounding blanks removed."""
    return [cell.strip() for cell in next(csv.reader([line]))]


def _load_csv(path: Path, n_header: int) -> _CsvText:
    """Split a CSV file into ``n_header`` header rows and the data lines; blank lines are skipped."""
    raw_lines = _read_text(path).split("\n")
    header: list[list[str]] = []
    header_lines: list[int] = []
    lines: list[str] = []
    numbers: list[int] = []
    for number, line in enumerate(raw_lines, start=1):
        if not line or line.isspace():
            continue
        if len(header) < n_header:
            header.append(_split_row(line))
            header_lines.append(number)
        else:
            lines.append(line)
            numbers.append(number)
    if not header:
        raise _err(path, "file is empty")
    if len(header) < n_header:
        raise _err(path, f"expected {n_header} header rows, found {len(header)} and no data")
    if not lines:
        raise _err(path, "no data rows after the header")
    return _CsvText(path, header, header_lines, lines, numbers)


def _check_ragged(ct: _CsvText, n_cols: int) -> None:
    """Every data line must have as many cells as the header (numpy would not say which line)."""
    for row, line in enumerate(ct.lines):
        # Counting commas is exact unless a cell is quoted, which is rare: parse those properly.
        n = len(_split_row(line)) if '"' in line else line.count(",") + 1
        if n != n_cols:
            raise InputError(f"{ct.at(row)}: {n} cells, expected {n_cols} as in the header")


def _is_number(cell: str) -> bool:
    # numpy refuses the digit separators that Python's float() accepts; agree with numpy.
    if "_" in cell:
        return False
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _raise_bad_cell(ct: _CsvText, rows: range, cols: Sequence[int], names: Sequence[str]) -> None:
    """Slow path after a bulk parse failed: find the first cell that is not a number."""
    for row in rows:
        cells = _split_row(ct.lines[row])
        for col, name in zip(cols, names, strict=True):
            cell = cells[col]
            if not _is_number(cell):
                problem = "empty cell" if not cell else f"non-numeric value {cell!r}"
                raise InputError(f"{ct.at(row, col, name)}: {problem}")


def _parse_numeric(ct: _CsvText, cols: Sequence[int], names: Sequence[str]) -> np.ndarray:
    """Columns ``cols`` of every data line as a float64 (n_rows, len(cols)) array, all finite."""
    n_rows = len(ct.lines)
    out = np.empty((n_rows, len(cols)), dtype=np.float64)
    if not cols:
        return out
    step = max(1, _CHUNK_BYTES // max(1, len(ct.lines[0])))
    for start in range(0, n_rows, step):
        stop = min(n_rows, start + step)
        try:
            out[start:stop] = np.loadtxt(
                ct.lines[start:stop],
                delimiter=",",
                usecols=list(cols),
                comments=None,
                quotechar='"',
                dtype=np.float64,
                ndmin=2,
            )
        except ValueError as exc:
            _raise_bad_cell(ct, range(start, stop), cols, names)
            raise _err(
                ct.path,
                f"lines {ct.line_numbers[start]}-{ct.line_numbers[stop - 1]}: cannot parse numbers ({exc})",
            ) from None
    _check_finite_cells(ct, out, cols, names)
    return out


def _check_finite_cells(
    ct: _CsvText, values: np.ndarray, cols: Sequence[int], names: Sequence[str]
) -> None:
    if np.isfinite(values).all():
        return
    row, k = np.argwhere(~np.isfinite(values))[0]
    raise InputError(
        f"{ct.at(int(row), cols[k], names[k])}: value {values[row, k]} is not a finite number"
    )


def _column_strings(ct: _CsvText, col: int, name: str) -> list[str]:
    """Text of column ``col`` on every data line; empty cells are an error."""
    out = []
    for row, line in enumerate(ct.lines):
        # maxsplit keeps this cheap on wide rows: only the cells up to ``col`` are split off.
        cell = _split_row(line)[col] if '"' in line else line.split(",", col + 1)[col].strip()
        if not cell:
            raise InputError(f"{ct.at(row, col, name)}: empty sample id")
        out.append(cell)
    return out


def _to_float32(values: np.ndarray, locate: Callable[[tuple[int, ...]], str]) -> np.ndarray:
    """Cast finite values to float32, refusing those beyond its range rather than making them inf."""
    if values.dtype == np.float32:
        return values
    with np.errstate(over="ignore"):
        out = values.astype(np.float32)
    # The input is finite, so any inf here is an overflow; checking the small result is cheaper
    # than comparing every float64 against the limit.
    if not np.isfinite(out).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(out))[0])
        raise InputError(
            f"{locate(index)}: value {values[index]:g} is too large (over {_FLOAT32_MAX:.3g})"
        )
    return out


def _check_grid(path: PathLike, wavelengths: np.ndarray, locate: Callable[[int], str]) -> None:
    """Wavelengths must be finite, positive and strictly increasing; ``locate(i)`` names entry i."""
    finite = np.isfinite(wavelengths)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise InputError(f"{locate(i)}: wavelength {wavelengths[i]} is not a finite number")
    if wavelengths.size and wavelengths.min() <= 0:
        i = int(np.flatnonzero(wavelengths <= 0)[0])
        raise InputError(f"{locate(i)}: wavelength {wavelengths[i]:g} nm is not positive")
    steps = np.diff(wavelengths)
    bad = np.flatnonzero(steps <= 0)
    if bad.size:
        i = int(bad[0])
        if steps[i] == 0:
            raise InputError(
                f"{locate(i + 1)}: duplicate wavelength {wavelengths[i]:g} nm (also at {_strip_path(path, locate(i))})"
            )
        raise InputError(
            f"{locate(i + 1)}: wavelengths are not sorted: {wavelengths[i + 1]:g} nm comes after "
            f"{wavelengths[i]:g} nm (wavelengths must increase)"
        )


def _strip_path(path: PathLike, where: str) -> str:
    prefix = f"{path}: "
    return where[len(prefix) :] if where.startswith(prefix) else where


def _normalise_name(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def _find_id_column(names: Sequence[str], candidates: Sequence[int]) -> int | None:
    """Index of the column that holds sample ids, among ``candidates``, by name preference."""
    normalised = {i: _normalise_name(names[i]) for i in candidates}
    for wanted in _ID_NAMES:
        for i in candidates:
            if normalised[i] == wanted:
                return i
    return None


def _as_wavelength(name: str) -> float | None:
    try:
        return float(name)
    except ValueError:
        return None


def _check_unique_names(path: Path, names: Sequence[str], header_line: int) -> None:
    """Non-wavelength column names must be unique (repeated wavelengths get their own message)."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if _as_wavelength(name) is not None:
            continue
        if name in seen:
            raise _err(
                path,
                f"line {header_line}: column name {name!r} appears twice (columns {seen[name] + 1} and {i + 1})",
            )
        seen[name] = i


def _select_labels(
    path: Path,
    names: Sequence[str],
    candidates: Sequence[int],
    label_columns: Sequence[str] | None,
    header_line: int,
) -> list[int]:
    """Label columns: all candidates, or those the user named; each must be an element or oxide."""
    if label_columns is None:
        chosen = list(candidates)
    else:
        by_name = {names[i]: i for i in candidates}
        missing = [name for name in label_columns if name not in by_name]
        if missing:
            available = ", ".join(names[i] for i in candidates) or "none"
            raise _err(
                path,
                f"label column(s) {', '.join(map(repr, missing))} not found (label columns in file: {available})",
            )
        chosen = [by_name[name] for name in label_columns]
    for i in chosen:
        if not is_species(names[i]):
            raise _err(
                path,
                f"line {header_line}, column {i + 1}: {names[i]!r} is not a known element or oxide "
                "(label columns must be element symbols or oxide formulas such as Fe or SiO2)",
            )
    return chosen


# --------------------------------------------------------------------------------------------
# Tables from labelled columns (shared by the wide and PyHAT readers)
# --------------------------------------------------------------------------------------------


@dataclass
class _Layout:
    """Which columns of a CSV hold what."""

    wl_cols: list[int]
    wavelengths: np.ndarray
    header_line: int  # the header line holding the wavelengths
    id_col: int | None = None
    shot_col: int | None = None
    label_cols: list[int] = field(default_factory=list)


def _table_from_layout(ct: _CsvText, names: Sequence[str], layout: _Layout) -> SpectralTable:
    path = ct.path
    _check_grid(
        path,
        layout.wavelengths,
        lambda k: f"{path}: line {layout.header_line}, column {layout.wl_cols[k] + 1}",
    )
    extra = layout.label_cols + ([layout.shot_col] if layout.shot_col is not None else [])
    cols = layout.wl_cols + extra
    values = _parse_numeric(ct, cols, [names[c] for c in cols])
    n_wl = len(layout.wl_cols)
    spectra = _to_float32(
        values[:, :n_wl],
        lambda idx: ct.at(idx[0], layout.wl_cols[idx[1]], names[layout.wl_cols[idx[1]]]),
    )
    labels = values[:, n_wl : n_wl + len(layout.label_cols)]
    shots = values[:, -1] if layout.shot_col is not None else None

    if layout.id_col is not None:
        row_ids = _column_strings(ct, layout.id_col, names[layout.id_col])
    else:
        row_ids = [f"{path.stem}_{row + 1}" for row in range(len(ct.lines))]
    groups = _group_shots(ct, row_ids, shots)
    first_rows = groups[:, 0]
    label_names = [names[c] for c in layout.label_cols]
    _check_labels_agree(ct, groups, labels, label_names)
    sample_ids = [row_ids[r] for r in first_rows]
    sample_labels = labels[first_rows]
    for s, row in enumerate(first_rows):
        composition = dict(zip(label_names, sample_labels[s].tolist(), strict=True))
        validate_composition(composition, where=f"{ct.at(int(row))} (sample {sample_ids[s]!r})")
    targets = {name: sample_labels[:, k].copy() for k, name in enumerate(label_names)}
    # One shot per row in file order needs no gather: a view avoids copying a big block.
    if groups.shape[1] == 1:
        stacked = spectra[:, None, :]
    else:
        stacked = spectra[groups]
    return SpectralTable(layout.wavelengths, stacked, sample_ids, targets, source=str(path))


def _group_shots(ct: _CsvText, row_ids: list[str], shots: np.ndarray | None) -> np.ndarray:
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
    ct: _CsvText, groups: np.ndarray, labels: np.ndarray, names: Sequence[str]
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


# --------------------------------------------------------------------------------------------
# Public readers
# --------------------------------------------------------------------------------------------


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
    ct = _load_csv(path, 2)
    groups, names = ct.header
    group_line, name_line = ct.header_lines
    if len(groups) != len(names):
        raise _err(
            path,
            f"line {name_line}: {len(names)} column names but {len(groups)} groups on line {group_line}",
        )
    _check_unique_names(path, names, name_line)
    _check_ragged(ct, len(names))
    by_group: dict[str, list[int]] = {g: [] for g in _PYHAT_GROUPS}
    for i, group in enumerate(groups):
        key = group.lower()
        if key not in _PYHAT_GROUPS:
            raise _err(
                path, f"line {group_line}, column {i + 1}: group {group!r} is not meta, comp or wvl"
            )
        by_group[key].append(i)
    if not by_group["wvl"]:
        raise _err(path, f"line {group_line}: no 'wvl' columns")
    wavelengths = []
    for i in by_group["wvl"]:
        value = _as_wavelength(names[i])
        if value is None:
            raise _err(
                path, f"line {name_line}, column {i + 1}: wavelength {names[i]!r} is not a number"
            )
        wavelengths.append(value)
    meta = by_group["meta"]
    id_col = _find_id_column(names, meta)
    layout = _Layout(
        wl_cols=by_group["wvl"],
        wavelengths=np.asarray(wavelengths),
        header_line=name_line,
        id_col=id_col if id_col is not None else (meta[0] if meta else None),
        label_cols=_select_labels(path, names, by_group["comp"], label_columns, name_line),
    )
    return _table_from_layout(ct, names, layout)


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

    Raises
    ------
    InputError
        On any malformed header, cell or composition; the message names file, line and column.
    """
    path = Path(path)
    ct = _load_csv(path, 1)
    names = ct.header[0]
    header_line = ct.header_lines[0]
    _check_unique_names(path, names, header_line)
    _check_ragged(ct, len(names))
    wl_cols, wavelengths, other = [], [], []
    for i, name in enumerate(names):
        value = _as_wavelength(name)
        if value is None:
            other.append(i)
        else:
            wl_cols.append(i)
            wavelengths.append(value)
    if not wl_cols:
        raise _err(
            path,
            f"line {header_line}: no spectral columns (column names that are wavelengths in nm)",
        )
    id_col = _find_id_column(names, other)
    shot_col = next((i for i in other if _normalise_name(names[i]) in _SHOT_NAMES), None)
    candidates = [i for i in other if i not in (id_col, shot_col)]
    layout = _Layout(
        wl_cols=wl_cols,
        wavelengths=np.asarray(wavelengths),
        header_line=header_line,
        id_col=id_col,
        shot_col=shot_col,
        label_cols=_select_labels(path, names, candidates, label_columns, header_line),
    )
    return _table_from_layout(ct, names, layout)


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
    ct = _load_csv(path, 1)
    names = ct.header[0]
    if len(names) != 2 or not names[0].lower().startswith("wavelength"):
        raise _err(
            path,
            f"line {ct.header_lines[0]}: expected the header 'wavelength,intensity', found {','.join(names)!r}",
        )
    _check_ragged(ct, 2)
    values = _parse_numeric(ct, [0, 1], names)
    wavelengths = values[:, 0]
    _check_grid(path, wavelengths, lambda k: ct.at(k))
    spectrum = _to_float32(values[:, 1], lambda idx: ct.at(idx[0], 1, names[1]))
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
        raise _err(folder, "no such folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    if not files:
        raise _err(folder, "folder holds no .csv files")
    tables = [read_two_column_csv(p) for p in files]
    return concat_tables(tables, grid=grid, source=str(folder))


def read_npz(path: PathLike) -> SpectralTable:
    """Read spectra saved with :func:`numpy.savez` (keys listed under Notes).

    Parameters
    ----------
    path : str or PathLike
        The .npz file.

    Returns
    -------
    SpectralTable

    Raises
    ------
    InputError
        On a missing or malformed key, non-finite value or bad composition; the message names
        the file and the key (and index).

    Notes
    -----
    Keys of the archive:

    - ``wavelengths``: (P,) float, nm, strictly increasing. Required.
    - ``spectra``: (N, P) or (N, shots, P) float. Required.
    - ``sample_ids``: (N,) str. Optional; default ``<file stem>_<1..N>``.
    - ``targets_names``: (K,) str, with ``targets``: (N, K) float, mass %. Optional, together.
    - ``target_<name>``: (N,) float, mass % of species ``<name>``. Optional, any number of them.

    Pickled (object) arrays are refused, so store strings as a fixed-width string array
    (``np.array(["a", "b"])``, not ``dtype=object``).
    """
    path = Path(path)
    if not path.is_file():
        raise _err(path, "no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise _err(path, f"not a readable .npz file ({exc})") from None
    except AttributeError:
        # np.load returns a bare array (not an archive) for a .npy file renamed to .npz.
        raise _err(path, "is a single .npy array, expected an .npz archive") from None
    for key in ("wavelengths", "spectra"):
        if key not in arrays:
            raise _err(
                path, f"missing key {key!r} (keys present: {', '.join(sorted(arrays)) or 'none'})"
            )
    wavelengths = _npz_numeric(path, arrays, "wavelengths", ndims=(1,))
    _check_grid(path, wavelengths, lambda k: f"{path}: wavelengths[{k}]")
    spectra = _npz_numeric(path, arrays, "spectra", ndims=(2, 3))
    if spectra.ndim == 2:
        spectra = spectra[:, None, :]
    if spectra.shape[-1] != wavelengths.size:
        raise _err(
            path,
            f"spectra has {spectra.shape[-1]} points per spectrum but wavelengths has {wavelengths.size}",
        )
    if spectra.shape[0] == 0:
        raise _err(path, "spectra holds no samples")
    n = spectra.shape[0]
    sample_ids = _npz_sample_ids(path, arrays, n)
    spectra = _to_float32(spectra, lambda idx: f"{path}: spectra[{', '.join(map(str, idx))}]")
    targets = _npz_targets(path, arrays, n)
    for s, sample in enumerate(sample_ids):
        composition = {name: float(values[s]) for name, values in targets.items()}
        validate_composition(composition, where=f"{path}: sample {s} ({sample!r})")
    return SpectralTable(wavelengths, spectra, sample_ids, targets, source=str(path))


def _npz_numeric(
    path: Path, arrays: dict[str, np.ndarray], key: str, ndims: tuple[int, ...]
) -> np.ndarray:
    """A real-valued array of an allowed rank, as float64, with every value finite."""
    array = arrays[key]
    if array.ndim not in ndims:
        shapes = " or ".join(f"{d}D" for d in ndims)
        raise _err(path, f"{key} must be {shapes}, got shape {array.shape}")
    if array.dtype.kind not in "biuf":
        raise _err(path, f"{key} must hold numbers, got dtype {array.dtype}")
    # float32 data stays float32 until the range check so that big sets are not doubled in memory.
    values = array if array.dtype.kind == "f" else array.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        index = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise _err(
            path, f"{key}[{', '.join(map(str, index))}] is {values[index]}, not a finite number"
        )
    return values.astype(np.float64) if key == "wavelengths" else values


def _npz_strings(path: Path, arrays: dict[str, np.ndarray], key: str, n: int) -> list[str]:
    array = arrays[key]
    if array.dtype.kind not in "US" or array.shape != (n,):
        raise _err(path, f"{key} must be {n} strings, got shape {array.shape} dtype {array.dtype}")
    out = [v.decode() if isinstance(v, bytes) else str(v) for v in array.tolist()]
    return [v.strip() for v in out]


def _npz_sample_ids(path: Path, arrays: dict[str, np.ndarray], n: int) -> list[str]:
    if "sample_ids" not in arrays:
        return [f"{path.stem}_{i + 1}" for i in range(n)]
    ids = _npz_strings(path, arrays, "sample_ids", n)
    seen: dict[str, int] = {}
    for i, sample in enumerate(ids):
        if not sample:
            raise _err(path, f"sample_ids[{i}] is empty")
        if sample in seen:
            raise _err(path, f"sample_ids[{i}] {sample!r} repeats sample_ids[{seen[sample]}]")
        seen[sample] = i
    return ids


def _npz_targets(path: Path, arrays: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    targets: dict[str, np.ndarray] = {}
    if ("targets" in arrays) != ("targets_names" in arrays):
        raise _err(path, "keys 'targets' and 'targets_names' must be given together")
    if "targets" in arrays:
        names = _npz_strings(path, arrays, "targets_names", arrays["targets_names"].size)
        matrix = _npz_numeric(path, arrays, "targets", ndims=(2,))
        if matrix.shape != (n, len(names)):
            raise _err(
                path,
                f"targets has shape {matrix.shape}, expected ({n}, {len(names)}) from spectra and targets_names",
            )
        for k, name in enumerate(names):
            _add_npz_target(path, targets, name, matrix[:, k], f"targets_names[{k}]")
    for key in sorted(arrays):
        if key.startswith("target_"):
            values = _npz_numeric(path, arrays, key, ndims=(1,))
            if values.shape != (n,):
                raise _err(path, f"{key} has {values.size} values, expected {n}")
            _add_npz_target(path, targets, key[len("target_") :], values, key)
    return targets


def _add_npz_target(
    path: Path, targets: dict[str, np.ndarray], name: str, values: np.ndarray, key: str
) -> None:
    if not is_species(name):
        raise _err(path, f"{key}: {name!r} is not a known element or oxide")
    if name in targets:
        raise _err(path, f"{key}: target {name!r} is given twice")
    targets[name] = np.asarray(values, dtype=np.float64).copy()


# --------------------------------------------------------------------------------------------
# Resampling and combining tables
# --------------------------------------------------------------------------------------------


def as_grid(grid: np.ndarray | Sequence[float], source: str = "grid") -> np.ndarray:
    """Check a target wavelength grid: a non-empty 1D array of finite, positive, increasing nm.

    Parameters
    ----------
    grid : array-like
        Wavelengths in nm.
    source : str
        Name for error messages.

    Returns
    -------
    ndarray
        The grid as float64.
    """
    try:
        grid = np.asarray(grid, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{source}: a wavelength grid must hold numbers (nm)") from None
    if grid.ndim != 1 or grid.size == 0:
        raise InputError(
            f"{source}: a wavelength grid must be a non-empty 1D array, got shape {grid.shape}"
        )
    _check_grid(source, grid, lambda k: f"{source}[{k}]")
    return grid


def resample(
    data: SpectralTable | tuple[np.ndarray, np.ndarray],
    grid: np.ndarray,
    *,
    source: str | None = None,
) -> SpectralTable | np.ndarray:
    """Linearly interpolate spectra onto another wavelength grid, without extrapolating.

    Interpolation indices and weights are computed once for the grid and applied to all
    spectra at once (a per-spectrum :func:`numpy.interp` loop is far slower on big sets).

    Parameters
    ----------
    data : SpectralTable or (wavelengths, spectra)
        ``spectra`` has the wavelength axis last, any leading shape.
    grid : ndarray
        Target wavelengths in nm, strictly increasing.
    source : str, optional
        Name for error messages; defaults to the table's ``source``.

    Returns
    -------
    SpectralTable or ndarray
        Same kind as ``data``: a new table on ``grid``, or the resampled spectra array (float32
        input stays float32, anything else becomes float64).

    Raises
    ------
    InputError
        If ``grid`` reaches beyond the source range by more than half a source step at either
        end; the message names the source and both ranges.
    """
    if isinstance(data, SpectralTable):
        wavelengths, spectra = data.wavelengths, data.spectra
        source = source or data.source
    else:
        wavelengths, spectra = (np.asarray(a) for a in data)
    source = source or "spectra"
    wavelengths = np.asarray(wavelengths, dtype=np.float64)
    grid = as_grid(grid)
    if spectra.shape[-1] != wavelengths.size:
        raise InputError(
            f"{source}: spectra have {spectra.shape[-1]} points but there are {wavelengths.size} wavelengths"
        )
    out = _interpolate(wavelengths, np.asarray(spectra), grid, source)
    if isinstance(data, SpectralTable):
        return SpectralTable(
            grid, out, list(data.sample_ids), dict(data.targets), source=data.source
        )
    return out


def _interpolate(src: np.ndarray, spectra: np.ndarray, grid: np.ndarray, source: str) -> np.ndarray:
    if np.array_equal(src, grid):
        return spectra.copy()
    if src.size < 2:
        raise InputError(f"{source}: a single-point spectrum cannot be resampled")
    low_tol = 0.5 * (src[1] - src[0])
    high_tol = 0.5 * (src[-1] - src[-2])
    if grid[0] < src[0] - low_tol or grid[-1] > src[-1] + high_tol:
        raise InputError(
            f"{source}: spectrum covers {src[0]:.4f}-{src[-1]:.4f} nm but the target grid spans "
            f"{grid[0]:.4f}-{grid[-1]:.4f} nm; resampling would extrapolate (choose a grid inside "
            "the range of every file)"
        )
    # Index of the source interval holding each target point; points within the half-step
    # tolerance outside the range take the edge value (weights clipped to [0, 1]).
    lo = np.clip(np.searchsorted(src, grid, side="right") - 1, 0, src.size - 2)
    weight = np.clip((grid - src[lo]) / (src[lo + 1] - src[lo]), 0.0, 1.0)
    keep = 1.0 - weight
    dtype = np.float32 if spectra.dtype == np.float32 else np.float64
    flat = spectra.reshape(-1, src.size)
    out = np.empty((flat.shape[0], grid.size), dtype=dtype)
    block = max(1, _RESAMPLE_BLOCK // grid.size)
    for start in range(0, flat.shape[0], block):
        rows = flat[start : start + block]
        # np.take on a block of rows is a cache-friendly gather; float64 keeps a linear signal
        # exact, and a*(1-w) + b*w (not a + (b-a)*w) returns the source values at the nodes.
        left = np.take(rows, lo, axis=1).astype(np.float64, copy=False)
        right = np.take(rows, lo + 1, axis=1).astype(np.float64, copy=False)
        left *= keep
        right *= weight
        left += right
        out[start : start + block] = left
    return out.reshape(*spectra.shape[:-1], grid.size)


def concat_tables(
    tables: Sequence[SpectralTable], *, grid: np.ndarray | None = None, source: str = ""
) -> SpectralTable:
    """Stack tables as samples of one table on a common grid.

    Tables on another grid than ``grid`` (default: the first table's) are resampled onto it.
    A target missing from some tables is NaN for their samples; :func:`read_any` reports those.

    Parameters
    ----------
    tables : sequence of SpectralTable
        All with the same number of shots and distinct sample ids.
    grid : ndarray, optional
        Common wavelength grid, nm.
    source : str
        Source string of the result; default: the sources joined by ``;``.

    Returns
    -------
    SpectralTable
    """
    if not tables:
        raise InputError("no spectra to combine")
    grid = tables[0].wavelengths if grid is None else as_grid(grid)
    n_shots = tables[0].n_shots
    owner: dict[str, str] = {}
    for table in tables:
        if table.n_shots != n_shots:
            raise InputError(
                f"{table.source}: {table.n_shots} shots per sample but {tables[0].source} has {n_shots}; "
                "files combined into one dataset need the same number of shots"
            )
        for sample in table.sample_ids:
            if sample in owner:
                raise InputError(f"{table.source}: sample id {sample!r} is also in {owner[sample]}")
            owner[sample] = table.source
    if len(tables) == 1 and np.array_equal(tables[0].wavelengths, grid):
        return tables[0]
    spectra = np.concatenate(
        [_interpolate(t.wavelengths, t.spectra, grid, t.source) for t in tables]
    )
    names = list(dict.fromkeys(name for t in tables for name in t.targets))
    targets = {
        name: np.concatenate([t.targets.get(name, np.full(t.n_samples, np.nan)) for t in tables])
        for name in names
    }
    sample_ids = [sample for t in tables for sample in t.sample_ids]
    return SpectralTable(
        grid, spectra, sample_ids, targets, source=source or ";".join(t.source for t in tables)
    )


# --------------------------------------------------------------------------------------------
# Labels CSV and dispatch
# --------------------------------------------------------------------------------------------


@dataclass
class _Labels:
    path: Path
    sample_ids: list[str]
    line_numbers: list[int]
    names: list[str]
    values: np.ndarray  # (n_rows, n_names)


def _read_labels_csv(path: Path) -> _Labels:
    """A labels CSV: a ``sample_id`` column plus one column per element or oxide (mass %)."""
    ct = _load_csv(path, 1)
    names = ct.header[0]
    header_line = ct.header_lines[0]
    _check_unique_names(path, names, header_line)
    _check_ragged(ct, len(names))
    id_col = _find_id_column(names, range(len(names)))
    if id_col is None:
        raise _err(path, f"line {header_line}: no 'sample_id' column in the labels file")
    label_cols = _select_labels(
        path, names, [i for i in range(len(names)) if i != id_col], None, header_line
    )
    if not label_cols:
        raise _err(path, f"line {header_line}: no label columns besides {names[id_col]!r}")
    values = _parse_numeric(ct, label_cols, [names[c] for c in label_cols])
    ids = _column_strings(ct, id_col, names[id_col])
    seen: dict[str, int] = {}
    for row, sample in enumerate(ids):
        if sample in seen:
            raise InputError(
                f"{ct.at(row)}: sample id {sample!r} repeats line {ct.line_numbers[seen[sample]]}"
            )
        seen[sample] = row
    label_names = [names[c] for c in label_cols]
    for row, sample in enumerate(ids):
        composition = dict(zip(label_names, values[row].tolist(), strict=True))
        validate_composition(composition, where=f"{ct.at(row)} (sample {sample!r})")
    return _Labels(path, ids, ct.line_numbers, label_names, values)


def _merge_labels(table: SpectralTable, labels: _Labels) -> SpectralTable:
    """Add the labels CSV's values to the table, by sample id; every sample needs a row."""
    row_of = {sample: row for row, sample in enumerate(labels.sample_ids)}
    missing = [sample for sample in table.sample_ids if sample not in row_of]
    if missing:
        shown = ", ".join(map(repr, missing[:10])) + (
            f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        )
        raise _err(labels.path, f"no row for {len(missing)} sample(s): {shown}")
    rows = np.array([row_of[sample] for sample in table.sample_ids], dtype=np.intp)
    targets = {name: values.copy() for name, values in table.targets.items()}
    for k, name in enumerate(labels.names):
        given = labels.values[rows, k]
        if name in targets:
            current = targets[name]
            clash = np.isfinite(current) & ~np.isclose(current, given, rtol=1e-9, atol=1e-9)
            if clash.any():
                s = int(np.flatnonzero(clash)[0])
                raise _err(
                    labels.path,
                    f"line {labels.line_numbers[rows[s]]}: {name} of sample {table.sample_ids[s]!r} is "
                    f"{given[s]:g} but the spectra file says {current[s]:g}",
                )
            targets[name] = np.where(np.isfinite(current), current, given)
        else:
            targets[name] = given.copy()
    for s, sample in enumerate(table.sample_ids):
        composition = {
            name: float(values[s]) for name, values in targets.items() if np.isfinite(values[s])
        }
        validate_composition(
            composition,
            where=f"{labels.path}: line {labels.line_numbers[rows[s]]} (sample {sample!r})",
        )
    return SpectralTable(
        table.wavelengths, table.spectra, table.sample_ids, targets, source=table.source
    )


def _require_complete_targets(table: SpectralTable) -> None:
    """Targets that only some input files carry leave gaps, which a model cannot train on."""
    for name, values in table.targets.items():
        missing = np.flatnonzero(~np.isfinite(values))
        if missing.size:
            shown = ", ".join(repr(table.sample_ids[i]) for i in missing[:10])
            more = f" and {missing.size - 10} more" if missing.size > 10 else ""
            raise InputError(
                f"{table.source}: no {name} value for {missing.size} sample(s): {shown}{more}; "
                "give every file the same label columns or supply them in a labels CSV"
            )


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
        raise _err(path, "no such file or folder")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "npz"
    if suffix not in _TEXT_SUFFIXES:
        raise _err(
            path,
            f"unsupported file type {suffix or '(none)'!r}; expected .csv, .txt, .npz or a folder",
        )
    first = _first_line(path)
    cells = [cell.lower() for cell in _split_row(first)] if first else []
    if cells and set(cells) <= _PYHAT_GROUPS and "wvl" in cells:
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
        raise _err(path, "not UTF-8 text") from None
    except OSError as exc:
        raise _err(path, f"cannot read file ({exc.strerror})") from None
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
            files.extend(
                sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
            )
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
        table = _merge_labels(table, _read_labels_csv(Path(targets_csv)))
    _require_complete_targets(table)
    return table


_READERS: dict[str, Callable[[Path], SpectralTable]] = {
    "npz": read_npz,
    "pyhat": read_pyhat_csv,
    "two_column": read_two_column_csv,
    "wide": read_wide_csv,
}
