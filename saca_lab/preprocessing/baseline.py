"""Baseline correction by adaptive iteratively reweighted penalized least squares (airPLS)."""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from joblib import effective_n_jobs

from saca_lab.preprocessing._base import StatelessSpectraTransformer
from saca_lab.preprocessing._validation import validate_spectra
from saca_lab.schema import AirPLS as _AirPLSConfig

# TrCSL's settings, owned by the config schema (data.preprocessing.airpls)
_DEFAULT = _AirPLSConfig()

# Spectra per thread below which a second thread costs more than it saves
_MIN_SPECTRA_PER_THREAD = 4


class AirPLSWarning(UserWarning):
    """Raised when airPLS stops because fewer than two points lie below the baseline."""


def _check_airpls_params(lam: float, max_iter: int, tol: float, order: int) -> None:
    if not isinstance(lam, numbers.Real) or not lam > 0:
        raise ValueError(f"lam must be a positive number, got {lam!r}.")
    if not isinstance(max_iter, numbers.Integral) or max_iter < 0:
        raise ValueError(f"max_iter must be a non-negative integer, got {max_iter!r}.")
    if not isinstance(tol, numbers.Real) or not tol >= 0:
        raise ValueError(f"tol must be a non-negative number, got {tol!r}.")
    if not isinstance(order, numbers.Integral) or order < 1:
        raise ValueError(f"order must be a positive integer, got {order!r}.")


