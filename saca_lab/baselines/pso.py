"""A small, seeded global-best particle swarm minimiser over a box.

TrCSL tunes its SVR with particle swarm optimisation (PSO-SVR, Fig. 14). pyswarms, the usual
Python package, is unmaintained; the global-best swarm of Kennedy & Eberhart (1995) with the
inertia weight of Shi & Eberhart (1998) fits in a page and is tested here on known functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np


class SwarmResult(NamedTuple):
    """Outcome of :meth:`ParticleSwarm.minimize`."""

    position: np.ndarray
    """Best position found, shape (n_dims,)."""
    value: float
    """Objective at ``position``."""
    history: np.ndarray
    """Best value after the initial swarm and after every iteration, shape (n_iter + 1,)."""


class ParticleSwarm:
    """Global-best particle swarm optimisation with inertia, seeded.

    Every particle moves with velocity
    ``v <- w v + c1 r1 (p_best - x) + c2 r2 (g_best - x)``, ``r1, r2 ~ U(0, 1)`` per dimension,
    clamped to ``velocity_clamp`` times the box width; positions that leave the box are put back
    on its wall and that velocity component is zeroed.

    Parameters
    ----------
    n_particles : int, default=12
    n_iter : int, default=15
        Velocity updates after the initial evaluation; the objective is evaluated
        ``n_particles * (n_iter + 1)`` times.
    inertia : float, default=0.72
        ``w``. 0.72 with ``c1 = c2 = 1.49`` is Clerc's constriction setting, which converges
        without a velocity clamp doing the work.
    cognitive : float, default=1.49
        ``c1``: pull towards each particle's own best position.
    social : float, default=1.49
        ``c2``: pull towards the swarm's best position.
    velocity_clamp : float, default=0.5
        Largest step per iteration as a fraction of the box width.
    random_state : int or None, default=0
        Seed of the initial positions, velocities and the random factors.

    References
    ----------
    .. [1] J. Kennedy, R. Eberhart, "Particle swarm optimization", Proc. ICNN'95, 1995, 1942.
    .. [2] Y. Shi, R. Eberhart, "A modified particle swarm optimizer", IEEE ICEC, 1998, 69.
    .. [3] M. Clerc, J. Kennedy, "The particle swarm - explosion, stability, and convergence in
       a multidimensional complex space", IEEE Trans. Evol. Comput., 2002, 6, 58.

    Examples
    --------
    >>> swarm = ParticleSwarm(n_particles=10, n_iter=40, random_state=1)
    >>> res = swarm.minimize(lambda p: float(((p - 0.3) ** 2).sum()), [(-1, 1), (-1, 1)])
    >>> bool(np.allclose(res.position, 0.3, atol=1e-2))
    True
    """

    def __init__(self, n_particles: int = 12, n_iter: int = 15, inertia: float = 0.72,
                 cognitive: float = 1.49, social: float = 1.49, velocity_clamp: float = 0.5,
                 random_state: int | None = 0) -> None:
        self.n_particles = n_particles
        self.n_iter = n_iter
        self.inertia = inertia
        self.cognitive = cognitive
        self.social = social
        self.velocity_clamp = velocity_clamp
        self.random_state = random_state

    def _check(self, bounds) -> tuple[np.ndarray, np.ndarray]:
        if int(self.n_particles) != self.n_particles or self.n_particles < 1:
            raise ValueError(f"n_particles must be a positive integer, got {self.n_particles!r}")
        if int(self.n_iter) != self.n_iter or self.n_iter < 0:
            raise ValueError(f"n_iter must be a non-negative integer, got {self.n_iter!r}")
        if not 0 < self.velocity_clamp <= 1:
            raise ValueError(f"velocity_clamp must be in (0, 1], got {self.velocity_clamp!r}")
        b = np.asarray(bounds, dtype=np.float64)
        if b.ndim != 2 or b.shape[1] != 2 or b.shape[0] < 1 or not np.all(b[:, 0] < b[:, 1]):
            raise ValueError(f"bounds must be a sequence of (low, high) with low < high, got {bounds!r}")
        return b[:, 0], b[:, 1]

    def minimize(self, f: Callable[[np.ndarray], float],
                 bounds: Sequence[tuple[float, float]]) -> SwarmResult:
        """Minimise ``f`` over the box ``bounds``.

        Parameters
        ----------
        f : callable
            ``f(position) -> float`` for a position of shape (n_dims,). A non-finite value
            counts as +inf (the particle is never a best one there).
        bounds : sequence of (low, high)
            One pair per dimension.

        Returns
        -------
        SwarmResult
            ``(position, value, history)``.
        """
        lo, hi = self._check(bounds)
        rng = np.random.default_rng(self.random_state)
        n, d = int(self.n_particles), lo.size
        width = hi - lo
        vmax = self.velocity_clamp * width
        x = lo + rng.random((n, d)) * width
        v = rng.uniform(-vmax, vmax, size=(n, d))

        def evaluate(points: np.ndarray) -> np.ndarray:
            vals = np.array([float(f(p)) for p in points])
            return np.where(np.isfinite(vals), vals, np.inf)

        fx = evaluate(x)
        p_best, p_val = x.copy(), fx.copy()
        g = int(np.argmin(p_val))
        history = [p_val[g]]
        for _ in range(int(self.n_iter)):
            r1, r2 = rng.random((n, d)), rng.random((n, d))
            v = (self.inertia * v + self.cognitive * r1 * (p_best - x)
                 + self.social * r2 * (p_best[g] - x))
            v = np.clip(v, -vmax, vmax)
            x = x + v
            outside = (x < lo) | (x > hi)
            x = np.clip(x, lo, hi)
            v[outside] = 0.0
            fx = evaluate(x)
            better = fx < p_val
            p_best[better], p_val[better] = x[better], fx[better]
            g = int(np.argmin(p_val))
            history.append(p_val[g])
        return SwarmResult(p_best[g].copy(), float(p_val[g]), np.asarray(history))
