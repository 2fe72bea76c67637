"""Readers for measured spectra files; each returns a :class:`~saca_lab.data.table.SpectralTable`.

Supported layouts
-----------------
* PyHAT CSV (:func:`read_pyhat_csv`, :mod:`.pyhat`): two header rows, ``meta``/``comp``/``wvl``
  groups.
* Two-column CSV (:func:`read_two_column_csv`, :mod:`.two_column`): ``wavelength,intensity``, one
  spectrum per file; a folder of them is one dataset (:func:`read_two_column_folder`).
* Wide CSV (:func:`read_wide_csv`, :mod:`.wide`): one spectrum per row, wavelengths as column
  names.
* NPZ (:func:`read_npz`, :mod:`.npz`): NumPy arrays, see the function for the keys.

:func:`read_any` (:mod:`.dispatch`) picks the reader from the extension and the first lines of
the file; :mod:`.resampling` puts spectra on a common grid.

Every problem with a file is an :class:`~saca_lab.errors.InputError` whose message starts with
the file path and names the line (1-based, as a text editor shows it) and column, or the NPZ
key, where the problem is. Numbers are parsed in bulk with :func:`numpy.loadtxt`; only when a
block fails to parse are its rows re-read one by one, to point at the offending cell
(:mod:`._parse`).
"""

from saca_lab.data.readers._parse import PathLike
from saca_lab.data.readers.dispatch import input_files, read_any, sniff_kind
from saca_lab.data.readers.npz import read_npz
from saca_lab.data.readers.pyhat import read_pyhat_csv
from saca_lab.data.readers.resampling import as_grid, concat_tables, resample
from saca_lab.data.readers.two_column import read_two_column_csv, read_two_column_folder
from saca_lab.data.readers.wide import read_wide_csv

__all__ = [
    "PathLike",
    "as_grid",
    "concat_tables",
    "input_files",
    "read_any",
    "read_npz",
    "read_pyhat_csv",
    "read_two_column_csv",
    "read_two_column_folder",
    "read_wide_csv",
    "resample",
    "sniff_kind",
]