def airpls_batch(
    Y: Any,
    lam: float = _DEFAULT.lam,
    max_iter: int = _DEFAULT.max_iter,
    tol: float = 1e-3,
    order: int = 2,
    *,
    n_jobs: int | None = None,
    return_n_iter: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """airPLS baselines of a batch of spectra, equal to pybaselines' ``airpls`` to round-off.

    Every spectrum ``y`` gets the baseline ``z`` that solves
    ``(W + lam * D'D) z = W y`` with ``D`` the ``order``-th difference matrix, iterating the
    weights as in Zhang et al. (2010) with the conventions of
    ``pybaselines.Baseline(x).airpls`` (v1.2): all weights start at 1; after iteration ``i``
    (1-based) the points below the baseline get ``exp(min(i, 50) * |r| / sum|r_neg|)`` and the
    others 0; iteration stops when ``sum|r_neg| / sum|y| < tol``, when fewer than two points lie
    below the baseline, or after ``max_iter + 1`` solves.

    Parameters
    ----------
    Y : array-like of shape (n_spectra, n_points) or (n_samples, n_shots, n_points)
        Spectra; a 3D stack is processed as ``n_samples * n_shots`` spectra.
    lam : float, default=1e4
        Smoothing parameter; larger values give stiffer baselines. TrCSL uses 1e4.
    max_iter : int, default=50
        Maximum number of reweighting iterations (TrCSL: 50).
    tol : float, default=1e-3
        Convergence threshold on ``sum|r_neg| / sum|y|``.
    order : int, default=2
        Order of the difference penalty.
    n_jobs : int or None, default=None
        Threads sharing the spectra; ``None`` means 1 unless in a
        :func:`joblib.parallel_config` context, ``-1`` all cores. At least
        ``_MIN_SPECTRA_PER_THREAD`` (4) spectra go to each thread.
    return_n_iter : bool, default=False
        Also return, per spectrum, the number of linear solves performed.

    Returns
    -------
    baselines : ndarray of the same shape as ``Y``
        The fitted baselines (float64).
    n_iter : ndarray of int, shape ``Y.shape[:-1]``
        Only with ``return_n_iter``.

    Warns
    -----
    AirPLSWarning
        When a spectrum stops because fewer than two points lie below its baseline (pybaselines
        warns likewise); that spectrum's last baseline is returned.

    Notes
    -----
    The whole batch runs in one call of a compiled kernel (numba; see
    ``saca_lab.preprocessing._airpls_kernel``), ~4-5x faster than a loop of pybaselines calls
    on one core (BENCHMARKS.md), and equal to them to round-off (~1e-11 of the baseline's
    scale for order 2; pybaselines' own two LAPACK paths differ by as much). Each spectrum
    stops iterating as soon as its own stopping rule holds, so the result of a spectrum does
    not depend on the others in the batch. The first call in a process loads the compiled
    kernel from numba's cache (compiling it once, a few seconds, where there is none).

    References
    ----------
    .. [1] Z.-M. Zhang, S. Chen and Y.-Z. Liang, "Baseline correction using adaptive
       iteratively reweighted penalized least squares", Analyst, 2010, 135, 1138-1146.
    .. [2] D. Erb, pybaselines, https://github.com/derb12/pybaselines (``whittaker.airpls``).
    """
    _check_airpls_params(lam, max_iter, tol, order)
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim not in (2, 3):
        raise ValueError(f"Y must be 2D or 3D, got an array of shape {Y.shape}.")
    if not np.isfinite(Y).all():
        raise ValueError("Y contains NaN or infinity.")
    flat = Y.reshape(-1, Y.shape[-1])
    n_spectra, n_points = flat.shape
    baselines = np.empty_like(flat)
    n_iter = np.zeros(n_spectra, dtype=np.int64)
    if n_spectra == 0 or n_points == 0:
        return (
            (baselines.reshape(Y.shape), n_iter.reshape(Y.shape[:-1]))
            if return_n_iter
            else baselines.reshape(Y.shape)
        )

    # imported here: numba costs ~0.3 s to import, which commands that never run airPLS skip
    from saca_lab.preprocessing._airpls_kernel import (
        airpls_spectra,
        airpls_spectra_order2,
        difference_penalty_bands,
    )

    kernel = airpls_spectra_order2 if order == 2 else airpls_spectra
    bands = lam * difference_penalty_bands(n_points, order)
    flat = np.ascontiguousarray(flat)
    # pybaselines' norm (numpy's pairwise sum), so the stopping rule compares the same numbers
    y_l1 = np.abs(flat).sum(axis=1)
    early = np.zeros(n_spectra, dtype=np.bool_)
    n_workers = max(1, min(effective_n_jobs(n_jobs), n_spectra // _MIN_SPECTRA_PER_THREAD))
    edges = np.linspace(0, n_spectra, n_workers + 1).round().astype(int)
    parts = [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]

    def run(part: slice) -> None:
        # fixed argument types: numba compiles (and caches) one version per type signature
        kernel(flat[part], y_l1[part], bands, int(max_iter), float(tol), baselines[part],
               n_iter[part], early[part])

    if n_workers > 1:
        # threads: the compiled kernel releases the GIL, and spectra are independent
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(n_workers) as pool:
            list(pool.map(run, parts))
    else:
        run(parts[0])
    n_early = int(np.count_nonzero(early))
    if n_early:
        warnings.warn(
            f"airPLS stopped early for {n_early} spectra because almost all baseline points "
            'were below the data; "tol" is too low and/or "max_iter" too high for them.',
            AirPLSWarning,
            stacklevel=2,
        )
    baselines = baselines.reshape(Y.shape)
    return (baselines, n_iter.reshape(Y.shape[:-1])) if return_n_iter else baselines


class AirPLS(StatelessSpectraTransformer):
    """Baseline correction by adaptive iteratively reweighted penalized least squares.

    Fits, for every spectrum on its own, a smooth baseline that the data lie above
    (Zhang, Chen & Liang 2010), as TrCSL does before normalising its LIBS spectra
    (``lam=1e4``, 50 iterations), and returns the corrected spectra ``X - baseline`` or the
    baseline itself. Results equal ``pybaselines.Baseline(x).airpls(y, lam, diff_order=order,
    max_iter, tol)`` to round-off; the batch runs in one compiled call, ~4-5x faster than a
    loop of pybaselines calls (see :func:`airpls_batch`).

    Parameters
    ----------
    lam : float, default=1e4
        Smoothing parameter lambda; larger values give stiffer baselines.
    max_iter : int, default=50
        Maximum number of reweighting iterations.
    tol : float, default=1e-3
        Convergence threshold on the L1 norm of the negative residuals relative to that of
        the spectrum.
    order : int, default=2
        Order of the difference penalty.
    return_baseline : bool, default=False
        Return the baselines instead of the corrected spectra.
    n_jobs : int or None, default=None
        Threads sharing the spectra (see :func:`airpls_batch`); ``None`` means 1, ``-1`` all
        cores.

    Attributes
    ----------
    n_features_in_ : int
        Number of points per spectrum seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the points seen during ``fit``, when ``X`` has string column names.

    See Also
    --------
    airpls_batch : the function doing the work, for 2D or 3D arrays.

    Notes
    -----
    Stateless: every spectrum is corrected on its own, ``fit`` only validates. 3D input
    ``(samples, shots, points)`` is corrected shot by shot and keeps its shape. Output is
    float64. Of scikit-learn's estimator checks, only ``check_transformer_n_iter`` does not
    apply: it expects any estimator with ``max_iter`` to record ``n_iter_`` in ``fit``,
    while here the iterations run per spectrum in ``transform``
    (``airpls_batch(..., return_n_iter=True)`` reports them).

    References
    ----------
    .. [1] Z.-M. Zhang, S. Chen and Y.-Z. Liang, "Baseline correction using adaptive
       iteratively reweighted penalized least squares", Analyst, 2010, 135, 1138-1146.
    .. [2] S. Ma, S. Xu, C. Pan et al., "TrCSL: a transferred CNN-SE-LSTM model for
       high-accuracy quantitative analysis of laser-induced breakdown spectroscopy with small
       samples", J. Anal. At. Spectrom., 2025, 40, 1810, Sec. 3.1.

    Examples
    --------
    >>> import numpy as np
    >>> from saca_lab.preprocessing import AirPLS
    >>> x = np.linspace(0, 1, 500)
    >>> arch = 5 * np.exp(-((x - 0.5) / 0.3) ** 2)
    >>> peaks = 20 * np.exp(-((x - 0.3) / 0.004) ** 2)
    >>> corrected = AirPLS(lam=1e4).fit_transform((arch + peaks)[None])
    >>> bool(abs(corrected[0, 400]) < 0.05)
    True
    """

    def __init__(
        self,
        lam: float = _DEFAULT.lam,
        max_iter: int = _DEFAULT.max_iter,
        tol: float = 1e-3,
        order: int = 2,
        return_baseline: bool = False,
        n_jobs: int | None = None,
    ) -> None:
        self.lam = lam
        self.max_iter = max_iter
        self.tol = tol
        self.order = order
        self.return_baseline = return_baseline
        self.n_jobs = n_jobs

    _preserves_dtype = ("float64",)

    def _check_params(self) -> None:
        _check_airpls_params(self.lam, self.max_iter, self.tol, self.order)

    def transform(self, X: Any) -> np.ndarray:
        """Remove (or return) the airPLS baseline of every spectrum.

        Parameters
        ----------
        X : array-like of shape (n_spectra, n_points) or (n_samples, n_shots, n_points)
            Spectra.

        Returns
        -------
        ndarray of the same shape, float64
            ``X - baseline``, or the baseline when ``return_baseline`` is True.
        """
        X = validate_spectra(self, X, reset=False, allow_3d=True, dtype=np.float64)
        baseline = airpls_batch(
            X, self.lam, self.max_iter, self.tol, self.order, n_jobs=self.n_jobs
        )
        return baseline if self.return_baseline else X - baseline

