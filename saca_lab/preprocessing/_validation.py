"""Input validation shared by the preprocessing transformers.

Spectra come either as a 2D table ``(n_spectra, n_points)`` or, before shot averaging, as a 3D
stack ``(n_samples, n_shots, n_points)``. scikit-learn's ``validate_data`` counts features on
axis 1, which is the shot axis of a 3D stack, so 3D input is checked here against the *last*
axis instead, with the same error messages.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_array
from sklearn.utils.validation import FLOAT_DTYPES, validate_data


def validate_spectra(
    estimator: BaseEstimator,
    X: Any,
    *,
    reset: bool,
    allow_3d: bool = False,
    dtype: Any = FLOAT_DTYPES,
    ensure_min_features: int = 1,
) -> np.ndarray:
    """Validate spectra and set or check ``n_features_in_`` (the number of points).

    Parameters
    ----------
    estimator : BaseEstimator
        The estimator being fitted or applied.
    X : array-like of shape (n_spectra, n_points) or (n_samples, n_shots, n_points)
        The spectra; 3D only when ``allow_3d``.
    reset : bool
        True in ``fit`` (record ``n_features_in_``), False in ``transform`` (check it).
    allow_3d : bool, default=False
        Accept 3D stacks of shots.
    dtype : dtype or list of dtypes, default=FLOAT_DTYPES
        Passed to :func:`sklearn.utils.check_array`.
    ensure_min_features : int, default=1
        Minimum number of points per spectrum.

    Returns
    -------
    ndarray
        The validated array (2D or 3D).
    """
    # np.ndim would dispatch through __array_function__, which array-likes may refuse
    ndim = X.ndim if hasattr(X, "ndim") else np.asarray(X).ndim
    if allow_3d and ndim == 3:
        X = check_array(X, allow_nd=True, dtype=dtype, estimator=estimator, input_name="X")
        n_points = X.shape[-1]
        if n_points < ensure_min_features:
            raise ValueError(
                f"Found array with {n_points} feature(s) (shape={X.shape}) while a minimum of "
                f"{ensure_min_features} is required by {type(estimator).__name__}."
            )
        if reset:
            estimator.n_features_in_ = n_points
            # a 3D stack carries no column names; drop any left from an earlier fit
            if hasattr(estimator, "feature_names_in_"):
                del estimator.feature_names_in_
        elif hasattr(estimator, "n_features_in_") and n_points != estimator.n_features_in_:
            raise ValueError(
                f"X has {n_points} features, but {type(estimator).__name__} is expecting "
                f"{estimator.n_features_in_} features as input."
            )
        return X
    return validate_data(
        estimator, X, reset=reset, dtype=dtype, ensure_min_features=ensure_min_features
    )
