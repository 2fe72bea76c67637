"""Atomic file output: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Modes a plain ``open()`` / ``mkdir()`` would give under this process's umask (mkstemp and
#: mkdtemp create 0600 / 0700, which would hide shared results from the user's group).
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates 0600; give the file the mode a plain open() would have.
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """``Path.write_text``, atomically: a reader never sees half of it."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    return Path(path)


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy ``src`` to ``dst`` atomically: a reader (or a second writer) never sees half a file."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def write_two_column_csv(path: str | os.PathLike, wavelengths: np.ndarray, intensity: np.ndarray) -> Path:
    """A ``wavelength,intensity`` CSV (nm in air), written atomically."""
    with atomic_path(path) as tmp:
        np.savetxt(tmp, np.column_stack([wavelengths, intensity]), delimiter=",",
                   header="wavelength,intensity", comments="", fmt=["%.5f", "%.6g"])
    return Path(path)


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **subplots_kw):
    """A figure and its axes, as ``pyplot.subplots`` returns them, built without pyplot.

    A ``matplotlib.figure.Figure`` needs no global backend switch and no pyplot figure registry,
    so plotting changes nothing for a caller that uses pyplot itself, and no figure needs closing.

    Parameters
    ----------
    nrows, ncols : int
        Grid of axes.
    figsize : tuple of float
        Width and height in inches.
    **subplots_kw
        Passed to ``Figure.subplots`` (``sharex``, ``squeeze``, ...).

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : matplotlib.axes.Axes or numpy.ndarray of them
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **subplots_kw)


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically (a PNG is never half-written)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    return Path(path)


def write_rows_csv(path: str | os.PathLike, rows: Sequence[dict], columns: Sequence[str],
                   float_format: str | None = None) -> Path:
    """Rows (dicts) as a CSV with the given columns, written atomically.

    ``float_format`` (e.g. ``".6g"``) shortens floats; ``None`` keeps full precision, so a
    summary can be recomputed from the rows exactly.
    """
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            if float_format:
                row = {k: (format(v, float_format) if isinstance(v, float) else v) for k, v in row.items()}
            writer.writerow(row)
    return Path(path)
