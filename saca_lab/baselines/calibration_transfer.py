"""Chemometric calibration transfer: reuse a calibration built elsewhere with a few new samples.

Two situations, two families of methods:

* **Two instruments, the same standards measured on both** (a master spectrometer with a full
  calibration, a second unit with a handful of transfer standards). Direct standardisation (DS)
  and piecewise direct standardisation (PDS) map spectra of the second (target) instrument onto
  the first (source) instrument, where the master PLS model reads them
  (:class:`DSPLS`, :class:`PDSPLS`; the maps alone: :class:`DirectStandardization`,
  :class:`PiecewiseDirectStandardization`).
* **Two domains without a common sample** (slag pellets -> carbon steels, as in TrCSL): the
  master model's predictions of the new samples are corrected by a straight line fitted on the
  few labelled target samples (:class:`SlopeBiasPLS`), or one PLS is fitted on source and target
  samples together (:class:`SourceTargetPLS`).

The DS and PDS maps live in :mod:`saca_lab.baselines.standardization` (re-exported here); this
module wraps each map with the master PLS model (:class:`~saca_lab.baselines.pls.PLSRCV`).

Every regressor here takes the source data as keyword arguments of ``fit``
(``X_source``, ``y_source`` and, for DS/PDS, ``X_source_standards``), so scikit-learn's generic
estimator checks, which call ``fit(X, y)``, apply only in part (see the tests).
"""


from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from saca_lab.baselines.pls import PLSRCV
from saca_lab.baselines.standardization import (
    WANG_1991,
    DirectStandardization,
    PiecewiseDirectStandardization,
    check_pair,
)

__all__ = ["DSPLS", "DirectStandardization", "PDSPLS", "PiecewiseDirectStandardization",
           "SlopeBiasPLS", "SourceTargetPLS"]


class _SourceModelMixin:
    """The master PLS model on the source data (shared by every regressor here)."""

    def _master(self):
        return PLSRCV(max_components=self.max_components, cv=self.cv, scale=False,
                      random_state=self.random_state)

    def _check_source(self, n_features: int, X_source, y_source):
        if X_source is None or y_source is None:
            raise ValueError("X_source and y_source are required: the source data the master "
                             "model is fitted on")
        X_source = check_array(X_source, dtype=np.float64, ensure_min_samples=2)
        y_source = np.asarray(y_source, dtype=np.float64).ravel()
        if X_source.shape[1] != n_features:
            raise ValueError(f"X_source has {X_source.shape[1]} features, X has {n_features}: "
                             "source and target spectra must share their channels")
        if y_source.shape != (X_source.shape[0],):
            raise ValueError(f"y_source has {y_source.size} values for {X_source.shape[0]} "
                             "source spectra")
        return X_source, y_source

    @property
    def n_components_(self) -> int:
        """Components of the fitted PLS model."""
        check_is_fitted(self, "master_")
        return self.master_.n_components_


_MASTER_PARAMS = """    max_components : int, default=15
        Largest number of PLS components the master model tries (chosen by grouped CV on its
        training data; :class:`~saca_lab.baselines.pls.PLSRCV`).
    cv : int, default=5
        CV folds of the component choice.
    random_state : int or None, default=0
        Shuffling of the CV folds."""


