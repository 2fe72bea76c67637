"""Labels CSV for :func:`~saca_lab.data.readers.read_any`: compositions merged in by sample id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saca_lab.chemistry import validate_composition
from saca_lab.data.readers._parse import (
    check_compositions,
    column_strings,
    err,
    find_id_column,
    load_one_header_csv,
    parse_numeric,
    select_labels,
)
from saca_lab.data.table import SpectralTable
from saca_lab.errors import InputError


@dataclass
class _Labels:
    path: Path
    sample_ids: list[str]
    line_numbers: list[int]
    names: list[str]
    values: np.ndarray  # (n_rows, n_names)


def read_labels_csv(path: Path) -> _Labels:
    """A labels CSV: a ``sample_id`` column plus one column per element or oxide (mass %)."""
    ct, names, header_line = load_one_header_csv(path)
    id_col = find_id_column(names, range(len(names)))
    if id_col is None:
        raise err(path, f"line {header_line}: no 'sample_id' column in the labels file")
    label_cols = select_labels(
        path, names, [i for i in range(len(names)) if i != id_col], None, header_line
    )
    if not label_cols:
        raise err(path, f"line {header_line}: no label columns besides {names[id_col]!r}")
    values = parse_numeric(ct, label_cols, [names[c] for c in label_cols])
    ids = column_strings(ct, id_col, names[id_col])
    seen: dict[str, int] = {}
    for row, sample in enumerate(ids):
        if sample in seen:
            raise InputError(
                f"{ct.at(row)}: sample id {sample!r} repeats line {ct.line_numbers[seen[sample]]}"
            )
        seen[sample] = row
    label_names = [names[c] for c in label_cols]
    check_compositions(ct, range(len(ids)), ids, label_names, values)
    return _Labels(path, ids, ct.line_numbers, label_names, values)


def merge_labels(table: SpectralTable, labels: _Labels) -> SpectralTable:
    """Add the labels CSV's values to the table, by sample id; every sample needs a row."""
    row_of = {sample: row for row, sample in enumerate(labels.sample_ids)}
    missing = [sample for sample in table.sample_ids if sample not in row_of]
    if missing:
        raise err(labels.path, f"no row for {len(missing)} sample(s): {_some_ids(missing)}")
    rows = np.array([row_of[sample] for sample in table.sample_ids], dtype=np.intp)
    targets = {name: values.copy() for name, values in table.targets.items()}
    for k, name in enumerate(labels.names):
        given = labels.values[rows, k]
        if name in targets:
            current = targets[name]
            clash = np.isfinite(current) & ~np.isclose(current, given, rtol=1e-9, atol=1e-9)
            if clash.any():
                s = int(np.flatnonzero(clash)[0])
                raise err(
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


def require_complete_targets(table: SpectralTable) -> None:
    """Targets that only some input files carry leave gaps, which a model cannot train on."""
    for name, values in table.targets.items():
        missing = np.flatnonzero(~np.isfinite(values))
        if missing.size:
            shown = _some_ids([table.sample_ids[i] for i in missing])
            raise InputError(
                f"{table.source}: no {name} value for {missing.size} sample(s): {shown}; "
                "give every file the same label columns or supply them in a labels CSV"
            )


def _some_ids(ids: Sequence[str]) -> str:
    """The first ten sample ids, quoted, and how many more there are."""
    more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
    return ", ".join(map(repr, ids[:10])) + more
