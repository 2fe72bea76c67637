"""Import measured spectra files into a saca-lab dataset directory (``saca-lab import``)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from saca_lab.data import store
from saca_lab.data.readers import PathLike, as_grid, input_files, read_any, sniff_kind
from saca_lab.errors import InputError


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _as_path_list(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    if isinstance(paths, (str, Path)) or not isinstance(paths, Sequence):
        return [Path(paths)]
    return [Path(p) for p in paths]


def _check_out_dir(out_dir: Path, inputs: Sequence[Path], overwrite: bool) -> None:
    """Refuse before reading anything: a taken ``out_dir``, or one that would swallow an input."""
    if out_dir.exists() and not overwrite:
        raise InputError(f"{out_dir} already exists (use --overwrite to replace it)")
    target = out_dir.resolve()
    for path in inputs:
        source = path.resolve()
        # Replacing a folder that holds an input (or is one) would delete the data being imported.
        if source == target or target in source.parents:
            raise InputError(f"{out_dir}: output folder would replace the input {path}")


def import_files(
    paths: PathLike | Sequence[PathLike],
    *,
    out_dir: PathLike,
    targets_csv: PathLike | None = None,
    grid: np.ndarray | Sequence[float] | None = None,
    overwrite: bool = False,
) -> Path:
    """Read spectra files (any layout :func:`~saca_lab.data.readers.read_any` knows) into a dataset.

    Everything is read and validated before the dataset is written, and the store writes
    atomically, so on any error ``out_dir`` is left as it was.

    Parameters
    ----------
    paths : path or sequence of paths
        Spectra files and/or folders of two-column CSVs.
    out_dir : path
        Dataset directory to create.
    targets_csv : path, optional
        Labels CSV (``sample_id`` plus element/oxide columns, mass %) merged by sample id.
    grid : array-like, optional
        Wavelengths (nm) to resample every spectrum onto; must lie inside each file's range.
    overwrite : bool
        Replace an existing ``out_dir``.

    Returns
    -------
    Path
        The dataset directory.

    Raises
    ------
    InputError
        On unreadable or inconsistent input, or an ``out_dir`` that exists (without
        ``overwrite``) or holds an input.
    """
    items = _as_path_list(paths)
    if not items:
        raise InputError("no input files given")
    out_dir = Path(out_dir)
    labels = Path(targets_csv) if targets_csv is not None else None
    _check_out_dir(out_dir, items + ([labels] if labels else []), overwrite)
    target_grid = as_grid(grid) if grid is not None else None
    table = read_any(items, labels, grid=target_grid)
    files = input_files(items) + ([labels] if labels else [])
    provenance = {
        "kind": "import",
        "inputs": [str(p.resolve()) for p in items],
        "readers": {str(p.resolve()): sniff_kind(p) for p in items},
        "files": [str(f.resolve()) for f in files],
        "sha256": {str(f.resolve()): _sha256(f) for f in files},
        "targets_csv": str(labels.resolve()) if labels else None,
        "resampled_to_grid": None
        if target_grid is None
        else {
            "n_points": int(target_grid.size),
            "first_nm": float(target_grid[0]),
            "last_nm": float(target_grid[-1]),
        },
        "n_samples": table.n_samples,
        "n_shots": table.n_shots,
        "n_points": table.n_points,
    }
    return store.write_dataset(table, out_dir, provenance=provenance, overwrite=overwrite)
