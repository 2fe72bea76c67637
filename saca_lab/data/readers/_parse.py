"""Shared CSV handling for the readers: text loading, bulk numeric parsing, pinpointed errors.

Numbers are parsed in bulk with :func:`numpy.loadtxt`; only when a block fails to parse are its
rows re-read one by one, to point at the offending cell. Also here: the checks every layout
shares on wavelength grids, column names, label columns and compositions.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saca_lab.chemistry import is_species, validate_composition
from saca_lab.errors import InputError

PathLike = str | os.PathLike

# Column names (lower case, spaces and hyphens as "_") taken as the sample id, in preference order.
_ID_NAMES = ("sample_id", "libs_id", "id", "sample", "sample_name", "spectrum_id", "name")
# Bulk parsing works on blocks of about this many bytes: big enough that numpy's per-call
# overhead vanishes, small enough that a failing block is cheap to re-scan row by row.
_CHUNK_BYTES = 16 * 2**20
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class CsvText:
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


def err(path: PathLike, message: str) -> InputError:
    return InputError(f"{path}: {message}")


def _read_text(path: Path) -> str:
    """Whole file as text with ``\\n`` line ends; a BOM is dropped."""
    if not path.exists():
        raise err(path, "no such file")
    if path.is_dir():
        raise err(path, "is a folder, expected a file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise err(path, f"cannot read file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise err(path, f"line {line}: not UTF-8 text") from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def split_row(line: str) -> list[str]:
    """Cells of one CSV line, honouring quotes, with surrounding blanks removed."""
    return [cell.strip() for cell in next(csv.reader([line]))]


def load_csv(path: Path, n_header: int) -> CsvText:
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
            header.append(split_row(line))
            header_lines.append(number)
        else:
            lines.append(line)
            numbers.append(number)
    if not header:
        raise err(path, "file is empty")
    if len(header) < n_header:
        raise err(path, f"expected {n_header} header rows, found {len(header)} and no data")
    if not lines:
        raise err(path, "no data rows after the header")
    return CsvText(path, header, header_lines, lines, numbers)


def load_one_header_csv(path: Path) -> tuple[CsvText, list[str], int]:
    """A CSV with one header row: the text, the column names and the header's line number.

    Column names must be unique and every data line must have as many cells as the header.
    """
    ct = load_csv(path, 1)
    names = ct.header[0]
    header_line = ct.header_lines[0]
    check_columns(ct, names, header_line)
    return ct, names, header_line


def check_columns(ct: CsvText, names: Sequence[str], header_line: int) -> None:
    """Unique non-wavelength column names, and no data line wider or narrower than the header."""
    _check_unique_names(ct.path, names, header_line)
    check_ragged(ct, len(names))


def check_ragged(ct: CsvText, n_cols: int) -> None:
    """Every data line must have as many cells as the header (numpy would not say which line)."""
    for row, line in enumerate(ct.lines):
        # Counting commas is exact unless a cell is quoted, which is rare: parse those properly.
        n = len(split_row(line)) if '"' in line else line.count(",") + 1
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


def _raise_bad_cell(ct: CsvText, rows: range, cols: Sequence[int], names: Sequence[str]) -> None:
    """Slow path after a bulk parse failed: find the first cell that is not a number."""
    for row in rows:
        cells = split_row(ct.lines[row])
        for col, name in zip(cols, names, strict=True):
            cell = cells[col]
            if not _is_number(cell):
                problem = "empty cell" if not cell else f"non-numeric value {cell!r}"
                raise InputError(f"{ct.at(row, col, name)}: {problem}")


def parse_numeric(ct: CsvText, cols: Sequence[int], names: Sequence[str]) -> np.ndarray:
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
            raise err(
                ct.path,
                f"lines {ct.line_numbers[start]}-{ct.line_numbers[stop - 1]}: cannot parse numbers ({exc})",
            ) from None
    _check_finite_cells(ct, out, cols, names)
    return out


def _check_finite_cells(
    ct: CsvText, values: np.ndarray, cols: Sequence[int], names: Sequence[str]
) -> None:
    if np.isfinite(values).all():
        return
    row, k = np.argwhere(~np.isfinite(values))[0]
    raise InputError(
        f"{ct.at(int(row), cols[k], names[k])}: value {values[row, k]} is not a finite number"
    )


def column_strings(ct: CsvText, col: int, name: str) -> list[str]:
    """Text of column ``col`` on every data line; empty cells are an error."""
    out = []
    for row, line in enumerate(ct.lines):
        # maxsplit keeps this cheap on wide rows: only the cells up to ``col`` are split off.
        cell = split_row(line)[col] if '"' in line else line.split(",", col + 1)[col].strip()
        if not cell:
            raise InputError(f"{ct.at(row, col, name)}: empty sample id")
        out.append(cell)
    return out


def to_float32(values: np.ndarray, locate: Callable[[tuple[int, ...]], str]) -> np.ndarray:
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


def check_grid(path: PathLike, wavelengths: np.ndarray, locate: Callable[[int], str]) -> None:
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


def normalise_name(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def find_id_column(names: Sequence[str], candidates: Sequence[int]) -> int | None:
    """Index of the column that holds sample ids, among ``candidates``, by name preference."""
    normalised = {i: normalise_name(names[i]) for i in candidates}
    for wanted in _ID_NAMES:
        for i in candidates:
            if normalised[i] == wanted:
                return i
    return None


def as_wavelength(name: str) -> float | None:
    try:
        return float(name)
    except ValueError:
        return None


def _check_unique_names(path: Path, names: Sequence[str], header_line: int) -> None:
    """Non-wavelength column names must be unique (repeated wavelengths get their own message)."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if as_wavelength(name) is not None:
            continue
        if name in seen:
            raise err(
                path,
                f"line {header_line}: column name {name!r} appears twice (columns {seen[name] + 1} and {i + 1})",
            )
        seen[name] = i


def select_labels(
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
            raise err(
                path,
                f"label column(s) {', '.join(map(repr, missing))} not found (label columns in file: {available})",
            )
        chosen = [by_name[name] for name in label_columns]
    for i in chosen:
        if not is_species(names[i]):
            raise err(
                path,
                f"line {header_line}, column {i + 1}: {names[i]!r} is not a known element or oxide "
                "(label columns must be element symbols or oxide formulas such as Fe or SiO2)",
            )
    return chosen


def check_compositions(
    ct: CsvText,
    rows: Sequence[int],
    sample_ids: Sequence[str],
    names: Sequence[str],
    values: np.ndarray,
) -> None:
    """Each sample's label values (one row of ``values``, data row ``rows[s]``) must be a valid
    composition; an error names the data line and the sample."""
    for row, sample, row_values in zip(rows, sample_ids, values, strict=True):
        composition = dict(zip(names, row_values.tolist(), strict=True))
        validate_composition(composition, where=f"{ct.at(int(row))} (sample {sample!r})")
