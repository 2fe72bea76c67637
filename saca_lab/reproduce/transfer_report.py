"""The transfer study's tables and report text (:mod:`saca_lab.reproduce.figs_transfer` runs
the study): the summary looked up by size, element and model, the paper-vs-ours rows, and the
report section."""

from __future__ import annotations

import numpy as np

from saca_lab.reproduce import paper
from saca_lab.reproduce.context import FigureResult, Row, fmt
from saca_lab.reproduce.transfer_stats import MODELS, PAIRS

MODEL_1D = "trcsl_1d"
LABELS = {"head": "(a) TrCSL transfer, head", "all": "(b) TrCSL transfer, all layers",
          "scratch": "(c) TrCSL from scratch", "plsr": "(d) PLSR", "pca_pls": "(e) PCA-PLS",
          "gll": "(f) GLL", "slope_bias": "(g) slag PLSR + slope/bias",
          "source_target": "(h) PLSR on slag + steel"}
#: Models (a) is compared with, paired by draw, in the report rows and the plot's last column.
ROW_PAIRS = ("scratch", "plsr", "slope_bias", "source_target")


def pick(summary: list[dict], size: int, element: str, model: str, other: str = "") -> dict:
    return next(s for s in summary if s["size"] == size and s["element"] == element
                and s["model"] == model and s["other"] == other)


def present_models(summary: list[dict]) -> list[str]:
    """The models of :data:`MODELS` that ``summary`` holds (one written before (g) and (h)
    joined the study has only (a)-(f))."""
    held = {s["model"] for s in summary if s["other"] == ""}
    return [m for m in MODELS if m in held]


def stat_text(s: dict) -> str:
    return f"{fmt(s['mean'])} +- {fmt(s['std'])}" if s["n"] > 1 else fmt(s["mean"])


def diff_text(d: dict) -> str:
    if d["n"] < 2:
        return f"{d['mean']:+.3f} (1 draw)" if d["n"] else "nan"
    return (f"{d['mean']:+.3f} +- {d['std']:.3f} (95% CI {d['ci_low']:+.3f} to {d['ci_high']:+.3f}; "
            f"(a) better on {round(d['wins'] * d['n'])}/{d['n']} draws)")


def diff_verdict(d: dict) -> str:
    """``agrees``: (a) better, the interval above 0; ``differs``: worse, below 0; ``partly``:
    the draws do not resolve the difference."""
    if d["n"] < 2 or not np.isfinite(d["ci_low"]):
        return "n/a"
    return "agrees" if d["ci_low"] > 0 else "differs" if d["ci_high"] < 0 else "partly"


def add_rows(res: FigureResult, summary: list[dict], sizes, elements, n_draws: int) -> None:
    el = elements[0]
    for size in sizes:
        ranking = sorted(present_models(summary),
                         key=lambda k: -np.nan_to_num(pick(summary, size, el, k)["mean"], nan=-1e9))
        order = [k for k in ranking if k in ("head", "gll", "pca_pls")]
        res.rows.append(Row("Transfer", f"{el} ranking at {size} samples (mean R2 over draws)",
                            "TrCSL > GLL > PCA-PLS (Fig. 15)",
                            " > ".join(f"{LABELS[k].split(')')[0]}) {fmt(pick(summary, size, el, k)['mean'])}"
                                       for k in ranking),
                            "agrees" if order == ["head", "gll", "pca_pls"] else
                            "partly" if order[0] == "head" else "differs",
                            f"{n_draws} random 7:3 draws; (a)-(h) as in the transfer section"))
        for other in ROW_PAIRS:
            if not any(s["other"] == other for s in summary):
                continue  # a summary written before (g) and (h) joined the study
            d = pick(summary, size, el, "head", other)
            res.rows.append(Row("Transfer", f"{el}: (a) TrCSL transfer minus {LABELS[other]}, "
                                            f"{size} samples, paired by draw",
                                "> 0" + (" (pre-training helps)" if other == "scratch" else
                                         " (TrCSL beats PLSR below ~90 samples)" if other == "plsr"
                                         else " (not in the paper: deep transfer beats classical "
                                              "calibration transfer)"),
                                diff_text(d), diff_verdict(d),
                                "agrees: the 95% CI is above 0; differs: below 0; partly: "
                                "the draws do not resolve it"))
    size = sizes[-1]
    head = pick(summary, size, el, "head")
    level = abs(head["mean"] - paper.FIG14["trcsl_at20"]) <= 0.05
    diffs = {b: pick(summary, size, el, "head", b) for b in ("plsr", "pca_pls", "gll")}
    beats = [d["n"] > 1 and d["ci_low"] > 0 for d in diffs.values()]
    loses = [d["n"] > 1 and d["ci_high"] < 0 for d in diffs.values()]
    verdict = ("agrees" if level and all(beats) else
               "differs" if any(loses) or (not level and not any(beats)) else "partly")
    res.rows.append(Row(
        "Transfer", f"TrCSL's claim: {el} R2 0.98 on {size} carbon steels, better than the baselines",
        f"{paper.FIG14['trcsl_at20']} (Fig. 14); TrCSL > PLSR, PCA-PLS, GLL",
        f"(a) {stat_text(head)}; minus PLSR {diffs['plsr']['mean']:+.3f}, PCA-PLS "
        f"{diffs['pca_pls']['mean']:+.3f}, GLL {diffs['gll']['mean']:+.3f}",
        verdict,
        f"level {'within' if level else 'not within'} 0.05 of 0.98; (a) better with 95% CI above 0 "
        f"against {sum(beats)}/3 baselines, worse (CI below 0) against {sum(loses)}/3; "
        f"{n_draws} draws" + ("" if size == 20 else "; the paper's claim is at 20 samples")))


