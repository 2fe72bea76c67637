"""Final metrics per sample and the predicted-vs-true figure of a run."""

from __future__ import annotations

import os

import numpy as np
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from saca_lab.io import save_figure


def sample_means(values: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average rows that belong to the same sample (all spectra of one sample)."""
    ids, inverse = np.unique(groups, return_inverse=True)
    sums = np.zeros((len(ids), values.shape[1]))
    np.add.at(sums, inverse, values)
    return ids, sums / np.bincount(inverse)[:, None]


def per_sample_metrics(y: np.ndarray, pred: np.ndarray, groups: np.ndarray, names) -> dict[str, float]:
    """R2, RMSE and MAE per target on sample-averaged predictions (the papers' unit: a sample)."""
    _, yt = sample_means(y, groups)
    _, yp = sample_means(pred, groups)
    out: dict[str, float] = {}
    for j, name in enumerate(names):
        out[f"test_sample_rmse_{name}"] = float(np.sqrt(mean_squared_error(yt[:, j], yp[:, j])))
        out[f"test_sample_mae_{name}"] = float(mean_absolute_error(yt[:, j], yp[:, j]))
        if len(yt) > 1 and np.ptp(yt[:, j]) > 0:
            out[f"test_sample_r2_{name}"] = float(r2_score(yt[:, j], yp[:, j]))
    return out


def plot_pred_vs_true(y: np.ndarray, pred: np.ndarray, groups: np.ndarray, names,
                      path: str | os.PathLike, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(names)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.2 * rows), squeeze=False)
    _, yt = sample_means(y, groups)
    _, yp = sample_means(pred, groups)
    for j, name in enumerate(names):
        ax = axes.flat[j]
        ax.scatter(y[:, j], pred[:, j], s=6, alpha=0.3, label="spectra")
        ax.scatter(yt[:, j], yp[:, j], s=30, edgecolor="k", label="sample mean")
        lo, hi = float(min(y[:, j].min(), pred[:, j].min())), float(max(y[:, j].max(), pred[:, j].max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        r2 = r2_score(yt[:, j], yp[:, j]) if len(yt) > 1 and np.ptp(yt[:, j]) > 0 else float("nan")
        ax.set_title(f"{name}: R2 (samples) {r2:.3f}", fontsize=9)
        ax.set_xlabel("true (mass %)")
        ax.set_ylabel("predicted (mass %)")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
