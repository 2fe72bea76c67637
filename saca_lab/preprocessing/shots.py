"""Averaging of laser shots."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from saca_lab.preprocessing._base import StatelessSpectraTransformer
from saca_lab.preprocessing._validation import validate_spectra


def average_shots(X: Any, n_average: int | None = None) -> np.ndarray:
    """Average the shots of every sample, all together or in consecutive groups.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_shots, n_points) or (n_samples, n_points)
        Shot spectra; 2D input is one shot per sample.
    n_average : int or None, default=None
        ``None`` averages all shots, giving ``(n_samples, n_points)``. An integer ``k``
        averages consecutive groups of ``k`` shots, giving ``(n_samples, n_shots // k,
        n_points)``; the last ``n_shots % k`` shots, which fill no group, are dropped.

    Returns
    -------
    ndarray
        Averaged spectra, floating point (float32 stays float32).

    Raises
    ------
    ValueError
        If ``X`` is not 2D or 3D, or has fewer than ``n_average`` shots.
    """
    X = np.asarray(X)
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    if X.ndim == 2:
        X = X[:, None, :]
    if X.ndim != 3:
        raise ValueError(
            f"expected (n_samples, n_shots, n_points) or (n_samples, n_points), got {X.shape}."
        )
    _check_n_average(n_average)
    if n_average is None:
        return X.mean(axis=1)
    n_samples, n_shots, n_points = X.shape
    n_groups = n_shots // n_average
    if n_groups == 0:
        raise ValueError(f"cannot average groups of {n_average} shots out of {n_shots}.")
    groups = X[:, : n_groups * n_average].reshape(n_samples, n_groups, n_average, n_points)
    return groups.mean(axis=2)


def _check_n_average(n_average: Any) -> None:
    if n_average is not None and (not isinstance(n_average, numbers.Integral) or n_average < 1):
        raise ValueError(f"n_average must be None or a positive integer, got {n_average!r}.")


class ShotAverager(StatelessSpectraTransformer):
    """Average repeated laser shots of each sample.

    LIBS records many shots per sample (TrCSL: 300 per sample, on a rotating stage); models
    are trained on single shots, on all-shot means or on means of small groups of shots.
    This turns a stack ``(n_samples, n_shots, n_points)`` into ``(n_samples, n_points)``, or
    with ``n_average=k`` into ``(n_samples, n_shots // k, n_points)``. See
    :func:`average_shots`.

    Parameters
    ----------
    n_average : int or None, default=None
        Shots per average; ``None`` averages all of them.

    Attributes
    ----------
    n_features_in_ : int
        Number of points per spectrum (last axis) seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the points seen during ``fit``, when ``X`` is a DataFrame.

    Notes
    -----
    Stateless. A 2D input ``(n_samples, n_points)`` is one shot per sample: with
    ``n_average=None`` it passes through unchanged, which is what scikit-learn's estimator
    checks exercise (they only feed 2D data); all of them pass. Output feature names (and
    pandas output) apply to the 2D output of ``n_average=None`` only.

    References
    ----------
    .. [1] S. Ma, S. Xu, C. Pan et al., "TrCSL: a transferred CNN-SE-LSTM model for
       high-accuracy quantitative analysis of laser-induced breakdown spectroscopy with small
       samples", J. Anal. At. Spectrom., 2025, 40, 1810, Sec. 2.1.

    Examples
    --------
    >>> import numpy as np
    >>> from saca_lab.preprocessing import ShotAverager
    >>> shots = np.arange(12.0).reshape(1, 4, 3)
    >>> ShotAverager().fit_transform(shots)
    array([[4.5, 5.5, 6.5]])
    >>> ShotAverager(n_average=2).fit_transform(shots)
    array([[[1.5, 2.5, 3.5],
            [7.5, 8.5, 9.5]]])
    """

    def __init__(self, n_average: int | None = None) -> None:
        self.n_average = n_average

    def _check_params(self) -> None:
        _check_n_average(self.n_average)

    def transform(self, X: Any) -> np.ndarray:
        """Average the shots.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_shots, n_points) or (n_samples, n_points)
            Shot spectra.

        Returns
        -------
        ndarray of shape (n_samples, n_points) or (n_samples, n_shots // n_average, n_points)
        """
        X = validate_spectra(self, X, reset=False, allow_3d=True)
        return average_shots(X, self.n_average)

