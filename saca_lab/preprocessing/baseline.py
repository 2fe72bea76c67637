"""Baseline correction by adaptive iteratively reweighted penalized least squares (airPLS)."""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs

from saca_lab.preprocessing._banded import LaneLayout, LaneWhittakerSolver
from saca_lab.preprocessing._base import StatelessSpectraTransformer
from saca_lab.preprocessing._validation import validate_spectra

# Vector lanes per block and bounds on the rows per chunk. Each numpy call in the solver's
# loops has a fixed cost of ~0.4 us, so a call should span thousands of lanes; long chunks
# keep the separator system small, short ones keep the loops short when spectra are few.
_LANES = 8192
_MIN_CHUNK, _MAX_CHUNK = 32, 128
# pybaselines caps the iteration term of the weights there to keep exp() finite
_MAX_EXPONENT_ITERATION = 50


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
    lam: float = 1e4,
    max_iter: int = 50,
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
        Worker processes (joblib) for separate blocks of spectra; ``None`` means 1 unless in
        a :func:`joblib.parallel_config` context, ``-1`` all cores. Worth it for large batches
        only: starting the workers costs about a second the first time.
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
    Spectra are solved together by a lane-vectorised banded solver (see
    ``saca_lab.preprocessing._banded``): about twice as fast as a loop of
    pybaselines calls, and equal to them to round-off (~1e-11 of the baseline's scale for
    order 2; pybaselines' own two LAPACK paths differ by as much).
    Spectra leave the active set as soon as they converge.

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

    n_workers = max(1, min(effective_n_jobs(n_jobs), n_spectra))
    per_worker = -(-n_spectra // n_workers)
    chunk = int(np.clip(-(-per_worker * n_points // _LANES), _MIN_CHUNK, _MAX_CHUNK))
    layout = LaneLayout.for_size(n_points, order, chunk=chunk)
    block = min(max(1, _LANES // layout.p), per_worker)
    parts = [slice(start, start + block) for start in range(0, n_spectra, block)]
    if n_workers > 1 and len(parts) > 1:
        # processes, not threads: the solver makes thousands of short numpy calls and the
        # GIL hand-offs between two threads cost more than the second core gains
        results = Parallel(n_jobs=n_workers)(
            delayed(_airpls_blocks)(flat[part], layout, lam, max_iter, tol, block)
            for part in _split(parts, n_workers)
        )
        n_early = 0
        for part, (base, iters, early) in zip(_split(parts, n_workers), results, strict=True):
            baselines[part], n_iter[part] = base, iters
            n_early += early
    else:
        baselines[:], n_iter[:], n_early = _airpls_blocks(flat, layout, lam, max_iter, tol, block)
    if n_early:
        warnings.warn(
            f"airPLS stopped early for {n_early} spectra because almost all baseline points "
            'were below the data; "tol" is too low and/or "max_iter" too high for them.',
            AirPLSWarning,
            stacklevel=2,
        )
    baselines = baselines.reshape(Y.shape)
    return (baselines, n_iter.reshape(Y.shape[:-1])) if return_n_iter else baselines


def _split(parts: list[slice], n_groups: int) -> list[slice]:
    """Merge consecutive block slices into ``n_groups`` contiguous slices of whole blocks."""
    groups = np.array_split(np.arange(len(parts)), n_groups)
    return [slice(parts[g[0]].start, parts[g[-1]].stop) for g in groups if g.size]


def _airpls_blocks(
    Y: np.ndarray, layout: LaneLayout, lam: float, max_iter: int, tol: float, block: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """airPLS on consecutive blocks of ``block`` spectra, reusing one set of buffers.

    Reuse matters: fresh multi-MB arrays cost a page fault per 4 kB on first touch, about
    a sixth of the run time when every block allocates its own.
    """
    baselines = np.empty_like(Y)
    n_iter = np.zeros(Y.shape[0], dtype=np.int64)
    n_early = 0
    size = min(block, Y.shape[0])
    template = LaneWhittakerSolver(layout, lam, size)
    shape = (layout.m + layout.k, size, layout.p)
    buffers = {name: np.empty(shape) for name in ("y", "weights", "rhs", "below")}
    buffers["is_below"] = np.empty(shape, dtype=bool)
    for start in range(0, Y.shape[0], block):
        part = slice(start, start + block)
        n = Y[part].shape[0]
        solver = template.view(n, share_workspace=True)
        views = {name: buf[:, :n] for name, buf in buffers.items()}
        baselines[part], n_iter[part], early = _airpls_block(Y[part], solver, max_iter, tol, views)
        n_early += early
    return baselines, n_iter, n_early


def _airpls_block(
    Y: np.ndarray,
    solver: LaneWhittakerSolver,
    max_iter: int,
    tol: float,
    buffers: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, int]:
    """airPLS on one block of spectra held in lane layout; see :func:`airpls_batch`.

    ``buffers`` holds lane-layout scratch arrays ``y``, ``weights``, ``rhs``, ``below`` and
    ``is_below`` (bool) for the block. Returns the baselines, the number of solves per
    spectrum and how many spectra stopped with fewer than two points below the baseline.
    """
    layout = solver.layout
    n_spectra = Y.shape[0]
    y = layout.to_lanes(Y, out=buffers["y"])
    weights = layout.to_lanes(np.broadcast_to(1.0, Y.shape), out=buffers["weights"])
    rhs = buffers["rhs"]
    np.copyto(rhs, y)
    below, is_below = buffers["below"], buffers["is_below"]
    y_l1 = np.abs(Y).sum(axis=1)
    active = np.arange(n_spectra)
    baselines = np.empty_like(Y)
    n_iter = np.zeros(n_spectra, dtype=np.int64)
    n_early = 0

    for iteration in range(1, max_iter + 2):
        z = solver.solve(weights, rhs)
        # minus the residual, so that points below the baseline are positive
        np.subtract(z, y, out=below)
        np.greater(below, 0.0, out=is_below)
        n_below = np.count_nonzero(is_below, axis=0).sum(axis=-1)
        below_l1 = np.maximum(below, 0.0, out=weights).sum(axis=0).sum(axis=-1)
        early = n_below < 2
        with np.errstate(divide="ignore", invalid="ignore"):
            converged = below_l1 / y_l1 < tol
        done = early | converged | (iteration == max_iter + 1)

        if done.any():
            finished = active[done]
            baselines[finished] = layout.from_lanes(z, np.flatnonzero(done))
            n_iter[finished] = iteration
            n_early += int(np.count_nonzero(early))
            keep = ~done
            n_keep = int(np.count_nonzero(keep))
            if n_keep == 0:
                break
            # move the spectra still running to the first lanes of the same buffers
            for arr in (y, below, is_below):
                arr[:, :n_keep] = arr[:, keep]
            y, below, is_below = y[:, :n_keep], below[:, :n_keep], is_below[:, :n_keep]
            weights, rhs = weights[:, :n_keep], rhs[:, :n_keep]
            active, below_l1, y_l1 = active[keep], below_l1[keep], y_l1[keep]
            solver = solver.view(n_keep)

        scale = min(iteration, _MAX_EXPONENT_ITERATION) / below_l1
        # the exponent is at most min(iteration, 50), so exp() cannot overflow
        np.multiply(below, scale[None, :, None], out=weights)
        np.exp(weights, out=weights)
        np.multiply(weights, is_below, out=weights)
        np.multiply(weights, y, out=rhs)
    return baselines, n_iter, n_early


class AirPLS(StatelessSpectraTransformer):
    """Baseline correction by adaptive iteratively reweighted penalized least squares.

    Fits, for every spectrum on its own, a smooth baseline that the data lie above
    (Zhang, Chen & Liang 2010), as TrCSL does before normalising its LIBS spectra
    (``lam=1e4``, 50 iterations), and returns the corrected spectra ``X - baseline`` or the
    baseline itself. Results equal ``pybaselines.Baseline(x).airpls(y, lam, diff_order=order,
    max_iter, tol)`` to round-off; the batch is solved together, about twice as fast as a
    loop over spectra (see :func:`airpls_batch`).

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
        Worker processes for blocks of spectra (see :func:`airpls_batch`); ``None`` means 1,
        ``-1`` all cores.

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
        lam: float = 1e4,
        max_iter: int = 50,
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

