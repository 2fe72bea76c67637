"""The transfer study's draws and statistics: which samples each draw uses, paired differences.

Kept apart from :mod:`saca_lab.reproduce.figs_transfer` (which trains and reports) so that the
numbers behind a verdict can be read, and tested, on their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from saca_lab.datasets.splits import Split, make_split
from saca_lab.errors import InputError

#: The models of the study, (a)-(h), in report order: (g) and (h) are the calibration-transfer
#: baselines that need no sample measured in both domains (issue 15).
MODELS = ("head", "all", "scratch", "plsr", "pca_pls", "gll", "slope_bias", "source_target")
#: (a) against each other model, paired by draw.
PAIRS = tuple(("head", other) for other in MODELS if other != "head")
#: Fewest samples a draw can split 7:3 and still score: as ``saca-lab compare``.
MIN_SIZE = 5


@dataclass(frozen=True)
class Draw:
    """One random subset of the carbon-steel samples, split 7:3: every model fits on it."""

    size: int
    repeat: int
    spec: dict     # the ``data.split`` mapping that reproduces it in a training config
    split: Split


def paired_difference(a, b) -> dict:
    """Paired comparison of two models scored on the same draws.

    Parameters
    ----------
    a, b : sequence of float
        Scores of the two models, ``a[i]`` and ``b[i]`` on draw ``i``. Draws where either is
        NaN are left out.

    Returns
    -------
    dict
        ``n`` (draws compared), ``mean`` and ``std`` (sample std, ``ddof=1``) of ``a - b``, the
        95 % Student-t interval of the mean (``ci_low``, ``ci_high``; NaN below two draws) and
        ``wins``, the fraction of draws with ``a > b`` (ties are not wins).
    """
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need equal lengths, got {a.shape} and {b.shape}")
    d = (a - b)[np.isfinite(a) & np.isfinite(b)]
    n = int(d.size)
    nan = float("nan")
    if n == 0:
        return {"n": 0, "mean": nan, "std": nan, "ci_low": nan, "ci_high": nan, "wins": nan}
    mean = float(d.mean())
    std = float(d.std(ddof=1)) if n > 1 else nan
    half = float(stats.t.ppf(0.975, n - 1) * std / np.sqrt(n)) if n > 1 else nan
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half,
            "wins": float(np.mean(d > 0))}


def plan_draws(n_samples: int, sizes, repeats: int, seed: int = 0) -> tuple[list[Draw], list[str]]:
    """Every draw of the study, and notes on sizes capped at the dataset's sample count.

    A size above ``n_samples`` becomes ``n_samples`` (each draw then differs only in its 7:3
    split), so a small test dataset still runs the figure.
    """
    from saca_lab.compare.plan import parse_sizes, size_split_spec

    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise InputError(f"transfer_repeats must be a positive integer, got {repeats!r}")
    if n_samples < MIN_SIZE:
        raise InputError(f"carbon_steel: the transfer study needs at least {MIN_SIZE} samples "
                         f"(3 to train, 2 to test), the dataset has {n_samples}")
    notes, usable = [], []
    for size in parse_sizes(sizes):
        if size < MIN_SIZE:
            raise InputError(f"transfer_sizes: {size} is too small for a 7:3 split by sample "
                             f"(need at least {MIN_SIZE})")
        if size > n_samples:
            notes.append(f"size {size} capped at the dataset's {n_samples} samples")
            size = n_samples
        if size not in usable:
            usable.append(size)
    draws = []
    for size in usable:
        for r in range(repeats):
            spec = size_split_spec(size, r, seed)
            draws.append(Draw(size, r, spec, make_split(n_samples, spec)))
    return draws, notes


def summarize(fits: list[dict], sizes, elements) -> list[dict]:
    """Mean +- std per (size, element, model), then (a) against each other model, paired by draw."""
    rows = []
    for size in sizes:
        for el in elements:
            per = {mdl: {f["draw"]: f["r2"] for f in fits
                         if f["size"] == size and f["element"] == el and f["model"] == mdl}
                   for mdl in MODELS}
            draws = sorted({d for v in per.values() for d in v})
            for mdl in MODELS:
                v = np.array([per[mdl].get(d, np.nan) for d in draws], dtype=float)
                ok = v[np.isfinite(v)]
                rows.append({"size": size, "element": el, "model": mdl, "other": "", "n": ok.size,
                             "mean": float(ok.mean()) if ok.size else float("nan"),
                             "std": float(ok.std(ddof=1)) if ok.size > 1 else float("nan"),
                             "ci_low": float("nan"), "ci_high": float("nan"), "wins": float("nan")})
            for a, b in PAIRS:
                diff = paired_difference([per[a].get(d, np.nan) for d in draws],
                                         [per[b].get(d, np.nan) for d in draws])
                rows.append({"size": size, "element": el, "model": a, "other": b, **diff})
    return rows
