"""Cross-conformal (CV+) prediction intervals, grouped by sample, and how to score them.

CV+ (Barber, Candès, Ramdas & Tibshirani 2021) fits the model K times, each time without one
fold, and widens each test prediction by the out-of-fold residuals of the fold models. The
folds here are folds of *samples*: every spectrum (shot) of one sample lies in the same fold, so
no sample calibrates a model that was fitted on its own shots. The computation is MAPIE's
:class:`mapie.regression.CrossConformalRegressor` (``method="plus"``) with a
:class:`~sklearn.model_selection.GroupKFold` splitter.

The guarantee: for exchangeable samples, a CV+ interval at level ``1 - a`` covers a new sample's
true value with probability at least ``1 - 2a - min(2(1 - 1/K)/(n/K + 1), (1 - K/n)/(K + 1))``
(n training samples, K folds; Barber et al., Theorem 4); in practice coverage is close to
``1 - a``. When ``ceil((1 - a)(n + 1)) > n`` no finite interval has that guarantee: the
interval is infinite (at 90 %: n <= 8 training samples, so a 70/30 split of 10 samples) and is
scored as *not* covering.
"""

from __future__ import annotations

import math

import numpy as np

#: Folds of CV+: K extra fits per interval.
DEFAULT_FOLDS = 5
#: Confidence of the binomial interval reported around the empirical coverage.
COVERAGE_CI = 0.95


def cv_plus_interval(estimator, X, y, X_test, level: float, groups=None,
                     folds: int = DEFAULT_FOLDS, random_state: int | None = 0,
                     ) -> tuple[np.ndarray, np.ndarray]:
    """CV+ prediction intervals of ``X_test`` from a model fitted on ``(X, y)``.

    Parameters
    ----------
    estimator : regressor
        Unfitted scikit-learn regressor (cloned for every fold).
    X, y : array-like of shape (n, n_features) and (n,)
        Training data.
    X_test : array-like of shape (m, n_features)
    level : float
        Nominal coverage, in (0, 1).
    groups : array-like of shape (n,), optional
        Sample of each row; a sample's rows always share a fold. Default: every row its own.
    folds : int, default=DEFAULT_FOLDS
        K, capped at the number of groups.
    random_state : int or None, default=0
        Shuffling of the group folds.

    Returns
    -------
    lo, hi : ndarray of shape (m,)
        Interval bounds; ``-inf`` / ``inf`` when ``n`` is too small for ``level``.

    References
    ----------
    .. [1] R. F. Barber, E. J. Candès, A. Ramdas, R. J. Tibshirani, "Predictive inference with
       the jackknife+", Ann. Statist., 2021, 49(1), 486-507.
    """
    from mapie.regression import CrossConformalRegressor
    from sklearn.base import clone
    from sklearn.model_selection import GroupKFold

    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    X, y, X_test = np.asarray(X, float), np.asarray(y, float).ravel(), np.asarray(X_test, float)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    k = min(int(folds), np.unique(groups).size)
    if k < 2:
        return np.full(len(X_test), -np.inf), np.full(len(X_test), np.inf)
    cv = GroupKFold(n_splits=k, shuffle=True, random_state=random_state)
    model = CrossConformalRegressor(estimator=clone(estimator), confidence_level=float(level),
                                    method="plus", cv=cv)
    model.fit_conformalize(X, y, groups=groups)
    _, bounds = model.predict_interval(X_test, aggregate_point_predictions=None,
                                       allow_infinite_bounds=True)
    return bounds[:, 0, 0], bounds[:, 1, 0]


def interval_scores(y_true, lo, hi) -> dict:
    """Empirical coverage (an infinite interval counts as a miss), its exact binomial confidence
    interval, the mean width of the finite intervals and how many were infinite."""
    from scipy.stats import binomtest

    y_true, lo, hi = (np.asarray(a, float) for a in (y_true, lo, hi))
    finite = np.isfinite(lo) & np.isfinite(hi)
    covered = finite & (y_true >= lo) & (y_true <= hi)
    n, k = int(y_true.size), int(covered.sum())
    if n == 0:
        return {"n_pred": 0, "coverage": math.nan, "coverage_ci_lo": math.nan,
                "coverage_ci_hi": math.nan, "mean_width": math.nan, "n_infinite": 0}
    ci = binomtest(k, n).proportion_ci(COVERAGE_CI, method="exact")
    return {"n_pred": n, "coverage": k / n, "coverage_ci_lo": float(ci.low),
            "coverage_ci_hi": float(ci.high),
            "mean_width": float(np.mean(hi[finite] - lo[finite])) if finite.any() else math.nan,
            "n_infinite": int(n - finite.sum())}
