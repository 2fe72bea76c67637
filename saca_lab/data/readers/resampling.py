"""Resampling spectra onto another wavelength grid, and stacking tables on a common grid."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from saca_lab.data.readers._parse import check_grid
from saca_lab.data.table import SpectralTable
from saca_lab.errors import InputError

# Resampling computes in float64; rows are processed in blocks of at most this many values.
_RESAMPLE_BLOCK = 2**22


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
    check_grid(source, grid, lambda k: f"{source}[{k}]")
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