def summary_rows(summary: list[dict]) -> list[Row]:
    """The study's paper-vs-ours rows from its summary (the rows of ``transfer_summary.csv``)."""
    sizes = sorted({s["size"] for s in summary})
    elements = list(dict.fromkeys(s["element"] for s in summary))  # Mn first, as written
    n_draws = max(s["n"] for s in summary if s["size"] == sizes[-1] and s["other"] == "")
    res = FigureResult("transfer", "")
    add_rows(res, summary, sizes, elements, n_draws)
    return res.rows


def report_text(m, summary, sizes, elements, seconds, elapsed, notes, missing, pre, n_draws, n_slag) -> str:
    lines = [f"Carbon-steel dataset `{m.carbon_steel}`; {n_draws} draws "
             f"({m.transfer_repeats} per size); draws and splits as `saca-lab compare` "
             "(`data.split.subset`, `subset_seed` = `seed` = draw index). Pre-training: run "
             f"`{pre.run_id}` ({MODEL_1D} on `{m.slag}`, {m.pretrain_epochs} epochs"
             f"{', reused' if pre.reused else ''}). Epochs fixed in advance: (a), (b) "
             f"{m.finetune_epochs}; (b) features at lr {m.transfer_unfreeze_lr}, head at the "
             f"experiment's lr; (c) {m.transfer_scratch_epochs}; (f) {m.gll_epochs}. Deep models "
             f"fit {', '.join(pre.targets)} jointly on groups of {m.shots} shots; PLSR, "
             "PCA-PLS, (g) and (h) one element at a time on sample means; all on the "
             "pre-training's line windows. 1D models in every mode (the 2D network has no "
             f"line-window input). (g) and (h) calibrate on the {n_slag} slag training samples of "
             "the pre-training (never its test samples) and the draw's training samples; no "
             "sample was measured in both domains, so PDS and DS (which need such transfer "
             "standards) have no place here.", ""]
    if notes:
        lines += ["Sizes: " + "; ".join(notes) + ".", ""]
    if missing:
        lines += [f"Not in the study (not a target of the pre-training or dataset): {', '.join(missing)}.", ""]
    for size in sizes:
        lines += [f"Per-sample test R2, {size} samples (mean +- std over draws):", "",
                  "| model | " + " | ".join(elements) + " |", "|---|" + "---|" * len(elements)]
        lines += [f"| {LABELS[mdl]} | " + " | ".join(stat_text(pick(summary, size, el, mdl)) for el in elements) + " |"
                  for mdl in present_models(summary)]
        lines += ["", f"Paired R2 differences, {size} samples ((a) minus the model; mean +- std, 95% CI, draws (a) wins):",
                  "", "| (a) minus | " + " | ".join(elements) + " |", "|---|" + "---|" * len(elements)]
        lines += [f"| {LABELS[b]} | " + " | ".join(diff_text(pick(summary, size, el, a, b)) for el in elements) + " |"
                  for a, b in PAIRS if b in present_models(summary)]
        lines += [""]
    timing = ", ".join(f"{mdl} {np.mean(v):.1f} s" for mdl, v in seconds.items() if v)
    lines += [f"Figure time {elapsed:.0f} s; mean time per fit (0 when reused; baselines: all "
              f"elements of a draw): {timing}. Files: `transfer.csv` (every fit), "
              "`transfer_summary.csv`, `transfer.png`."]
    return "\n".join(lines)
