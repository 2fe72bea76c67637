"""Batched solver for the banded systems of Whittaker (penalised least-squares) smoothing.

Each airPLS iteration solves ``(diag(w) + lam * D'D) z = w * y`` for every spectrum, where
``D`` is the ``k``-th order difference matrix, so the matrix is symmetric positive definite
with half-bandwidth ``k``. LAPACK's banded Cholesky (``dpbsv``, what pybaselines calls through
``scipy.linalg.solveh_banded``) spends most of its time in per-column BLAS calls when the band
is this narrow (~45 ns per row for ``k = 2``), and the recursion cannot be vectorised along a
spectrum from numpy.

This module therefore vectorises *across* independent recursions. Every spectrum is cut into
``p`` chunks of ``m`` interior rows, separated by ``k`` separator rows; once the separators are
known the chunks are decoupled (the band is only ``k`` wide). That is nested-dissection /
substructuring, i.e. symmetric Gaussian elimination in the order "all interiors, then all
separators", which needs no pivoting and is backward stable for an SPD matrix:

1. ``L D L'`` factor every chunk interior, with all chunks of all spectra as vector lanes of a
   numpy loop over the ``m`` rows; in the same sweep, forward-substitute the right-hand side
   and the left coupling columns and accumulate their ``D^-1`` Gram products (the Schur
   complement contributions).
2. Solve the small block-tridiagonal Schur complement on the separators (``k`` unknowns per
   chunk) with ``solveh_banded``.
3. Back-substitute the interiors, again lane-vectorised.

The per-row numpy calls act on ``n_spectra * p`` lanes, so their fixed cost (~0.4 us) is
amortised; with ~8,000 lanes a solve costs ~15 ns per point, against ~45 ns for ``dpbsv``.
Beyond that the loops are bound by L2/L3 traffic (every call streams a 64 kB row of each
operand), not by arithmetic, so neither more lanes nor a second thread helps much.

Data live in a "lane layout" (:class:`~saca_lab.preprocessing._lanes.LaneLayout`) ``(m + k, n_spectra, p)``: index ``[j, b, c]`` holds point
``c * (m + k) + j`` of spectrum ``b``; rows ``j >= m`` are the separator after chunk ``c``.
Points past the end of the spectrum are decoupled dummies (unit diagonal, zero right-hand side)
and the last separator of every spectrum lies entirely in that padding.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solveh_banded
from scipy.special import comb

from saca_lab.preprocessing._lanes import LaneLayout


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


class LaneWhittakerSolver:
    """Solve ``(diag(w) + lam * D'D) z = rhs`` for a block of spectra at once, in lane layout.

    Parameters
    ----------
    layout : LaneLayout
        Chunking of the spectra; ``layout.k`` is the difference order.
    lam : float
        Smoothing parameter multiplying ``D'D``.
    n_spectra : int
        Number of spectra solved together.

    Notes
    -----
    The recursion is written with the *negated* off-diagonals of the matrix and of ``L`` so
    that every update is a multiply-add, which saves one numpy call per term in the hot loops.
    """

    def __init__(self, layout: LaneLayout, lam: float, n_spectra: int) -> None:
        self.layout = layout
        k, m, p = layout.k, layout.m, layout.p
        bands = lam * difference_penalty_bands(layout.n_points, k)
        # padding rows get a unit diagonal so they solve to zero and stay decoupled
        padded = np.zeros((k + 1, layout.padded))
        padded[0, layout.n_points :] = 1.0
        padded[:, : layout.n_points] = bands
        per_chunk = padded.reshape(k + 1, p, m + k).transpose(0, 2, 1)[:, :, None, :]
        self.n_spectra = n_spectra
        # one copy for all spectra, broadcast along the spectrum axis: materialising it per
        # lane saves only ~4% of the loop time but costs three arrays of the batch's size
        self.base_diag = np.ascontiguousarray(per_chunk[0])
        self.neg_bands = -per_chunk[1:]
        self._workspace: dict[str, np.ndarray] | None = None

    def view(self, n_spectra: int, *, share_workspace: bool = True) -> LaneWhittakerSolver:
        """Solver for the first ``n_spectra`` lanes, without copying.

        The penalty bands are the same for every spectrum, so any subset of spectra can run
        on the first lanes. The scratch buffers are shared too (allocated here first) unless
        ``share_workspace`` is False, which solvers used concurrently need.
        """
        if n_spectra > self.n_spectra:
            raise ValueError(f"a view cannot have more than {self.n_spectra} spectra")
        new = object.__new__(LaneWhittakerSolver)
        new.layout = self.layout
        new.n_spectra = n_spectra
        new.base_diag = self.base_diag
        new.neg_bands = self.neg_bands
        new._workspace = None
        if share_workspace:
            new._workspace = {
                name: buf[(slice(None),) * (buf.ndim - 2) + (slice(0, n_spectra),)]
                for name, buf in self._buffers().items()
            }
        return new

    def _buffers(self) -> dict[str, np.ndarray]:
        # reused across solves: fresh multi-MB arrays would page-fault inside the hot loops
        if self._workspace is None:
            k, m = self.layout.k, self.layout.m
            lane_shape = (self.n_spectra, self.layout.p)
            self._workspace = {
                "neg_low": np.empty((k, m, *lane_shape)),
                "scaled": np.empty((m, k + 1, *lane_shape)),
                "out": np.empty((m + k, *lane_shape)),
            }
        return self._workspace

    def solve(self, weights: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """Solve the weighted systems.

        Parameters
        ----------
        weights, rhs : ndarray of shape (m + k, n_spectra, p)
            Diagonal weights and right-hand sides in lane layout (zero in the padding).

        Returns
        -------
        ndarray of shape (m + k, n_spectra, p)
            The solutions in lane layout (zero in the padding). This is a scratch buffer of
            the solver, overwritten by the next call.
        """
        m = self.layout.m
        neg_low, scaled, gram, tail_fwd, tail_recip = self._factor_forward(weights, rhs)
        right, tail_gram = self._right_coupling(neg_low, tail_fwd, tail_recip)
        sep = self._solve_separators(weights, rhs, gram, tail_gram)
        out = self._buffers()["out"]
        out[m:] = sep
        self._back_substitute(out, neg_low, scaled, right, tail_recip, sep)
        return out

    def _neg_band_rows(self) -> list[list[np.ndarray] | None]:
        # row views are built once: indexing inside the hot loops would create a view per call
        return [None] + [list(self.neg_bands[t - 1]) for t in range(1, self.layout.k + 1)]

    def _factor_forward(self, weights: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, ...]:
        """Lane-wise ``L D L'`` of the chunk interiors with forward substitution.

        Forward substitution runs on ``k + 1`` columns at once: the ``k`` columns coupling the
        interior to its left separator and the right-hand side. Only the last ``k`` rows of
        those columns are kept (in a ring buffer); what the back substitution needs is their
        ``D^-1``-scaled version, stored in ``scaled``.

        Returns ``neg_low[t - 1, i]`` = ``-L[i, i - t]``, ``scaled``, ``gram[s, q]`` =
        ``sum_i col_s[i] col_q[i] / D[i]`` for left columns ``s < k`` and all ``q``, and the
        unscaled columns and ``1 / D`` of the last ``k`` rows.
        """
        k, m = self.layout.k, self.layout.m
        lane_shape = weights.shape[1:]
        ws = self._buffers()
        neg_low, scaled = ws["neg_low"], ws["scaled"]
        gram = np.zeros((k, k + 1, *lane_shape))

        nb = self._neg_band_rows()
        nl = [None] + [list(neg_low[t - 1]) for t in range(1, k + 1)]
        base, w, b, sc = list(self.base_diag), list(weights), list(rhs), list(scaled)
        ring_size = k + 1
        cols = list(np.zeros((ring_size, k + 1, *lane_shape)))
        recips = list(np.empty((ring_size, *lane_shape)))
        ne: list[np.ndarray | None] = [None] * (k + 1)
        ne_buf = [np.empty(lane_shape) for _ in range(k + 1)]
        d, tmp = np.empty(lane_shape), np.empty(lane_shape)
        tmp_cols = np.empty((k + 1, *lane_shape))
        tmp_gram = np.empty((k, k + 1, *lane_shape))

        for i in range(m):
            reach = min(i, k)
            np.add(base[i], w[i], out=d)
            # -e[t] with e[t] = L[i, i-t] * D[i-t], from the farthest band inwards
            for t in range(reach, 0, -1):
                if t == reach:
                    ne[t] = nb[t][i]
                else:
                    acc = ne_buf[t]
                    np.multiply(ne[reach], nl[reach - t][i - t], out=acc)
                    np.add(nb[t][i], acc, out=acc)
                    for u in range(t + 1, reach):
                        np.multiply(ne[u], nl[u - t][i - t], out=tmp)
                        np.add(acc, tmp, out=acc)
                    ne[t] = acc
                np.multiply(ne[t], recips[(i - t) % ring_size], out=nl[t][i])
                np.multiply(nl[t][i], ne[t], out=tmp)
                np.subtract(d, tmp, out=d)
            r = recips[i % ring_size]
            np.divide(1.0, d, out=r)

            col = cols[i % ring_size]
            if i < k:
                # row i couples to left-separator row s (global start - k + s) for s >= i
                col[:i] = 0.0
                for s in range(i, k):
                    np.negative(nb[i + k - s][i], out=col[s])
                np.copyto(col[k], b[i])
                for t in range(1, reach + 1):
                    col += nl[t][i] * cols[(i - t) % ring_size]
            else:
                np.multiply(nl[1][i], cols[(i - 1) % ring_size], out=col)
                for t in range(2, k + 1):
                    np.multiply(nl[t][i], cols[(i - t) % ring_size], out=tmp_cols)
                    np.add(col, tmp_cols, out=col)
                np.add(col[k], b[i], out=col[k])

            np.multiply(r, col, out=sc[i])
            np.multiply(sc[i][:k, None], col[None], out=tmp_gram)
            np.add(gram, tmp_gram, out=gram)

        tail_rows = [(m - k + j) % ring_size for j in range(k)] if m >= k else []
        tail_fwd = np.stack([cols[j] for j in tail_rows]) if tail_rows else None
        tail_recip = np.stack([recips[j] for j in tail_rows]) if tail_rows else None
        return neg_low, scaled, gram, tail_fwd, tail_recip

    def _right_coupling(
        self, neg_low: np.ndarray, tail_fwd: np.ndarray | None, tail_recip: np.ndarray | None
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Forward-substituted right coupling columns, nonzero only in the last ``k`` rows.

        Returns ``right[j, t]`` for interior row ``m - k + j`` and right-separator row ``t``,
        and the Gram products (left x right, right x right, right x rhs) over those rows.
        """
        k, m, p = self.layout.k, self.layout.m, self.layout.p
        lane_shape = neg_low.shape[2:]
        right = np.zeros((k, k, *lane_shape))
        if p == 1 or tail_fwd is None:
            # the only right separator is padding: no coupling
            zeros = np.zeros((k, k, *lane_shape))
            return right, (zeros, zeros, np.zeros((k, *lane_shape)))
        for j in range(k):
            row = m - k + j
            for t in range(j + 1):
                np.negative(self.neg_bands[k + t - j - 1, m + t], out=right[j, t])
            for u in range(1, j + 1):
                right[j] += neg_low[u - 1, row] * right[j - u]
        left_right = np.einsum("jsbc,jbc,jtbc->stbc", tail_fwd[:, :k], tail_recip, right)
        right_right = np.einsum("jsbc,jbc,jtbc->stbc", right, tail_recip, right)
        right_rhs = np.einsum("jsbc,jbc,jbc->sbc", right, tail_recip, tail_fwd[:, k])
        return right, (left_right, right_right, right_rhs)

    def _solve_separators(
        self,
        weights: np.ndarray,
        rhs: np.ndarray,
        gram: np.ndarray,
        tail: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> np.ndarray:
        """Assemble and solve the block-tridiagonal Schur complement on the separators.

        Returns the separator solution as ``(k, n_spectra, p)``.
        """
        k, m = self.layout.k, self.layout.m
        left_right, right_right, right_rhs = tail
        gram_cc, gram_cr = gram[:, :k], gram[:, k]
        n_spectra, p = weights.shape[1:]

        # separator c follows chunk c: chunk c's right and chunk c+1's left separator
        block = np.empty((k, k, n_spectra, p))
        for s in range(k):
            block[s, s] = self.base_diag[m + s] + weights[m + s]
            for s2 in range(s):
                block[s, s2] = -self.neg_bands[s - s2 - 1, m + s]
        block -= right_right
        block[:, :, :, :-1] -= gram_cc[:, :, :, 1:]
        sep_rhs = rhs[m:] - right_rhs
        sep_rhs[:, :, :-1] -= gram_cr[:, :, 1:]
        # rows of separator c+1 against columns of separator c, through chunk c+1
        off = np.zeros((k, k, n_spectra, p))
        off[:, :, :, :-1] = -left_right[:, :, :, 1:].swapaxes(0, 1)

        # symmetric lower-banded storage, bandwidth 2k - 1, unknowns ordered (b, c, s)
        ab = np.zeros((2 * k, n_spectra, p, k))
        for s in range(k):
            for s2 in range(s + 1):
                ab[s - s2, :, :, s2] = block[s, s2]
            for t in range(k):
                ab[k + t - s, :, :, s] = off[t, s]
        solution = solveh_banded(
            ab.reshape(2 * k, -1),
            sep_rhs.transpose(1, 2, 0).reshape(-1),
            lower=True,
            check_finite=False,
        )
        return np.ascontiguousarray(solution.reshape(n_spectra, p, k).transpose(2, 0, 1))

    def _back_substitute(
        self,
        out: np.ndarray,
        neg_low: np.ndarray,
        scaled: np.ndarray,
        right: np.ndarray,
        tail_recip: np.ndarray | None,
        sep: np.ndarray,
    ) -> None:
        """Fill the interior rows of ``out``: ``x = L'^-1 D^-1 (fwd - coupling @ separators)``."""
        k, m = self.layout.k, self.layout.m
        lane_shape = sep.shape[1:]
        # combining the scaled columns with (-left separator, 1) gives D^-1 L^-1 (b - C_L x_L)
        combo = np.empty((k + 1, *lane_shape))
        combo[:k, :, 0] = 0.0
        np.negative(sep[:, :, :-1], out=combo[:k, :, 1:])
        combo[k] = 1.0
        # the right separator enters only the last k rows, through the right coupling columns
        tail_corr = None
        if tail_recip is not None and self.layout.p > 1:
            tail_corr = np.einsum("jtbc,tbc->jbc", right, sep) * tail_recip

        nl = [None] + [list(neg_low[t - 1]) for t in range(1, k + 1)]
        sc, xs = list(scaled), list(out)
        tmp = np.empty(lane_shape)
        tmp_cols = np.empty((k + 1, *lane_shape))
        for i in range(m - 1, -1, -1):
            x = xs[i]
            np.multiply(sc[i], combo, out=tmp_cols)
            # pairwise adds: add.reduce over a short leading axis costs more than k calls
            np.add(tmp_cols[0], tmp_cols[1], out=x)
            for s in range(2, k + 1):
                np.add(x, tmp_cols[s], out=x)
            j = i - (m - k)
            if tail_corr is not None and j >= 0:
                np.subtract(x, tail_corr[j], out=x)
            for t in range(1, min(k, m - 1 - i) + 1):
                np.multiply(nl[t][i + t], xs[i + t], out=tmp)
                np.add(x, tmp, out=x)
