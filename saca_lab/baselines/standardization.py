"""Instrument standardisation maps: spectra of a second (target) instrument onto a first (source).

Direct standardisation (DS) and piecewise direct standardisation (PDS) need the same transfer
standards measured on both instruments. The maps are those of ``chemotools``
(:mod:`chemotools.adaptation`, maintained and scikit-learn compatible); this module adds
mean-centring to DS (so an additive offset between instruments transfers) and keeps PDS's local
PLS within what a few standards allow. The regressors that read mapped spectra with a master PLS
model are in :mod:`saca_lab.baselines.calibration_transfer`.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

__all__ = ["DirectStandardization", "PiecewiseDirectStandardization"]

WANG_1991 = ("Y. Wang, D. J. Veltkamp, B. R. Kowalski, \"Multivariate instrument "
             "standardization\", Anal. Chem., 1991, 63, 2750-2756.")


def check_pair(X, X_source, what: str = "X_source"):
    """Both instruments' spectra of the same standards, row-aligned, as float64 arrays."""
    if X_source is None:
        raise ValueError(f"{what} is required: the transfer standards measured on the source "
                         "instrument, in the same order as X")
    X_source = check_array(X_source, dtype=np.float64)
    if X_source.shape != X.shape:
        raise ValueError(f"{what} has shape {X_source.shape}; it must match X {X.shape} "
                         "(the same standards, the same channels)")
    return X_source


