"""Characteristic-line windows: the TrCSL 1D input.

:class:`LineWindows` keeps a few points around each line; which lines, the paper's or NIST's
strongest unblended ones, is decided in :mod:`saca_lab.preprocessing.line_selection`.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from saca_lab.preprocessing._validation import validate_spectra
from saca_lab.preprocessing.line_selection import (
    TRCSL_LINES,
    nearest_indices,
    strongest_lines,
)


class LineWindows(TransformerMixin, BaseEstimator):
    """Keep only windows of points around characteristic emission lines (TrCSL 1D input).

    For every line the nearest grid point and ``half_width`` points on each side are kept,
    so each line contributes ``2 * half_width + 1`` features, in line order. TrCSL feeds its
    1D CNN-SE-LSTM with NIST characteristic lines and 5 points around each.

    Parameters
    ----------
    wavelengths : array-like of shape (n_features,), (start, stop) pair, or None, \
default=None
        The air-wavelength grid of the spectra in nm, strictly increasing. A pair
        ``(start, stop)`` (when the spectra do not have exactly two points) means an evenly
        spaced grid over the number of features seen in ``fit``. ``None`` takes the grid
        from the column names of a DataFrame passed to ``fit`` (numbers, or strings of
        numbers).
    lines : sequence of float or None, default=None
        Air wavelengths (nm) of the lines. Mutually exclusive with ``elements``; when both
        are None the lines named in the TrCSL paper, :data:`TRCSL_LINES`, are used.
    elements : sequence of str or None, default=None
        Element symbols; each contributes its ``lines_per_element`` strongest NIST lines in
        the grid (see :func:`strongest_lines`), from libskit's line database.
    half_width : int, default=5
        Points kept on each side of a line's nearest grid point.
    lines_per_element : int, default=4
        Lines per element when ``elements`` is given.
    temperature_ev : float, default=1.0
        Excitation temperature kT (eV) used to rank an element's lines.

    Attributes
    ----------
    wavelengths_ : ndarray of shape (n_features_in_,)
        The grid used.
    window_lines_ : ndarray of shape (n_windows,)
        Wavelength of the line of each window, nm.
    window_elements_ : ndarray of shape (n_windows,), dtype object
        Element of each window's line, or None for lines given as plain numbers.
    indices_ : ndarray of shape (n_windows, 2 * half_width + 1)
        Feature indices kept, one row per window.
    n_features_in_ : int
        Number of points per spectrum seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names seen during ``fit``, when ``X`` has string column names.

    Raises
    ------
    ValueError
        In ``fit``, if a line lies outside the grid or its window does not fit in it.

    Notes
    -----
    Needs at least two features (a grid). 3D input ``(samples, shots, points)`` is windowed
    along its last axis. Feature names out are ``"<element>_<line>nm_<offset>"``.

    References
    ----------
    .. [1] S. Ma, S. Xu, C. Pan et al., "TrCSL: a transferred CNN-SE-LSTM model for
       high-accuracy quantitative analysis of laser-induced breakdown spectroscopy with small
       samples", J. Anal. At. Spectrom., 2025, 40, 1810, Sec. 2.3.1.
    .. [2] A. Kramida, Yu. Ralchenko, J. Reader and NIST ASD Team, NIST Atomic Spectra
       Database, https://physics.nist.gov/asd (via libskit).

    Examples
    --------
    >>> import numpy as np
    >>> from saca_lab.preprocessing import LineWindows
    >>> X = np.arange(20.0).reshape(2, 10)
    >>> lw = LineWindows(wavelengths=(400.0, 409.0), lines=[403.0], half_width=1).fit(X)
    >>> lw.indices_
    array([[2, 3, 4]])
    >>> lw.transform(X)
    array([[ 2.,  3.,  4.],
           [12., 13., 14.]])
    """

    def __init__(
        self,
        wavelengths: Any = None,
        lines: Sequence[float] | None = None,
        elements: Sequence[str] | None = None,
        half_width: int = 5,
        lines_per_element: int = 4,
        temperature_ev: float = 1.0,
    ) -> None:
        self.wavelengths = wavelengths
        self.lines = lines
        self.elements = elements
        self.half_width = half_width
        self.lines_per_element = lines_per_element
        self.temperature_ev = temperature_ev

    def fit(self, X: Any, y: Any = None) -> LineWindows:
        """Resolve the lines on the grid and compute the kept indices.

        Parameters
        ----------
        X : array-like of shape (n_spectra, n_points) or (n_samples, n_shots, n_points)
            Spectra (only their number of points and column names are used).
        y : None
            Ignored.

        Returns
        -------
        self : LineWindows
        """
        self._check_params()
        columns = getattr(X, "columns", None)
        validate_spectra(self, X, reset=True, allow_3d=True, ensure_min_features=2)
        grid = self._grid(columns)
        lines, elements = self._resolve_lines(grid)
        if not np.all(np.isfinite(lines)):
            raise ValueError(f"lines must be finite numbers, got {lines.tolist()}.")
        centres = nearest_indices(grid, lines)
        outside = (lines < grid[0]) | (lines > grid[-1])
        if outside.any():
            raise ValueError(
                f"lines {lines[outside].tolist()} nm are outside the wavelength grid "
                f"{grid[0]:.3f}-{grid[-1]:.3f} nm."
            )
        offsets = np.arange(-self.half_width, self.half_width + 1)
        indices = centres[:, None] + offsets
        clipped = (indices[:, 0] < 0) | (indices[:, -1] >= grid.size)
        if clipped.any():
            raise ValueError(
                f"the windows of +-{self.half_width} points around lines "
                f"{lines[clipped].tolist()} nm run past the ends of the grid."
            )
        self.wavelengths_ = grid
        self.window_lines_ = lines
        self.window_elements_ = elements
        self.indices_ = indices
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Gather the windows.

        Parameters
        ----------
        X : array-like of shape (n_spectra, n_points) or (n_samples, n_shots, n_points)
            Spectra on the grid seen in ``fit``.

        Returns
        -------
        ndarray of shape (..., n_windows * (2 * half_width + 1))
            The kept points, window after window.
        """
        check_is_fitted(self, "indices_")
        X = validate_spectra(self, X, reset=False, allow_3d=True)
        return X[..., self.indices_.ravel()]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the kept points: ``"<element>_<line>nm_<offset>"``.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Only checked for consistency with the input seen in ``fit``.

        Returns
        -------
        ndarray of str objects
        """
        check_is_fitted(self, "indices_")
        if input_features is not None:
            input_features = np.asarray(input_features, dtype=object)
            if len(input_features) != self.n_features_in_:
                raise ValueError(
                    "input_features should have length equal to number of features "
                    f"({self.n_features_in_}), got {len(input_features)}"
                )
            names_in = getattr(self, "feature_names_in_", None)
            if names_in is not None and not np.array_equal(names_in, input_features):
                raise ValueError("input_features is not equal to feature_names_in_")
        offsets = range(-self.half_width, self.half_width + 1)
        names = [
            f"{element + '_' if element else ''}{line:.3f}nm_{offset:+d}"
            for line, element in zip(self.window_lines_, self.window_elements_, strict=True)
            for offset in offsets
        ]
        return np.asarray(names, dtype=object)

    def _check_params(self) -> None:
        for name in ("half_width", "lines_per_element"):
            value = getattr(self, name)
            minimum = 0 if name == "half_width" else 1
            if not isinstance(value, numbers.Integral) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
        if not isinstance(self.temperature_ev, numbers.Real) or not self.temperature_ev > 0:
            raise ValueError(f"temperature_ev must be positive, got {self.temperature_ev!r}.")
        if self.lines is not None and self.elements is not None:
            raise ValueError("give either lines or elements, not both.")

    def _grid(self, columns: Any) -> np.ndarray:
        n = self.n_features_in_
        if self.wavelengths is None:
            try:
                grid = np.asarray(columns, dtype=float) if columns is not None else None
            except (TypeError, ValueError):
                grid = None
            if grid is None:
                raise ValueError(
                    "LineWindows needs the wavelength grid: pass wavelengths=(array of "
                    "n_features) or (start, stop), or fit on a DataFrame whose column names "
                    "are the wavelengths."
                )
        else:
            grid = np.asarray(self.wavelengths, dtype=float)
            if grid.shape == (2,) and n != 2:
                grid = np.linspace(grid[0], grid[1], n)
        if grid.shape != (n,):
            raise ValueError(
                f"wavelengths has shape {grid.shape}, but X has {n} features; pass one "
                "wavelength per feature or a (start, stop) pair."
            )
        if not np.all(np.isfinite(grid)) or np.any(np.diff(grid) <= 0):
            raise ValueError("wavelengths must be finite and strictly increasing.")
        return grid

    def _resolve_lines(self, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.elements is not None:
            per_element = [
                (
                    element,
                    strongest_lines(
                        element,
                        grid,
                        self.lines_per_element,
                        self.temperature_ev,
                        self.half_width,
                    ),
                )
                for element in self.elements
            ]
            lines = np.concatenate([found for _, found in per_element])
            elements = [element for element, found in per_element for _ in found]
        elif self.lines is not None:
            lines = np.asarray(self.lines, dtype=float).reshape(-1)
            elements = [None] * lines.size
        else:
            lines = np.array([line.wavelength_nm for line in TRCSL_LINES])
            elements = [line.element for line in TRCSL_LINES]
        if lines.size == 0:
            raise ValueError("no lines to window.")
        return lines, np.asarray(elements, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
