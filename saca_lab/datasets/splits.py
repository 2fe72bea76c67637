"""Splits by sample: no sample's shots ever land in two splits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import KFold

from saca_lab.errors import InputError


@dataclass(frozen=True)
class Split:
    """Sample indices of each part (sorted, disjoint).

    ``calibration``: samples carved from the training part (``data.split.calibration``) that no
    fit reads; their residuals are the conformal scores of the run's prediction intervals
    (:mod:`saca_lab.training.conformal`).
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    calibration: np.ndarray = field(default_factory=lambda: np.array([], dtype=int))

    def as_dict(self) -> dict[str, list[int]]:
        parts = ("train", "val", "test") + (("calibration",) if len(self.calibration) else ())
        return {k: getattr(self, k).tolist() for k in parts}


def ratio_split(n_samples: int, train: float, val: float, test: float, seed: int) -> Split:
    """Random split of sample indices in the given proportions (TrCSL 7:3, SACA 70/15/15).

    Every non-zero part gets at least one sample; rounding goes to the training set.
    """
    parts = {"val": val, "test": test}
    counts = {k: (max(1, int(round(f * n_samples))) if f > 0 else 0) for k, f in parts.items()}
    n_train = n_samples - sum(counts.values())
    if n_train < 1:
        raise InputError(f"{n_samples} samples are too few for a {train}/{val}/{test} split")
    order = np.random.default_rng(seed).permutation(n_samples)
    test_idx = order[: counts["test"]]
    val_idx = order[counts["test"]: counts["test"] + counts["val"]]
    train_idx = order[counts["test"] + counts["val"]:]
    return Split(np.sort(train_idx), np.sort(val_idx), np.sort(test_idx))


def kfold_split(n_samples: int, folds: int, fold: int, seed: int, val: float = 0.0) -> Split:
    """Fold ``fold`` of a shuffled k-fold over samples; ``val`` carves a validation part from train."""
    if folds > n_samples:
        raise InputError(f"{folds} folds need at least {folds} samples, have {n_samples}")
    train_idx, test_idx = list(KFold(folds, shuffle=True, random_state=seed).split(np.arange(n_samples)))[fold]
    val_idx = np.array([], dtype=int)
    if val > 0:
        rng = np.random.default_rng(seed + 1)
        n_val = max(1, int(round(val * n_samples)))
        val_idx = rng.choice(train_idx, size=n_val, replace=False)
        train_idx = np.setdiff1d(train_idx, val_idx)
    return Split(np.sort(train_idx), np.sort(val_idx), np.sort(test_idx))


def draw_subset(n_samples: int, size: int, seed: int) -> np.ndarray:
    """``size`` distinct sample indices drawn at random (sorted): a smaller calibration set."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 2:
        raise InputError(f"data.split.subset must be an integer >= 2, got {size!r}")
    if size > n_samples:
        raise InputError(f"data.split.subset = {size} is larger than the dataset ({n_samples} samples)")
    return np.sort(np.random.default_rng([seed, size]).choice(n_samples, size=size, replace=False))


def make_split(n_samples: int, spec: dict) -> Split:
    """A split from ``{train, val, test, seed}`` or ``{folds, fold, seed, val}``.

    ``subset: N`` first draws N samples (seeded by ``subset_seed``, default ``seed``) and splits
    only those: the sample-count study (TrCSL Fig. 14) in a config.
    """
    chosen = None
    if spec.get("subset") is not None:
        chosen = draw_subset(n_samples, spec["subset"], spec.get("subset_seed", spec.get("seed", 0)))
        n_samples = chosen.size
    if spec.get("folds"):
        split = kfold_split(n_samples, spec["folds"], spec["fold"], spec.get("seed", 0), spec.get("val", 0.0))
    else:
        split = ratio_split(n_samples, spec["train"], spec["val"], spec["test"], spec.get("seed", 0))
    split = carve_calibration(split, spec.get("calibration") or 0.0, spec.get("seed", 0))
    if chosen is None:
        return split
    return Split(chosen[split.train], chosen[split.val], chosen[split.test],
                 chosen[split.calibration])


def carve_calibration(split: Split, fraction, seed: int) -> Split:
    """Move ``round(fraction * n_train)`` training samples (at least one, leaving one) to
    ``calibration``; the draw reads sample indices only, never a test sample.

    ``fraction`` may instead be ``{folds: K, fold: k}``: fold ``k`` of a shuffled K-fold
    (seeded by ``seed``) over the training samples calibrates, so the K runs of a draw together
    calibrate on every training sample exactly once (CV+, :func:`carve_calibration_fold`).
    """
    if isinstance(fraction, Mapping):
        return carve_calibration_fold(split, fraction.get("folds"), fraction.get("fold"), seed)
    if not fraction:
        return split
    n_train = len(split.train)
    n_cal = min(max(1, int(round(fraction * n_train))), n_train - 1)
    if n_cal < 1:
        raise InputError(f"data.split.calibration = {fraction}: {n_train} training sample(s) are "
                         "too few to keep calibration samples aside")
    cal = np.random.default_rng([int(seed), 2]).choice(split.train, size=n_cal, replace=False)
    return Split(np.setdiff1d(split.train, cal), split.val, split.test, np.sort(cal))


def carve_calibration_fold(split: Split, folds: int, fold: int, seed: int) -> Split:
    """Fold ``fold`` of a ``folds``-fold split of the training samples (shuffled, seeded by
    ``seed``) becomes ``calibration``; the rest stays ``train``.

    Whole samples move, so no shot of a calibration sample is fitted, and only training samples:
    validation and test samples are never in a fold.

    Raises
    ------
    InputError
        ``folds`` is not an integer >= 2, ``fold`` not in ``[0, folds)``, or there are fewer
        training samples than folds; the message names ``data.split.calibration``.
    """
    def whole(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    n_train = len(split.train)
    if not whole(folds) or folds < 2:
        raise InputError(f"data.split.calibration.folds must be an integer >= 2, got {folds!r}")
    if not whole(fold) or not 0 <= fold < folds:
        raise InputError(f"data.split.calibration.fold must be an integer in [0, {folds}), "
                         f"got {fold!r}")
    if folds > n_train:
        raise InputError(f"data.split.calibration: {folds} folds need at least {folds} training "
                         f"samples, the split has {n_train}")
    kfold = KFold(int(folds), shuffle=True, random_state=int(seed))
    keep, cal = list(kfold.split(split.train))[int(fold)]
    return Split(split.train[keep], split.val, split.test, np.sort(split.train[cal]))