class DirectStandardization(TransformerMixin, BaseEstimator):
    """Direct standardisation (DS): a linear map of whole target spectra onto the source.

    With the transfer standards mean-centred on each instrument,
    ``X_source - m_source ~ (X - m_target) F`` and ``F = (X - m_target)^+ (X_source - m_source)``
    (minimum-norm least squares through the pseudo-inverse, computed by
    :class:`chemotools.adaptation.DirectStandardization`). A new target spectrum ``x`` becomes
    ``m_source + (x - m_target) F``. The centring is the additive background term of Wang,
    Lysaght & Kowalski (1992) [2]_: without it an offset between instruments transfers only for
    spectra whose expansion in the standards has weights that sum to one.

    DS mixes all channels, so it corrects global differences of response and resolution, but
    with ``k`` standards it can only reproduce the ``k - 1`` directions they span; the rest of a
    new spectrum (and its noise) is projected away.

    Parameters
    ----------
    None

    Attributes
    ----------
    mean_target_ : ndarray of shape (n_features,)
        Mean target-instrument spectrum of the standards.
    mean_source_ : ndarray of shape (n_features,)
        Mean source-instrument spectrum of the standards.
    ds_ : chemotools.adaptation.DirectStandardization
        The map of the centred spectra.
    n_features_in_ : int

    References
    ----------
    .. [1] Y. Wang, D. J. Veltkamp, B. R. Kowalski, "Multivariate instrument
       standardization", Anal. Chem., 1991, 63, 2750-2756.
    .. [2] Y. Wang, M. J. Lysaght, B. R. Kowalski, "Improvement of multivariate calibration
       through instrument standardization", Anal. Chem., 1992, 64, 562-564.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X_source = rng.normal(size=(8, 30))
    >>> X_target = 0.9 * X_source + 0.2
    >>> ds = DirectStandardization().fit(X_target, X_source=X_source)
    >>> bool(np.allclose(ds.transform(X_target), X_source))
    True
    """

    def fit(self, X, y=None, *, X_source=None):
        """Fit the map from the standards measured on both instruments.

        Parameters
        ----------
        X : array-like of shape (n_standards, n_features)
            The standards on the target instrument.
        y : None
            Ignored.
        X_source : array-like of shape (n_standards, n_features)
            The same standards, in the same order, on the source instrument.

        Returns
        -------
        self
        """
        from chemotools.adaptation import DirectStandardization as _DS

        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        X_source = check_pair(X, X_source)
        self.mean_target_ = X.mean(axis=0)
        self.mean_source_ = X_source.mean(axis=0)
        self.ds_ = _DS().fit(X - self.mean_target_, X_source=X_source - self.mean_source_)
        return self

    def transform(self, X):
        """Target-instrument spectra as the source instrument would see them."""
        check_is_fitted(self, "ds_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self.mean_source_ + self.ds_.transform(X - self.mean_target_)



class PiecewiseDirectStandardization(TransformerMixin, BaseEstimator):
    """Piecewise direct standardisation (PDS): each source channel from a window of target channels.

    For every channel ``j`` a PLS model with an intercept predicts the source instrument's
    response at ``j`` from the target instrument's channels ``j - window_length .. j +
    window_length`` over the transfer standards; the coefficients form a banded transfer matrix
    (:class:`chemotools.adaptation.PiecewiseDirectStandardization`). Local windows absorb small
    wavelength shifts and changes of line width and response with far fewer standards than DS
    needs.

    Parameters
    ----------
    window_length : int, default=5
        Half width of the window, in channels; it must cover the largest shift between the
        instruments (in pixels) plus the broadening of a line.
    n_components : int, default=2
        PLS components of each local model, capped at ``n_standards - 1`` (the rank of ``k``
        centred standards) and at ``window_length + 1`` (the narrowest window, at the edges).
    scale : bool, default=False
        Scale each window's channels to unit variance (off: in an emission spectrum it would
        blow up the noise of the channels between lines).

    Attributes
    ----------
    n_components_ : int
        Components of the local models after the caps.
    pds_ : chemotools.adaptation.PiecewiseDirectStandardization
        The fitted map (band storage: a ``(n_features, 2 * window_length + 1)`` array).
    n_features_in_ : int

    References
    ----------
    .. [1] Y. Wang, D. J. Veltkamp, B. R. Kowalski, "Multivariate instrument
       standardization", Anal. Chem., 1991, 63, 2750-2756.
    .. [2] E. Bouveresse, D. L. Massart, "Improvement of the piecewise direct standardisation
       procedure for the transfer of NIR spectra for multivariate calibration", Chemom. Intell.
       Lab. Syst., 1996, 32, 201-213.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X_source = rng.normal(size=(8, 40))
    >>> X_target = np.roll(X_source, 1, axis=1) * 1.1 - 0.3
    >>> pds = PiecewiseDirectStandardization(window_length=2, n_components=5)
    >>> pds.fit(X_target, X_source=X_source).transform(X_target).shape
    (8, 40)
    """

    def __init__(self, window_length: int = 5, n_components: int = 2, scale: bool = False) -> None:
        self.window_length = window_length
        self.n_components = n_components
        self.scale = scale

    def fit(self, X, y=None, *, X_source=None):
        """Fit one local PLS model per channel from the standards measured on both instruments.

        Parameters
        ----------
        X : array-like of shape (n_standards, n_features)
            The standards on the target instrument.
        y : None
            Ignored.
        X_source : array-like of shape (n_standards, n_features)
            The same standards, in the same order, on the source instrument.

        Returns
        -------
        self
        """
        from chemotools.adaptation import PiecewiseDirectStandardization as _PDS

        for name in ("window_length", "n_components"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        X_source = check_pair(X, X_source)
        self.n_components_ = int(min(self.n_components, X.shape[0] - 1, self.window_length + 1))
        with warnings.catch_warnings():
            # a window where no standard differs from another (the flat baseline between lines)
            # has nothing to regress on: its local model predicts the mean source response,
            # which is right, and ikpls/chemotools warn once per such channel
            warnings.filterwarnings("ignore", r"X .* is close to zero", UserWarning)
            warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
            self.pds_ = _PDS(window_length=int(self.window_length),
                             n_components=self.n_components_, scale=bool(self.scale),
                             storage="band").fit(X, X_source=X_source)
        return self

    def transform(self, X):
        """Target-instrument spectra as the source instrument would see them."""
        check_is_fitted(self, "pds_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self.pds_.transform(X)
