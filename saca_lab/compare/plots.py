"""Figures of a comparison study: TrCSL Fig. 14 and Fig. 15 styles, and out-of-fold predictions.

TrCSL Fig. 14 plots R2 against the number of samples for PLSR and PSO-SVR (one split per size);
here every point is a mean over repeated splits with a +-1 std band, with RMSE as a second
panel. Fig. 15 compares TrCSL, PCA-PLS and GLL at 10 and 20 samples as bars; here with error
bars over the repeats.
"""

from __future__ import annotations

import os

import numpy as np

from saca_lab.io import new_figure, save_figure

FIG15_MODELS = ("trcsl", "pca_pls", "gll")
FIG15_SIZES = (10, 20)


def _label(model: str, dataset: str, main_dataset: str) -> str:
    return model if dataset == main_dataset else f"{model} ({dataset})"


def fig14(summary: list[dict], path: str | os.PathLike, element: str, main_dataset: str):
    """R2 and RMSE vs number of samples, one line with a +-std band per model and dataset."""
    fig, axes = new_figure(1, 2, figsize=(10.5, 4.0))
    series = list(dict.fromkeys((s["model"], s["dataset"]) for s in summary))
    for i, (model, dataset) in enumerate(series):
        rows = sorted((s for s in summary if (s["model"], s["dataset"]) == (model, dataset)),
                      key=lambda s: s["size"])
        x = np.array([s["size"] for s in rows], float)
        color = f"C{i % 10}"
        for ax, key in zip(axes, ("r2", "rmse"), strict=True):
            mean = np.array([s[f"{key}_mean"] for s in rows], float)
            std = np.nan_to_num(np.array([s[f"{key}_std"] for s in rows], float))
            ax.plot(x, mean, "o-", color=color, ms=4, label=_label(model, dataset, main_dataset))
            ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.18, lw=0)
    axes[0].set_ylabel(f"R$^2$ ({element}, test samples)")
    axes[1].set_ylabel(f"RMSE {element} (mass %)")
    r2_low = min((s["r2_mean"] - np.nan_to_num(s["r2_std"]) for s in summary
                  if np.isfinite(s["r2_mean"])), default=0.0)
    axes[0].set_ylim(max(-1.0, min(0.0, r2_low)), 1.02)
    for ax in axes:
        ax.set_xlabel("number of samples (70 % train / 30 % test)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    n_rep = max((s["n_fits"] for s in summary), default=0)
    fig.suptitle(f"{element}: metric vs number of samples (mean ± std over {n_rep} random splits)",
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def fig15_selection(summary: list[dict]) -> tuple[list[tuple[str, str]], list[int]]:
    """Models and sizes of the Fig. 15 bar chart: TrCSL vs PCA-PLS vs GLL at 10 and 20 samples
    when at least two of them ran, else every model; sizes 10 and 20 when all chosen models have
    them, else the two smallest sizes."""
    series = list(dict.fromkeys((s["model"], s["dataset"]) for s in summary))
    preferred = [m for m in series if m[0] in FIG15_MODELS]
    chosen = preferred if len(preferred) >= 2 else series
    sizes_of = [{s["size"] for s in summary if (s["model"], s["dataset"]) == m} for m in chosen]
    common = set.intersection(*sizes_of) if sizes_of else set()
    if set(FIG15_SIZES) <= common:
        sizes = list(FIG15_SIZES)
    else:
        sizes = sorted(common or set.union(*sizes_of))[:2]
    return chosen, sizes


def fig15(summary: list[dict], path: str | os.PathLike, element: str, main_dataset: str):
    """Bar chart of R2 (mean +- std) per model at two small sample counts."""
    chosen, sizes = fig15_selection(summary)
    fig, ax = new_figure(figsize=(1.6 + 1.1 * len(chosen) * len(sizes), 3.8))
    width = 0.8 / max(1, len(chosen))
    for i, (model, dataset) in enumerate(chosen):
        means, stds = [], []
        for size in sizes:
            row = next((s for s in summary if (s["model"], s["dataset"], s["size"])
                        == (model, dataset, size)), None)
            means.append(row["r2_mean"] if row else np.nan)
            stds.append(np.nan_to_num(row["r2_std"]) if row else 0.0)
        x = np.arange(len(sizes)) + (i - (len(chosen) - 1) / 2) * width
        bars = ax.bar(x, means, width * 0.92, yerr=stds, capsize=3, color=f"C{i % 10}",
                      label=_label(model, dataset, main_dataset))
        for bar, m in zip(bars, means, strict=True):
            if np.isfinite(m):
                ax.annotate(f"{m:.2f}", (bar.get_x() + bar.get_width() / 2, max(m, 0)),
                            ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                            textcoords="offset points")
    ax.set_xticks(np.arange(len(sizes)), [f"{s} samples" for s in sizes])
    ax.set_ylabel(f"R$^2$ ({element}, test samples)")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylim(top=1.1)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"{element}: small-sample comparison (mean ± std)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def cv_figure(predictions: list[dict], summary: list[dict], path: str | os.PathLike,
              element: str, main_dataset: str):
    """Out-of-fold predicted vs true, one panel per model (CV mode)."""
    series = list(dict.fromkeys((s["model"], s["dataset"]) for s in summary))
    fig, axes = new_figure(1, len(series), figsize=(3.6 * len(series), 3.6), squeeze=False)
    for ax, (model, dataset) in zip(axes[0], series, strict=True):
        p = [r for r in predictions if (r["model"], r["dataset"]) == (model, dataset)]
        yt = np.array([r["y_true"] for r in p])
        yp = np.array([r["y_pred"] for r in p])
        ax.scatter(yt, yp, s=14, alpha=0.7, edgecolor="k", lw=0.3)
        lo, hi = float(min(yt.min(), yp.min())), float(max(yt.max(), yp.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        s = next(r for r in summary if (r["model"], r["dataset"]) == (model, dataset))
        ax.set_title(f"{_label(model, dataset, main_dataset)}\npooled R$^2$ {s['pooled_r2']:.3f}, "
                     f"folds {s['r2_mean']:.3f} ± {s['r2_std']:.3f}", fontsize=9)
        ax.set_xlabel(f"true {element} (mass %)")
        ax.set_ylabel(f"out-of-fold predicted {element}")
    fig.tight_layout()
    save_figure(fig, path)
    return path
