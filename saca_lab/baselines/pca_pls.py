"""PCA-PLS: principal components first, then PLS regression on the scores.

TrCSL compares itself on 10 and 20 samples with the PCA-PLS model of its ref. 31 (Li et al.,
coal analysis with small samples; Ma et al., JAAS 2025, 40, 1810, Fig. 15). Compressing the
spectra to a few principal components before the PLS limits how many directions a handful of
calibration samples can be fitted along.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.cross_decomposition import PLSRegression
from sklearn.decomposition import PCA
from sklearn.utils.validation import check_is_fitted, validate_data

from saca_lab.baselines.pls import check_cv, check_positive_int, select_components


class PCAPLS(RegressorMixin, BaseEstimator):
    """PCA of the spectra, then PLS regression on the scores with CV-chosen components.

    Parameters
    ----------
    n_pca : int or float, default=10
        Principal components kept: an integer (capped by the number of samples and features),
        or a fraction in (0, 1) of the variance to explain.
    max_components : int, default=10
        Largest number of PLS components tried (capped by the PCA scores and the folds).
    cv : int, default=5
        Folds of the grouped CV that chooses the PLS components.
    random_state : int or None, default=0
        Shuffling of the CV folds.

    Attributes
    ----------
    pca_ : PCA
    pls_ : PLSRegression
    n_pca_ : int
        Principal components kept.
    n_components_ : int
        PLS components of the final model.
    cv_rmse_ : ndarray
        CV RMSE of 1..K PLS components (PCA fitted once on the training data: it does not see y).
    n_features_in_ : int

    References
    ----------
    .. [1] S. Ma et al., J. Anal. At. Spectrom., 2025, 40, 1810, Fig. 15 and ref. 31.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 50)); y = X[:, :3].sum(axis=1)
    >>> PCAPLS(n_pca=5).fit(X, y).n_pca_
    5
    """

    def __init__(self, n_pca: int | float = 10, max_components: int = 10, cv: int = 5,
                 random_state: int | None = 0) -> None:
        self.n_pca = n_pca
        self.max_components = max_components
        self.cv = cv
        self.random_state = random_state

    def fit(self, X, y, groups=None):
        """Fit the PCA, choose the PLS components by CV and fit the final PLS.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        groups : array-like of shape (n_samples,), optional
            Sample id of each row; CV folds never split a group.

        Returns
        -------
        self
        """
        check_positive_int("max_components", self.max_components)
        check_cv(self.cv)
        n_pca = self.n_pca
        is_fraction = isinstance(n_pca, numbers.Real) and not isinstance(n_pca, numbers.Integral)
        if isinstance(n_pca, bool) or not (is_fraction and 0 < n_pca < 1 or
                                           isinstance(n_pca, numbers.Integral) and n_pca >= 1):
            raise ValueError(f"n_pca must be an integer >= 1 or a fraction in (0, 1), got {n_pca!r}")
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64,
                             ensure_min_samples=2)
        if not is_fraction:
            n_pca = int(min(n_pca, X.shape[0], X.shape[1]))
        self.pca_ = PCA(n_components=n_pca, svd_solver="full").fit(X)
        self.n_pca_ = int(self.pca_.n_components_)
        scores = self.pca_.transform(X)
        self.cv_rmse_, self.n_components_ = select_components(
            scores, y, self.max_components, self.cv, False, groups, self.random_state)
        self.pls_ = PLSRegression(n_components=self.n_components_, scale=False).fit(scores, y)
        return self

    def predict(self, X):
        """Predicted targets, shape (n_samples,) or (n_samples, n_targets) like ``y``."""
        check_is_fitted(self, "pls_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self.pls_.predict(self.pca_.transform(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
