"""The lane layout of the batched banded solver: spectra cut into chunks, chunks as vector lanes.

Index ``[j, b, c]`` of a ``(m + k, n_spectra, p)`` array holds point ``c * (m + k) + j`` of
spectrum ``b``; rows ``j >= m`` are the ``k`` separator rows after chunk ``c``. See
:mod:`saca_lab.preprocessing._banded` for why the solver works this way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LaneLayout:
    """How spectra of ``n_points`` are cut into chunks for a half-bandwidth ``k`` system.

    Attributes
    ----------
    n_points : int
        True spectrum length.
    k : int
        Half-bandwidth (the difference order).
    m : int
        Interior rows per chunk.
    p : int
        Chunks per spectrum; the padded length is ``p * (m + k)``.
    """

    n_points: int
    k: int
    m: int
    p: int

    @classmethod
    def for_size(cls, n_points: int, k: int, chunk: int = 128) -> LaneLayout:
        """Choose ``m`` close to ``chunk`` such that the last separator is pure padding."""
        # the padded length p * (m + k) must leave the final k rows beyond n_points
        p = max(1, -(-(n_points + k) // (chunk + k)))
        m = -(-(n_points + k) // p) - k
        if p > 1 and m < 2 * k:
            p, m = 1, n_points
        return cls(n_points=n_points, k=k, m=m, p=p)

    @property
    def padded(self) -> int:
        return self.p * (self.m + self.k)

    def to_lanes(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``(n_spectra, n_points)`` -> ``(m + k, n_spectra, p)``, zero padded.

        Written into ``out`` when given (any array of that shape, e.g. a view of a buffer).
        """
        n_spectra = values.shape[0]
        if out is None:
            out = np.empty((self.m + self.k, n_spectra, self.p))
        padded = np.zeros(self.padded)
        blocks = padded.reshape(self.p, self.m + self.k)
        # one spectrum at a time: a (p, m + k) transpose stays in cache, while transposing
        # the whole batch at once is several times slower
        for b in range(n_spectra):
            padded[: self.n_points] = values[b]
            out[:, b, :] = blocks.T
        return out

    def from_lanes(self, lanes: np.ndarray, spectra: np.ndarray | None = None) -> np.ndarray:
        """Inverse of :meth:`to_lanes` for the lanes ``spectra`` (default: all)."""
        if spectra is None:
            spectra = np.arange(lanes.shape[1])
        out = np.empty((len(spectra), self.n_points))
        blocks = np.empty((self.p, self.m + self.k))
        flat = blocks.reshape(-1)
        for row, b in enumerate(spectra):
            blocks[...] = lanes[:, b, :].T
            out[row] = flat[: self.n_points]
        return out
