"""PSO-SVR: an RBF support vector regressor whose C, gamma and epsilon a particle swarm picks.

TrCSL's second chemometric baseline (Ma et al., JAAS 2025, 40, 1810, Fig. 14). The swarm
searches ``log10 C``, ``log10 gamma`` and ``log10 epsilon``; the fitness of a position is the
cross-validated RMSE with folds by sample. The squared distances between training spectra
are computed once, so each fitness evaluation only exponentiates a small matrix and fits SVRs
on a precomputed kernel: with 16,375-point spectra that is what keeps a swarm of a few hundred
evaluations within a second or two.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR
from sklearn.utils.validation import check_is_fitted, validate_data

from saca_lab.baselines.pls import check_cv, check_positive_int, cv_folds
from saca_lab.baselines.pso import ParticleSwarm

# libsvm settings of the fits inside the search (the final fit keeps libsvm's defaults). The
# swarm gathers where C is large, which is where libsvm needs most iterations; a looser
# stopping tolerance made the search 2-3x faster with test R2 within 0.001 (slag Mn and Cu,
# 40 and 90 samples), and the iteration cap bounds ill-conditioned corners of the box.
_SEARCH_TOL = 1e-2
_SEARCH_MAX_ITER = 100_000


def _check_bounds(name: str, bounds) -> tuple[float, float]:
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (low, high), got {bounds!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise ValueError(f"{name} must be finite with low <= high, got {bounds!r}")
    return lo, hi


class PSOSVR(RegressorMixin, BaseEstimator):
    """RBF SVR with C, gamma and epsilon chosen by a particle swarm on grouped CV RMSE.

    Targets are standardised on the training data, so ``epsilon`` is in units of the target's
    standard deviation; ``gamma`` is searched relative to scikit-learn's ``"scale"`` value
    ``1 / (n_features * X.var())``, so the same bounds fit 44-channel and 16,375-channel spectra.

    Parameters
    ----------
    n_particles : int, default=12
    n_iter : int, default=15
        Swarm iterations; the fitness is evaluated ``n_particles * (n_iter + 1)`` times.
    cv : int, default=5
        Folds of the fitness CV, clipped to the number of groups.
    log_C_bounds : (float, float), default=(-1, 5)
        Search range of ``log10 C`` (standardised targets). On min-max spectra the swarm tends
        to a small gamma with a large C (a nearly linear kernel); C above 1e5 makes libsvm
        slow without improving the CV RMSE in our runs.
    log_gamma_bounds : (float, float), default=(-5, 1)
        Search range of ``log10(gamma / gamma_scale)``.
    log_epsilon_bounds : (float, float), default=(-4, -0.5)
        Search range of ``log10 epsilon`` in target standard deviations.
    standardize : bool, default=False
        Scale every feature to unit variance first. Off for spectra: it gives the noise of empty
        channels the same weight in the RBF distance as the emission lines.
    random_state : int or None, default=0
        Seed of the swarm and of the CV folds.

    Attributes
    ----------
    best_params_ : dict
        ``C``, ``gamma`` (absolute, on the scaled inputs) and ``epsilon`` (target units).
    best_position_ : ndarray of shape (3,)
        ``log10 C``, ``log10(gamma / gamma_scale)``, ``log10 epsilon`` (standardised).
    fitness_history_ : ndarray of shape (n_iter + 1,)
        Best CV RMSE (target units) after the initial swarm and after every iteration.
    cv_rmse_ : float
        CV RMSE of the chosen parameters; NaN when there were too few groups to cross-validate
        (the swarm is then skipped and the centre of the box is used).
    svr_ : SVR
        The final model on standardised targets, fitted on all training data.
    scaler_ : StandardScaler or None
        The feature scaler when ``standardize``.
    n_features_in_ : int

    References
    ----------
    .. [1] S. Ma et al., J. Anal. At. Spectrom., 2025, 40, 1810, Fig. 14 (PSO-SVR).
    .. [2] J. Kennedy, R. Eberhart, Proc. ICNN'95, 1995, 1942 (particle swarm).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 5)); y = np.sin(X[:, 0])
    >>> model = PSOSVR(n_particles=4, n_iter=3).fit(X, y)
    >>> sorted(model.best_params_)
    ['C', 'epsilon', 'gamma']
    """

    def __init__(self, n_particles: int = 12, n_iter: int = 15, cv: int = 5,
                 log_C_bounds: tuple[float, float] = (-1.0, 5.0),
                 log_gamma_bounds: tuple[float, float] = (-5.0, 1.0),
                 log_epsilon_bounds: tuple[float, float] = (-4.0, -0.5),
                 standardize: bool = False, random_state: int | None = 0) -> None:
        self.n_particles = n_particles
        self.n_iter = n_iter
        self.cv = cv
        self.log_C_bounds = log_C_bounds
        self.log_gamma_bounds = log_gamma_bounds
        self.log_epsilon_bounds = log_epsilon_bounds
        self.standardize = standardize
        self.random_state = random_state

    def fit(self, X, y, groups=None):
        """Search C, gamma, epsilon with the swarm, then fit the final SVR.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        groups : array-like of shape (n_samples,), optional
            Sample id of each row; CV folds never split a group.

        Returns
        -------
        self
        """
        check_positive_int("n_particles", self.n_particles)
        if not isinstance(self.n_iter, numbers.Integral) or self.n_iter < 0:
            raise ValueError(f"n_iter must be a non-negative integer, got {self.n_iter!r}")
        check_cv(self.cv)
        bounds = [_check_bounds(n, b) for n, b in (("log_C_bounds", self.log_C_bounds),
                                                   ("log_gamma_bounds", self.log_gamma_bounds),
                                                   ("log_epsilon_bounds", self.log_epsilon_bounds))]
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64, ensure_min_samples=2)
        self.scaler_ = StandardScaler().fit(X) if self.standardize else None
        Xs = self.scaler_.transform(X) if self.scaler_ is not None else X
        self._y_mean = float(y.mean())
        std = float(y.std())
        self._y_std = std if std > 0 else 1.0
        ys = (y - self._y_mean) / self._y_std
        var = float(Xs.var())
        self._gamma_scale = 1.0 / (Xs.shape[1] * var) if var > 0 else 1.0

        folds = cv_folds(len(ys), groups, self.cv, self.random_state)
        if folds:
            d2 = euclidean_distances(Xs, squared=True)
            result = ParticleSwarm(self.n_particles, self.n_iter, random_state=self.random_state
                                   ).minimize(lambda p: self._cv_rmse(p, d2, ys, folds),
                                              _open_box(bounds))
            position = result.position
            self.cv_rmse_ = result.value * self._y_std
            self.fitness_history_ = result.history * self._y_std
        else:
            position = np.array([(lo + hi) / 2 for lo, hi in bounds])
            self.cv_rmse_ = float("nan")
            self.fitness_history_ = np.full(int(self.n_iter) + 1, np.nan)
        self.best_position_ = position
        c, gamma, eps = self._params(position)
        self.best_params_ = {"C": c, "gamma": gamma, "epsilon": eps * self._y_std}
        self.svr_ = SVR(kernel="rbf", C=c, gamma=gamma, epsilon=eps).fit(Xs, ys)
        return self

    def _params(self, position: np.ndarray) -> tuple[float, float, float]:
        log_c, log_g, log_e = (float(v) for v in position)
        return 10.0 ** log_c, 10.0 ** log_g * self._gamma_scale, 10.0 ** log_e

    def _cv_rmse(self, position: np.ndarray, d2: np.ndarray, ys: np.ndarray, folds) -> float:
        c, gamma, eps = self._params(position)
        kernel = np.exp(-gamma * d2)
        sq = 0.0
        for train, test in folds:
            svr = SVR(kernel="precomputed", C=c, epsilon=eps, tol=_SEARCH_TOL,
                      max_iter=_SEARCH_MAX_ITER)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                svr.fit(kernel[np.ix_(train, train)], ys[train])
            sq += float(((svr.predict(kernel[np.ix_(test, train)]) - ys[test]) ** 2).sum())
        return float(np.sqrt(sq / len(ys)))

    def predict(self, X):
        """Predicted targets, shape (n_samples,)."""
        check_is_fitted(self, "svr_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        if self.scaler_ is not None:
            X = self.scaler_.transform(X)
        return self.svr_.predict(X) * self._y_std + self._y_mean


def _open_box(bounds: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The swarm needs low < high; a fixed parameter (low == high) gets a negligible width."""
    return [(lo, hi) if hi > lo else (lo, lo + 1e-12) for lo, hi in bounds]
