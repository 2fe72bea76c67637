"""Compiled airPLS: the banded solves and reweighting of a whole batch in one call.

Each airPLS iteration solves ``(diag(w) + lam * D'D) z = w * y``, where ``D`` is the ``k``-th
order difference matrix: symmetric positive definite with half-bandwidth ``k``. LAPACK's banded
Cholesky (``dpbsv``, what pybaselines calls through ``scipy.linalg.solveh_banded``) spends most
of its time in per-column BLAS calls when the band is this narrow (~45 ns per row for
``k = 2``), and the recursion cannot be vectorised along a spectrum from numpy. Written out in
compiled code, the ``L D L'`` recursion, both substitutions and the reweighting cost a few ns
per row, and one spectrum's working set (``(k + 3) * 8`` bytes per point, ~650 kB for 16,375
points) stays in the core's L2 cache. That was measured faster than vectorising across spectra
(lanes of many spectra, in numpy or compiled), whose batch-sized working set streams through L3
(BENCHMARKS.md, "airPLS baseline correction").

Spectra are independent, so each one iterates until its own stopping rule holds; the kernel
releases the GIL, and threads can share a batch.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from scipy.special import comb

# pybaselines caps the iteration term of the weights there to keep exp() finite
MAX_EXPONENT_ITERATION = 50


def _compiled(func):
    """``njit`` with numba's on-disk cache where a cache folder is writable.

    numba caches in ``__pycache__`` beside this file, else in ``~/.cache/numba`` (or
    ``$NUMBA_CACHE_DIR``); where none is writable (a read-only install run with a read-only
    HOME) ``cache=True`` would raise at import, so the kernel is compiled once per process
    instead.
    """
    dispatcher = njit(nogil=True, error_model="numpy")(func)
    try:
        dispatcher.enable_caching()
    except RuntimeError:  # "cannot cache function ...: no locator available"
        pass
    return dispatcher


def difference_penalty_bands(n_points: int, order: int) -> np.ndarray:
    """Lower bands of ``D'D`` for the ``order``-th difference matrix ``D``.

    Parameters
    ----------
    n_points : int
        Size of the square penalty matrix.
    order : int
        Difference order, >= 1.

    Returns
    -------
    bands : ndarray of shape (order + 1, n_points)
        ``bands[t, i] == (D'D)[i, i - t]``, zero where ``i < t``.
    """
    bands = np.zeros((order + 1, n_points))
    n_rows = n_points - order
    if n_rows <= 0:
        # too short to take a single difference: no penalty at all
        return bands
    j = np.arange(order + 1)
    # forward-difference coefficients (-1)^(order - j) * C(order, j)
    coeffs = (-1.0) ** (order - j) * comb(order, j, exact=False)
    points = np.arange(n_points)
    # (D'D)[i, i - t] = sum_j coeffs[j + t] * coeffs[j] over difference rows r = i - t - j
    for t in range(order + 1):
        for jj in range(order + 1 - t):
            row = points - t - jj
            valid = (row >= 0) & (row < n_rows)
            bands[t] += coeffs[jj + t] * coeffs[jj] * valid
    return bands


@_compiled
def airpls_spectra(Y, y_l1, bands, max_iter, tol, out, n_iter, early):  # pragma: no cover
    """airPLS of every row of ``Y`` into ``out`` (see ``baseline.airpls_batch``).

    ``bands`` are ``lam * D'D`` as from :func:`difference_penalty_bands`, ``y_l1`` the L1 norm
    of each row. Writes the number of solves per spectrum into ``n_iter`` and whether it
    stopped because fewer than two points lay below its baseline into ``early``.
    (Compiled by numba, so coverage tools do not see it run.)
    """
    n_spectra, n = Y.shape
    k = bands.shape[0] - 1
    # k zero rows before and after the n rows of the factor, so that the recursions need no
    # boundary cases: row i + k holds [1 / D[i], L[i, i - 1], ..., L[i, i - k]]
    fac = np.zeros((n + 2 * k, k + 1))
    fwd = np.zeros(n + k)  # forward substitution L^-1 (w y), after k leading zeros
    z = np.zeros(n + k)  # the baseline, followed by k zeros
    e = np.zeros(k + 1)  # e[t] = L[i, i - t] * D[i - t] of the current row
    for s in range(n_spectra):
        y = Y[s]
        # all weights start at 1: exp(0 * below) with below = 1 > 0
        scale = 0.0
        for i in range(n):
            z[i] = y[i] + 1.0
        for iteration in range(1, max_iter + 2):
            for i in range(n):
                p = i + k
                below = z[i] - y[i]
                w = math.exp(scale * below) if below > 0.0 else 0.0
                d = bands[0, i] + w
                f = w * y[i]
                for t in range(k, 0, -1):
                    acc = bands[t, i]
                    for u in range(t + 1, k + 1):
                        acc -= e[u] * fac[p - t, u - t]
                    e[t] = acc
                    low = acc * fac[p - t, 0]
                    fac[p, t] = low
                    d -= acc * low
                    f -= low * fwd[p - t]
                fac[p, 0] = 1.0 / d
                fwd[p] = f
            n_below = 0
            below_l1 = 0.0
            for i in range(n - 1, -1, -1):
                p = i + k
                zi = fwd[p] * fac[p, 0]
                for t in range(1, k + 1):
                    zi -= fac[p + t, t] * z[i + t]
                z[i] = zi
                below = zi - y[i]
                if below > 0.0:
                    n_below += 1
                    below_l1 += below
            stop_early = n_below < 2
            if stop_early or below_l1 / y_l1[s] < tol or iteration == max_iter + 1:
                out[s, :] = z[:n]
                n_iter[s] = iteration
                early[s] = stop_early
                break
            scale = min(iteration, MAX_EXPONENT_ITERATION) / below_l1


@_compiled
def airpls_spectra_order2(Y, y_l1, bands, max_iter, tol, out, n_iter, early):  # pragma: no cover
    """:func:`airpls_spectra` for ``order == 2`` (TrCSL's), with the recursions' state in
    registers: about 1.3x faster than the general kernel, whose inner loops over the bands
    keep it in memory. Same arguments and results."""
    n_spectra, n = Y.shape
    # row i: [L[i, i - 1], L[i, i - 2], fwd[i] / D[i]], then two zero rows
    fac = np.zeros((n + 2, 3))
    z = np.zeros(n)
    for s in range(n_spectra):
        y = Y[s]
        scale = 0.0
        for i in range(n):
            z[i] = y[i] + 1.0
        for iteration in range(1, max_iter + 2):
            # rows i - 1 and i - 2: 1 / D, forward substitution; L[i - 1, i - 2]
            rd1 = rd2 = f1 = f2 = low_prev = 0.0
            for i in range(n):
                below = z[i] - y[i]
                w = math.exp(scale * below) if below > 0.0 else 0.0
                e2 = bands[2, i]
                low2 = e2 * rd2
                e1 = bands[1, i] - e2 * low_prev
                low1 = e1 * rd1
                rd = 1.0 / (bands[0, i] + w - e1 * low1 - e2 * low2)
                f = w * y[i] - low1 * f1 - low2 * f2
                fac[i, 0] = low1
                fac[i, 1] = low2
                fac[i, 2] = f * rd
                rd2, rd1, f2, f1, low_prev = rd1, rd, f1, f, low1
            n_below = 0
            below_l1 = 0.0
            z1 = z2 = 0.0  # the baseline at rows i + 1 and i + 2
            for i in range(n - 1, -1, -1):
                zi = fac[i, 2] - fac[i + 1, 0] * z1 - fac[i + 2, 1] * z2
                z[i] = zi
                z2, z1 = z1, zi
                below = zi - y[i]
                if below > 0.0:
                    n_below += 1
                    below_l1 += below
            stop_early = n_below < 2
            if stop_early or below_l1 / y_l1[s] < tol or iteration == max_iter + 1:
                out[s, :] = z
                n_iter[s] = iteration
                early[s] = stop_early
                break
            scale = min(iteration, MAX_EXPONENT_ITERATION) / below_l1
