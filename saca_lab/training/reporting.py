"""Final metrics per sample and the predicted-vs-true figure of a run."""

from __future__ import annotations

import os

import numpy as np
from sklearn.metrics import mean_absolute_error, mean_squared_error

from saca_lab.io import new_figure, save_figure


def r2_or_nan(y_true, y_pred):
    """Coefficient of determination, NaN where it is undefined.

    Undefined means fewer than two rows or a constant truth: sklearn's ``r2_score`` then returns
    0 or 1 by convention, which a table would show as a score.

    Parameters
    ----------
    y_true, y_pred : array_like
        1D (one target) or 2D (rows x targets).

    Returns
    -------
    float or numpy.ndarray
        A float for 1D input, one value per column for 2D input.
    """
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    if len(y_true) < 2:
        r2 = np.full(y_true.shape[1:], np.nan)
    else:
        sse = ((y_true - y_pred) ** 2).sum(axis=0)
        ss = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
        defined = np.ptp(y_true, axis=0) > 0
        r2 = np.where(defined, 1 - sse / np.where(defined, ss, 1.0), np.nan)
    return float(r2) if r2.ndim == 0 else r2


def sample_means(values: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average rows that belong to the same sample (all spectra of one sample)."""
    ids, inverse = np.unique(groups, return_inverse=True)
    sums = np.zeros((len(ids), values.shape[1]))
    np.add.at(sums, inverse, values)
    return ids, sums / np.bincount(inverse)[:, None]


def sample_sigma(sigma: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A sample's predicted standard deviation from its items': ``sqrt(mean(sigma^2))``, the
    typical single-item sigma (items of one sample are not independent, so it is not divided
    by the item count)."""
    ids, var = sample_means(np.asarray(sigma, dtype=np.float64) ** 2, groups)
    return ids, np.sqrt(var)


def per_sample_metrics(y: np.ndarray, pred: np.ndarray, groups: np.ndarray, names) -> dict[str, float]:
    """R2, RMSE and MAE per target on sample-averaged predictions (the papers' unit: a sample)."""
    _, yt = sample_means(y, groups)
    _, yp = sample_means(pred, groups)
    out: dict[str, float] = {}
    for j, name in enumerate(names):
        out[f"test_sample_rmse_{name}"] = float(np.sqrt(mean_squared_error(yt[:, j], yp[:, j])))
        out[f"test_sample_mae_{name}"] = float(mean_absolute_error(yt[:, j], yp[:, j]))
        r2 = r2_or_nan(yt[:, j], yp[:, j])
        if not np.isnan(r2):
            out[f"test_sample_r2_{name}"] = r2
    return out


def plot_pred_vs_true(y: np.ndarray, pred: np.ndarray, groups: np.ndarray, names,
                      path: str | os.PathLike, title: str = "") -> None:
    n = len(names)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig, axes = new_figure(rows, cols, figsize=(3.4 * cols, 3.2 * rows), squeeze=False)
    _, yt = sample_means(y, groups)
    _, yp = sample_means(pred, groups)
    for j, name in enumerate(names):
        ax = axes.flat[j]
        ax.scatter(y[:, j], pred[:, j], s=6, alpha=0.3, label="spectra")
        ax.scatter(yt[:, j], yp[:, j], s=30, edgecolor="k", label="sample mean")
        lo, hi = float(min(y[:, j].min(), pred[:, j].min())), float(max(y[:, j].max(), pred[:, j].max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        r2 = r2_or_nan(yt[:, j], yp[:, j])
        ax.set_title(f"{name}: R2 (samples) {r2:.3f}", fontsize=9)
        ax.set_xlabel("true (mass %)")
        ax.set_ylabel("predicted (mass %)")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
