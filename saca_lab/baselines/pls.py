"""Partial least squares regression with the number of components chosen by grouped CV.

PLSR is the chemometric baseline TrCSL compares against (Ma et al., JAAS 2025, 40, 1810,
Sec. 3.5 and Fig. 14). The number of latent variables is the one setting that decides whether
PLSR over- or under-fits a small calibration set, so :class:`PLSRCV` picks it by
cross-validation that keeps all spectra of one sample in the same fold.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.cross_decomposition import PLSRegression
from sklearn.model_selection import GroupKFold, KFold
from sklearn.utils.validation import check_is_fitted, validate_data


def cv_folds(n_samples: int, groups=None, cv: int = 5,
             random_state: int | None = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/test index pairs for cross-validation, grouped when ``groups`` is given.

    Parameters
    ----------
    n_samples : int
        Rows of the training data.
    groups : array-like of shape (n_samples,), optional
        Sample id of each row (e.g. several shots of one sample): rows of one group are never
        split between training and validation (:class:`~sklearn.model_selection.GroupKFold`).
        Without groups every row is its own group (shuffled
        :class:`~sklearn.model_selection.KFold`).
    cv : int, default=5
        Folds, clipped to the number of groups.
    random_state : int or None, default=0
        Shuffling of the folds (both kinds).

    Returns
    -------
    list of (train_idx, test_idx)
        Empty when fewer than two groups exist (no cross-validation possible).
    """
    if groups is None:
        n_groups = n_samples
    else:
        groups = np.asarray(groups)
        if groups.shape != (n_samples,):
            raise ValueError(f"groups has shape {groups.shape}, expected ({n_samples},)")
        n_groups = np.unique(groups).size
    k = min(int(cv), n_groups)
    if k < 2:
        return []
    if groups is None:
        splitter = KFold(k, shuffle=True, random_state=random_state)
        return list(splitter.split(np.zeros(n_samples)))
    splitter = GroupKFold(k, shuffle=True, random_state=random_state)
    return list(splitter.split(np.zeros(n_samples), groups=groups))


def check_cv(cv) -> None:
    if not isinstance(cv, numbers.Integral) or isinstance(cv, bool) or cv < 2:
        raise ValueError(f"cv must be an integer >= 2, got {cv!r}")


def check_positive_int(name: str, value) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _truncated_predictions(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray,
                           n_components: int, scale: bool) -> np.ndarray:
    """Predictions of PLS models with 1..n_components components from one fit.

    NIPALS extracts components one after the other, so the first k components of a K-component
    fit are the k-component fit; only the y loadings of the first k are summed. Returns
    ``(n_components, n_test, n_targets)``.
    """
    y_mean = y_train.mean(axis=0)
    y_std = y_train.std(axis=0, ddof=1) if scale else np.ones(y_train.shape[1])
    y_std = np.where(y_std == 0, 1.0, y_std)
    if X_train.shape[0] < 2 or np.ptp(X_train, axis=0).max() == 0:
        # nothing to regress on: every candidate predicts the training mean
        return np.broadcast_to(y_mean, (n_components, X_test.shape[0], y_train.shape[1])).copy()
    with warnings.catch_warnings():
        # expected when K reaches the rank of the fold: later components then add nothing
        warnings.filterwarnings("ignore", "y residual is constant", UserWarning)
        pls = PLSRegression(n_components=n_components, scale=scale).fit(X_train, y_train)
    scores = pls.transform(X_test)                           # (n_test, K)
    terms = scores[:, :, None] * pls.y_loadings_.T[None]    # (n_test, K, targets)
    return np.cumsum(terms, axis=1).transpose(1, 0, 2) * y_std + y_mean


class PLSRCV(RegressorMixin, BaseEstimator):
    """PLS regression whose number of components minimises the grouped CV RMSE.

    For every candidate ``k = 1 .. K`` the cross-validated RMSE is computed (folds by group when
    ``groups`` is passed to :meth:`fit`), the ``k`` with the lowest RMSE is kept and a
    :class:`~sklearn.cross_decomposition.PLSRegression` with ``k`` components is refitted on all
    the training data. ``K`` is ``max_components`` capped by the number of features and by the
    smallest training fold minus one (a PLS model of n centred spectra has rank n - 1 at most).

    Parameters
    ----------
    max_components : int, default=15
        Largest number of components tried.
    cv : int, default=5
        Folds, clipped to the number of groups (or rows, without groups).
    scale : bool, default=False
        Scale X and y to unit variance inside the PLS (off for spectra: scaling every pixel
        blows up the noise of empty channels).
    random_state : int or None, default=0
        Shuffling of the CV folds.

    Attributes
    ----------
    n_components_ : int
        Components of the final model.
    cv_rmse_ : ndarray of shape (K,)
        CV RMSE of 1..K components (mean over targets); NaN when CV was impossible.
    pls_ : PLSRegression
        The final model, fitted on all training data.
    n_features_in_ : int

    References
    ----------
    .. [1] S. Ma et al., "TrCSL: a transferred CNN-SE-LSTM model ...", J. Anal. At. Spectrom.,
       2025, 40, 1810, Fig. 14 (PLSR vs number of samples).
    .. [2] S. Wold, M. Sjöström, L. Eriksson, "PLS-regression: a basic tool of chemometrics",
       Chemom. Intell. Lab. Syst., 2001, 58, 109.

    Examples
    --------
    >>> import numpy as np
    >>> from saca_lab.baselines import PLSRCV
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 30)); y = X[:, 0] - 2 * X[:, 1]
    >>> PLSRCV(max_components=5).fit(X, y).n_components_ >= 2
    True
    """

    def __init__(self, max_components: int = 15, cv: int = 5, scale: bool = False,
                 random_state: int | None = 0) -> None:
        self.max_components = max_components
        self.cv = cv
        self.scale = scale
        self.random_state = random_state

    def _validate(self, X, y):
        check_positive_int("max_components", self.max_components)
        check_cv(self.cv)
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64,
                             ensure_min_samples=2)
        return X, y

    def fit(self, X, y, groups=None):
        """Choose the number of components by CV and fit the final PLS model.

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
        X, y = self._validate(X, y)
        self.cv_rmse_, self.n_components_ = select_components(
            X, y, self.max_components, self.cv, self.scale, groups, self.random_state)
        self.pls_ = PLSRegression(n_components=self.n_components_, scale=self.scale).fit(X, y)
        return self

    def predict(self, X):
        """Predicted targets, shape (n_samples,) or (n_samples, n_targets) like ``y``."""
        check_is_fitted(self, "pls_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self.pls_.predict(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


def select_components(X: np.ndarray, y: np.ndarray, max_components: int, cv: int, scale: bool,
                      groups=None, random_state: int | None = 0) -> tuple[np.ndarray, int]:
    """CV RMSE of 1..K PLS components and the best K (see :class:`PLSRCV`)."""
    y2 = y.reshape(len(y), -1)
    folds = cv_folds(X.shape[0], groups, cv, random_state)
    smallest_train = min((len(tr) for tr, _ in folds), default=X.shape[0])
    k_max = max(1, min(int(max_components), X.shape[1], smallest_train - 1, X.shape[0] - 1))
    if not folds:
        return np.full(k_max, np.nan), 1
    sq_err = np.zeros(k_max)
    for train, test in folds:
        pred = _truncated_predictions(X[train], y2[train], X[test], k_max, scale)
        sq_err += ((pred - y2[test]) ** 2).sum(axis=(1, 2))
    rmse = np.sqrt(sq_err / y2.size)
    return rmse, int(np.argmin(rmse)) + 1

