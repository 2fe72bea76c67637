"""Per-spectrum intensity scaling."""

from __future__ import annotations

from typing import Any

import numpy as np

from saca_lab.preprocessing._base import StatelessSpectraTransformer
from saca_lab.preprocessing._validation import validate_spectra


def minmax_per_spectrum(
    X: np.ndarray, feature_range: tuple[float, float] = (0.0, 1.0)
) -> np.ndarray:
    """Min-max scale every spectrum (last axis) on its own.

    Parameters
    ----------
    X : ndarray of shape (..., n_points)
        Spectra, floating point.
    feature_range : (float, float), default=(0, 1)
        Values the minimum and the maximum of each spectrum are mapped to.

    Returns
    -------
    ndarray of the same shape and dtype as ``X``
        Scaled spectra; spectra with zero range map to ``feature_range[0]``.
    """
    lo, hi = feature_range
    x_min = X.min(axis=-1, keepdims=True)
    span = X.max(axis=-1, keepdims=True) - x_min
    # a flat spectrum has nothing to scale: send it to the lower bound, like sklearn's minmax
    span[span == 0] = 1
    t = (X - x_min) / span
    # the two-sided lerp hits lo and hi exactly at t = 0 and t = 1, unlike lo + t * (hi - lo)
    return (lo * (1 - t) + hi * t).astype(X.dtype, copy=False)


class MinMaxPerSpectrum(StatelessSpectraTransformer):
    """Min-max normalisation of each spectrum separately (TrCSL eq. 1).

    ``I_n = (I_raw - I_min) / (I_max - I_min)`` with ``I_min`` and ``I_max`` the minimum and
    maximum of the same spectrum, then mapped onto ``feature_range``. Unlike
    :class:`sklearn.preprocessing.MinMaxScaler`, which scales each *feature* with statistics
    learnt in ``fit``, this scales each *row* with its own statistics, so it is stateless.

    Parameters
    ----------
    feature_range : tuple (min, max), default=(0, 1)
        Desired range of each transformed spectrum.

    Attributes
    ----------
    n_features_in_ : int
        Number of points per spectrum seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the points seen during ``fit``, when ``X`` has string column names.

    See Also
    --------
    sklearn.preprocessing.MinMaxScaler : per-feature min-max scaling.

    Notes
    -----
    The minimum and maximum of every spectrum map exactly to ``feature_range`` (no rounding).
    Spectra with zero range map to ``feature_range[0]``. 3D input ``(samples, shots, points)``
    is scaled shot by shot. Float32 input stays float32.

    References
    ----------
    .. [1] S. Ma, S. Xu, C. Pan et al., "TrCSL: a transferred CNN-SE-LSTM model for
       high-accuracy quantitative analysis of laser-induced breakdown spectroscopy with small
       samples", J. Anal. At. Spectrom., 2025, 40, 1810, eq. (1).

    Examples
    --------
    >>> import numpy as np
    >>> from saca_lab.preprocessing import MinMaxPerSpectrum
    >>> MinMaxPerSpectrum().fit_transform(np.array([[1.0, 3.0, 2.0], [10.0, 0.0, 5.0]]))
    array([[0. , 1. , 0.5],
           [1. , 0. , 0.5]])
    """

    def __init__(self, feature_range: tuple[float, float] = (0.0, 1.0)) -> None:
        self.feature_range = feature_range

    def transform(self, X: Any) -> np.ndarray:
        """Scale every spectrum to ``feature_range``.

        Parameters
        ----------
        X : array-like of shape (n_spectra, n_points) or (n_samples, n_shots, n_points)
            Spectra.

        Returns
        -------
        ndarray of the same shape
            Scaled spectra.
        """
        self._check_params()
        X = validate_spectra(self, X, reset=False, allow_3d=True)
        return minmax_per_spectrum(X, tuple(self.feature_range))

    def _check_params(self) -> None:
        lo, hi = self.feature_range
        if not lo < hi:
            raise ValueError(
                f"feature_range must be (min, max) with min < max, got {self.feature_range!r}."
            )