class _StandardizedPLS(_SourceModelMixin, RegressorMixin, BaseEstimator):
    """Master PLS on the source instrument, target spectra standardised onto it by the map
    of the subclass's ``_standardizer()``."""

    def fit(self, X, y=None, *, X_source=None, y_source=None, X_source_standards=None,
            source_groups=None):
        """Fit the master model on the source data and the map on the transfer standards.

        Parameters
        ----------
        X : array-like of shape (n_standards, n_features)
            Transfer standards measured on the target instrument.
        y : array-like of shape (n_standards,), optional
            Ignored: standardisation needs no reference values (they matter only through the
            master model's training data).
        X_source, y_source : array-like of shape (n_source, n_features) and (n_source,)
            The master model's calibration set on the source instrument.
        X_source_standards : array-like of shape (n_standards, n_features)
            The transfer standards, in the order of ``X``, on the source instrument.
        source_groups : array-like of shape (n_source,), optional
            Sample of each source spectrum (CV folds of the master model never split one).

        Returns
        -------
        self
        """
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        X_source, y_source = self._check_source(X.shape[1], X_source, y_source)
        X_std = check_pair(X, X_source_standards, "X_source_standards")
        self.master_ = self._master().fit(X_source, y_source, groups=source_groups)
        self.standardizer_ = self._standardizer().fit(X, X_source=X_std)
        return self

    def predict(self, X):
        """Predictions of target-instrument spectra by the master model, after the map."""
        check_is_fitted(self, "master_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return np.ravel(self.master_.predict(self.standardizer_.transform(X)))


class PDSPLS(_StandardizedPLS):
    __doc__ = f"""PLS calibrated on the source instrument, target spectra mapped onto it by PDS.

    ``plsr_pds`` in ``saca-lab compare``. See :class:`PiecewiseDirectStandardization`.

    Parameters
    ----------
    window_length : int, default=5
        Half width of the PDS windows, in channels.
    pds_components : int, default=2
        PLS components of each local PDS model (capped, see
        :class:`PiecewiseDirectStandardization`).
{_MASTER_PARAMS}

    Attributes
    ----------
    master_ : PLSRCV
        The master model, fitted on the source data.
    standardizer_ : PiecewiseDirectStandardization
        The map, fitted on the transfer standards.
    n_components_ : int
        Components of the master model.
    n_features_in_ : int

    References
    ----------
    .. [1] {WANG_1991}
    .. [2] E. Bouveresse, D. L. Massart, Chemom. Intell. Lab. Syst., 1996, 32, 201-213.
    """

    def __init__(self, window_length: int = 5, pds_components: int = 2, max_components: int = 15,
                 cv: int = 5, random_state: int | None = 0) -> None:
        self.window_length = window_length
        self.pds_components = pds_components
        self.max_components = max_components
        self.cv = cv
        self.random_state = random_state

    def _standardizer(self):
        return PiecewiseDirectStandardization(window_length=self.window_length,
                                              n_components=self.pds_components)


class DSPLS(_StandardizedPLS):
    __doc__ = f"""PLS calibrated on the source instrument, target spectra mapped onto it by DS.

    ``plsr_ds`` in ``saca-lab compare``. See :class:`DirectStandardization`.

    Parameters
    ----------
{_MASTER_PARAMS}

    Attributes
    ----------
    master_ : PLSRCV
        The master model, fitted on the source data.
    standardizer_ : DirectStandardization
        The map, fitted on the transfer standards.
    n_components_ : int
        Components of the master model.
    n_features_in_ : int

    References
    ----------
    .. [1] {WANG_1991}
    """

    def __init__(self, max_components: int = 15, cv: int = 5, random_state: int | None = 0) -> None:
        self.max_components = max_components
        self.cv = cv
        self.random_state = random_state

    def _standardizer(self):
        return DirectStandardization()


class SlopeBiasPLS(_SourceModelMixin, RegressorMixin, BaseEstimator):
    __doc__ = f"""PLS calibrated on the source data, its predictions corrected by a line.

    The master model predicts the labelled target samples; ``y ~ bias + slope * y_master`` is
    fitted to them by least squares and applied to every later prediction. The correction
    needs no sample measured in both domains, only reference values of a few target samples.
    It repairs a systematic offset and a change of sensitivity, nothing a straight line cannot
    describe (an interference the master model never saw stays).

    ``plsr_slope_bias`` in ``saca-lab compare``.

    Parameters
    ----------
    slope : bool, default=True
        Fit the slope too; with False (or fewer than ``min_slope_samples`` target samples, or
        master predictions that do not vary) only the bias is corrected.
    min_slope_samples : int, default=3
        Fewest target samples a slope is fitted on: through two points a line passes exactly,
        whatever their noise.
{_MASTER_PARAMS}

    Attributes
    ----------
    master_ : PLSRCV
        The master model, fitted on the source data.
    slope_ : float
    bias_ : float
        The correction: ``prediction = bias_ + slope_ * master_.predict(X)``.
    n_components_ : int
        Components of the master model.
    n_features_in_ : int

    References
    ----------
    .. [1] E. Bouveresse, D. L. Massart, "Standardisation of near-infrared spectrometric
       instruments: a review", Vib. Spectrosc., 1996, 11, 3-15 (slope/bias correction, Sec. 3).
    .. [2] R. N. Feudale, N. A. Woody, H. Tan, A. J. Myles, S. D. Brown, J. Ferré, "Transfer of
       multivariate calibration models: a review", Chemom. Intell. Lab. Syst., 2002, 64, 181-192.
    """

    def __init__(self, slope: bool = True, min_slope_samples: int = 3, max_components: int = 15,
                 cv: int = 5, random_state: int | None = 0) -> None:
        self.slope = slope
        self.min_slope_samples = min_slope_samples
        self.max_components = max_components
        self.cv = cv
        self.random_state = random_state

    def fit(self, X, y, *, X_source=None, y_source=None, source_groups=None):
        """Fit the master model on the source data and the line on the target samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Labelled target samples.
        y : array-like of shape (n_samples,)
        X_source, y_source : array-like of shape (n_source, n_features) and (n_source,)
            The master model's calibration set.
        source_groups : array-like of shape (n_source,), optional
            Sample of each source spectrum (CV folds of the master model never split one).

        Returns
        -------
        self
        """
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        X_source, y_source = self._check_source(X.shape[1], X_source, y_source)
        self.master_ = self._master().fit(X_source, y_source, groups=source_groups)
        y_master = np.ravel(self.master_.predict(X))
        if self.slope and len(y) >= self.min_slope_samples and np.ptp(y_master) > 0:
            self.slope_, self.bias_ = (float(v) for v in np.polyfit(y_master, y, 1))
        else:
            self.slope_, self.bias_ = 1.0, float(np.mean(y - y_master))
        return self

    def predict(self, X):
        """Corrected predictions of target samples."""
        check_is_fitted(self, "master_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self.bias_ + self.slope_ * np.ravel(self.master_.predict(X))


class SourceTargetPLS(_SourceModelMixin, RegressorMixin, BaseEstimator):
    __doc__ = f"""One PLS model fitted on the source and the target samples together.

    The simplest use of a large foreign calibration set: pool it with the few target samples
    and let the PLS components (chosen by grouped CV over the pooled set) find what both share.
    ``plsr_source_target`` in ``saca-lab compare`` (``--source-dataset``).

    Parameters
    ----------
{_MASTER_PARAMS}

    Attributes
    ----------
    master_ : PLSRCV
        The pooled model.
    n_source_ : int
        Source spectra it was fitted on.
    n_components_ : int
    n_features_in_ : int

    References
    ----------
    .. [1] R. N. Feudale et al., "Transfer of multivariate calibration models: a review",
       Chemom. Intell. Lab. Syst., 2002, 64, 181-192 (updating a calibration with new samples).
    """

    def __init__(self, max_components: int = 15, cv: int = 5, random_state: int | None = 0) -> None:
        self.max_components = max_components
        self.cv = cv
        self.random_state = random_state

    def fit(self, X, y, *, X_source=None, y_source=None, groups=None, source_groups=None):
        """Fit one PLS model on the union of source and target samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Labelled target samples.
        y : array-like of shape (n_samples,)
        X_source, y_source : array-like of shape (n_source, n_features) and (n_source,)
        groups, source_groups : array-like, optional
            Sample of each target / source spectrum; rows with equal labels (one sample's
            shots, or one sample measured in both domains) never fall in different CV folds.
            Without them every row is its own sample and the two domains never share one.

        Returns
        -------
        self
        """
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        X_source, y_source = self._check_source(X.shape[1], X_source, y_source)
        if (groups is None) != (source_groups is None):
            raise ValueError("give both groups and source_groups, or neither")
        if groups is None:
            all_groups = None
        else:
            all_groups = np.concatenate([np.asarray(source_groups).astype(str),
                                         np.asarray(groups).astype(str)])
        self.n_source_ = int(X_source.shape[0])
        self.master_ = self._master().fit(np.vstack([X_source, X]), np.concatenate([y_source, y]),
                                          groups=all_groups)
        return self

    def predict(self, X):
        """Predictions of the pooled model."""
        check_is_fitted(self, "master_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return np.ravel(self.master_.predict(X))
