"""Reshaping spectra into images: the TrCSL 2D input."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data


class To2D(TransformerMixin, BaseEstimator):
    """Fold each spectrum into a ``rows x cols`` matrix (TrCSL Fig. 3).

    TrCSL reorganises its 16,375 points into a 125 x 131 matrix (125 * 131 = 16,375) that its
    2D CNN-SE-LSTM reads as an image. Points fill the matrix row by row (C order): point ``j``
    goes to ``(j // cols, j % cols)``. Spectra with fewer than ``rows * cols`` points are
    padded at the end with ``pad_value``; longer ones are refused.

    Parameters
    ----------
    shape : tuple (rows, cols), default=(125, 131)
        Shape of each output matrix.
    pad_value : float, default=0.0
        Value of the padding points.

    Attributes
    ----------
    n_features_in_ : int
        Number of points per spectrum seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the points seen during ``fit``, when ``X`` has string column names.

    Notes
    -----
    The output is 3D ``(n_spectra, rows, cols)``, so there are no output feature names and
    ``set_output`` does not apply. Float32 input stays float32. Every scikit-learn estimator
    check passes: they only need ``transform`` to keep the number of samples.

    References
    ----------
    .. [1] S. Ma, S. Xu, C. Pan et al., "TrCSL: a transferred CNN-SE-LSTM model for
       high-accuracy quantitative analysis of laser-induced breakdown spectroscopy with small
       samples", J. Anal. At. Spectrom., 2025, 40, 1810, Sec. 2.3.1 and Fig. 3.

    Examples
    --------
    >>> import numpy as np
    >>> from saca_lab.preprocessing import To2D
    >>> to2d = To2D(shape=(2, 3)).fit(np.zeros((1, 5)))
    >>> to2d.transform(np.array([[1.0, 2.0, 3.0, 4.0, 5.0]]))
    array([[[1., 2., 3.],
            [4., 5., 0.]]])
    """

    def __init__(self, shape: tuple[int, int] = (125, 131), pad_value: float = 0.0) -> None:
        self.shape = shape
        self.pad_value = pad_value

    def fit(self, X: Any, y: Any = None) -> To2D:
        """Check that the spectra fit in ``shape``.

        Parameters
        ----------
        X : array-like of shape (n_spectra, n_points)
            Spectra.
        y : None
            Ignored.

        Returns
        -------
        self : To2D
        """
        rows, cols = self._check_shape()
        validate_data(self, X, reset=True, dtype=(np.float64, np.float32))
        if self.n_features_in_ > rows * cols:
            raise ValueError(
                f"spectra of {self.n_features_in_} points do not fit in a {rows} x {cols} "
                f"matrix ({rows * cols} cells)."
            )
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Pad and fold every spectrum.

        Parameters
        ----------
        X : array-like of shape (n_spectra, n_points)
            Spectra with the number of points seen in ``fit``.

        Returns
        -------
        ndarray of shape (n_spectra, rows, cols)
        """
        check_is_fitted(self, "n_features_in_")
        rows, cols = self._check_shape()
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        out = np.full((X.shape[0], rows * cols), self.pad_value, dtype=X.dtype)
        out[:, : X.shape[1]] = X
        return out.reshape(X.shape[0], rows, cols)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Unfold matrices back into spectra, dropping the padding.

        Parameters
        ----------
        X : array-like of shape (n_spectra, rows, cols)
            Matrices as produced by :meth:`transform`.

        Returns
        -------
        ndarray of shape (n_spectra, n_features_in_)
        """
        check_is_fitted(self, "n_features_in_")
        rows, cols = self._check_shape()
        X = np.asarray(X)
        if X.ndim != 3 or X.shape[1:] != (rows, cols):
            raise ValueError(
                f"expected an array of shape (n_spectra, {rows}, {cols}), got {X.shape}."
            )
        return X.reshape(X.shape[0], rows * cols)[:, : self.n_features_in_].copy()

    def _check_shape(self) -> tuple[int, int]:
        shape = tuple(self.shape)
        if len(shape) != 2 or not all(isinstance(n, numbers.Integral) and n > 0 for n in shape):
            raise ValueError(f"shape must be two positive integers, got {self.shape!r}.")
        return int(shape[0]), int(shape[1])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
