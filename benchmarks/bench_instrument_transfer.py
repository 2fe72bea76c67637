"""Calibration transfer between two simulated instruments: chemometric transfers against TrCSL-1D.

Issue 15 §2, the study where the answer can be known: the same 20 carbon-steel compositions
(``{preset: carbon-steel, samples: 20, shots: 20}``, seed 0) simulated on instrument A (the
preset's ``trcsl``) and on instrument B (``--instrument trcsl-b``: 0.05 nm wavelength offset,
1.4x broader lines, another response), under ``$SACA_LAB_DATA`` (simulated there on first use,
one process). Steps:

1. ``trcsl_1d`` pre-trained on 19 of the 20 instrument-A samples (``saca-lab train
   experiments/trcsl_1d_pretrain_slag.yaml`` with ``data.dataset`` the A set, ``data.split``
   train 0.95 / test 0.05, the TrCSL targets, the quick reproduction's ``data.shots`` and 150
   epochs, seed 0), unless ``--pretrain-run`` names such a run. Training refuses an empty test
   split (``the test split is empty``, raised by the datamodule's test loader after the fit), so
   one A sample is its test sample. No instrument-B spectrum is seen in pre-training; instrument
   A's measurements of a draw's B test samples are, which is the calibration-transfer setting
   (the source calibration exists before the target instrument).
2. One ``saca-lab compare`` study on instrument B, Mn, ``--sizes 5,10,20`` (each draw 7:3 by
   sample), ``--features lines``: target-only PLSR, ``plsr_pds``, ``plsr_ds``,
   ``plsr_slope_bias``, ``plsr_source_target`` (``--source-dataset`` A; a draw's test samples'
   A measurements are never used by them) and ``trcsl_1d`` fine-tuned on the draw's B training
   samples from step 1 (``--set trcsl_1d.transfer.from=RUN``). Every model reads the
   pre-training's line windows.
3. A second study of the same network trained from scratch on each draw's B training samples
   (``--set trcsl_1d.transfer=null``, the same windows in ``data.lines``). Same seed, sizes and
   repeats, so the same draws as step 2.

Everything is fixed in advance (epochs, windows, PLS components chosen by each baseline's CV on
training samples); nothing looks at test samples.

Run from the repository root, one thread, private MLflow store and data folder::

    OMP_NUM_THREADS=1 MLFLOW_TRACKING_URI=sqlite:////tmp/me/mlflow.db SACA_LAB_DATA=/tmp/me/data \\
        python benchmarks/bench_instrument_transfer.py --repeats 10

It prints the table, writes the merged summary and its Fig. 14-style plot to
``docs/results/instrument_transfer/`` and rewrites the "instrument-transfer" section of
BENCHMARKS.md (both unless ``--no-write``); the studies' CSVs stay under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import load_note, machine, update_section  # noqa: E402
from bench_intervals import (  # noqa: E402
    ELEMENT,
    FINETUNE_EPOCHS,
    PRETRAIN,
    SCRATCH_EPOCHS,
    SHOTS,
    STEEL,
    _saca,
    _windows,
)

STEEL_B = {**STEEL, "instrument": "trcsl-b"}
#: MLflow experiment of the instrument-A pre-training (kept apart from the slag pre-trainings)
PRETRAIN_A = "trcsl_1d_pretrain_steel_a"
#: one of the 20 A samples (ratio_split gives a non-zero part at least one sample)
PRETRAIN_TEST = 0.05
BASELINES = ("plsr", "plsr_pds", "plsr_ds", "plsr_slope_bias", "plsr_source_target")
FIGURE_DIR = Path(__file__).resolve().parents[1] / "docs" / "results" / "instrument_transfer"
LABELS = {"plsr": "PLSR, target (B) only", "plsr_pds": "PLSR (A) + PDS",
          "plsr_ds": "PLSR (A) + DS", "plsr_slope_bias": "PLSR (A) + slope/bias",
          "plsr_source_target": "PLSR on A + B training samples",
          "trcsl_1d": "TrCSL-1D fine-tuned (pre-trained on A)",
          "trcsl_1d_scratch": "TrCSL-1D from scratch on B"}


def _pretrain(steel_a: Path, epochs: int) -> str:
    from saca_lab import tracking
    from saca_lab.config import project_dir

    # the source calibration uses every A standard but one: train refuses an empty test split
    _saca(["train", str(project_dir("experiments") / f"{PRETRAIN}.yaml"), "--quiet",
           "--set", f"data.dataset={steel_a}", "--set", f"data.split.train={1 - PRETRAIN_TEST}",
           "--set", "data.split.val=0.0", "--set", f"data.split.test={PRETRAIN_TEST}",
           "--set", f"data.shots={SHOTS}", "--set", f"train.max_epochs={epochs}",
           "--set", "seed=0", "--set", "data.split.seed=0", "--set", "tracking.log_model=false",
           "--set", f"tracking.experiment={PRETRAIN_A}"])
    return tracking.latest_run(PRETRAIN_A)


def _study(argv: list[str], out: Path) -> dict:
    argv = [*argv, "--jobs", "1", "--quiet", "--out", str(out)]
    start = time.perf_counter()
    _saca(argv)
    return {"argv": argv, "seconds": time.perf_counter() - start, "out": out}


def _merged(transfer: dict, scratch: dict) -> tuple[list[dict], list[dict]]:
    """summary.csv and fits.csv rows of both studies, the scratch network renamed."""
    from saca_lab.compare.results import read_csv

    summary, fits = [], []
    for study, rename in ((transfer, {}), (scratch, {"trcsl_1d": "trcsl_1d_scratch"})):
        for name, rows in (("summary.csv", summary), ("fits.csv", fits)):
            rows += [{**r, "model": rename.get(r["model"], r["model"])}
                     for r in read_csv(study["out"] / name)]
    return summary, fits


def _paired(fits: list[dict], model: str, other: str, size: int) -> tuple[int, int]:
    """Draws (same repeat) where ``model``'s test RMSE is below ``other``'s, and the draws."""
    rmse = {(f["model"], f["repeat"]): f["rmse"] for f in fits if f["size"] == size}
    reps = sorted(r for m, r in rmse if m == model and (other, r) in rmse)
    return sum(rmse[(model, r)] < rmse[(other, r)] for r in reps), len(reps)


def _table(summary: list[dict], fits: list[dict], sizes: list[int]) -> list[str]:
    lines = ["| model | k (train / test samples) | draws | test R2 (mean ± std) "
             "| test RMSE Mn, mass % (mean ± std) | RMSE below target-only PLSR (same draws) |",
             "|---|---:|---:|---|---|---:|"]
    models = list(dict.fromkeys(s["model"] for s in summary))
    for size in sizes:
        split = {(f["n_train"], f["n_test"]) for f in fits if f["size"] == size}
        counts = ", ".join(f"{a}/{b}" for a, b in sorted(split))
        for model in models:
            s = next(s for s in summary if s["model"] == model and s["size"] == size)
            wins, n = _paired(fits, model, "plsr", size)
            vs = "-" if model == "plsr" else f"{wins} of {n}"
            lines.append(f"| {LABELS.get(model, model)} | {size} ({counts}) | {s['n_fits']} "
                         f"| {s['r2_mean']:.2f} ± {s['r2_std']:.2f} "
                         f"| {s['rmse_mean']:.3f} ± {s['rmse_std']:.3f} | {vs} |")
    return lines


def _findings(summary: list[dict], fits: list[dict], sizes: list[int]) -> str:
    """Per size, the measured comparisons the issue asks about (no judgement beyond them)."""
    rmse = {(s["model"], s["size"]): s["rmse_mean"] for s in summary}
    parts = []
    for size in sizes:
        here = {m: v for (m, k), v in rmse.items() if k == size}
        best = min(here, key=here.get)
        pairs = [("plsr_pds", "plsr"), ("plsr_ds", "plsr"), ("trcsl_1d", "trcsl_1d_scratch")]
        pairs += [("trcsl_1d", m) for m in BASELINES[1:]]
        text = "; ".join(
            f"{a} {here[a]:.3f} vs {b} {here[b]:.3f} (lower in {w} of {n} draws)"
            for a, b in pairs if a in here and b in here
            for w, n in [_paired(fits, a, b, size)])
        parts.append(f"- k = {size}: lowest mean RMSE {best} ({here[best]:.3f}); mean test RMSE "
                     f"{text}.")
    return "\n".join(parts)


def _publish(summary: list[dict], label_b: str) -> tuple[Path, Path]:
    """The merged summary and its Fig. 14-style plot, small enough to keep in the repository."""
    from saca_lab.compare.plots import fig14
    from saca_lab.compare.results import write_csv

    FIGURE_DIR.mkdir(parents=True, exist_ok=True)
    csv, png = FIGURE_DIR / "summary.csv", FIGURE_DIR / "fig14.png"
    write_csv(csv, summary, list(summary[0]))
    fig14(summary, png, ELEMENT, label_b)
    return csv, png


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5,10,20", help="transfer sample counts k (default 5,10,20)")
    ap.add_argument("--repeats", type=int, default=10, help="random draws per size (default 10)")
    ap.add_argument("--epochs", type=int,
                    help="pre-training, fine-tuning and scratch epochs (default: the quick "
                         f"reproduction's {FINETUNE_EPOCHS} / {FINETUNE_EPOCHS} / "
                         f"{SCRATCH_EPOCHS}); a smoke test sets few")
    ap.add_argument("--pretrain-run", help="a finished trcsl_1d pre-training on instrument A to "
                                           "reuse (default: train one)")
    ap.add_argument("--out", default="reports/bench-instrument-transfer", help="the studies' CSVs")
    ap.add_argument("--no-write", action="store_true",
                    help="neither BENCHMARKS.md nor docs/results/instrument_transfer/")
    args = ap.parse_args()
    from saca_lab.compare.plan import dataset_label
    from saca_lab.datasets.resolve import resolve_dataset

    note = load_note()
    sizes = [int(s) for s in args.sizes.split(",")]
    pre_epochs = args.epochs or FINETUNE_EPOCHS
    tune_epochs, scratch_epochs = (args.epochs or e for e in (FINETUNE_EPOCHS, SCRATCH_EPOCHS))
    start = time.perf_counter()
    # one process: the brief of a shared machine (simulation defaults to all cores)
    steel_a, steel_b = (resolve_dataset(spec, n_jobs=1, progress=False) for spec in (STEEL, STEEL_B))
    simulate_s = time.perf_counter() - start
    start = time.perf_counter()
    pre = args.pretrain_run or _pretrain(steel_a.path, pre_epochs)
    pretrain_s = time.perf_counter() - start
    lines, half_width = _windows(pre)
    common = ["compare", "--dataset", str(steel_b.path), "--transfer-dataset", str(steel_b.path),
              "--element", ELEMENT, "--sizes", args.sizes, "--repeats", str(args.repeats),
              "--features", "lines", "--set", f"data.shots={SHOTS}"]
    out = Path(args.out)
    transfer = _study([*common, "--source-dataset", str(steel_a.path),
                       "--models", ",".join((*BASELINES, "trcsl_1d")),
                       "--set", f"trcsl_1d.transfer.from={pre}",
                       "--set", f"trcsl_1d.train.max_epochs={tune_epochs}"], out / "transfer")
    scratch = _study([*common, "--models", "trcsl_1d", "--set", "trcsl_1d.transfer=null",
                      "--set", f"train.max_epochs={scratch_epochs}",
                      "--set", f"data.lines={json.dumps(lines)}",
                      "--set", f"data.half_width={half_width}"], out / "scratch")
    summary, fits = _merged(transfer, scratch)
    label_b = dataset_label(steel_b)
    published = "" if args.no_write else "Figure and merged summary: `{}`, `{}`.".format(
        *(p.relative_to(FIGURE_DIR.parents[2]) for p in reversed(_publish(summary, label_b))))
    deep_s = statistics.mean(f["fit_seconds"] for f in fits if f["model"].startswith("trcsl"))
    commands = "\n".join(f"    saca-lab {shlex.join(s['argv'])}" for s in (transfer, scratch))
    body = f"""## Calibration transfer between two instruments (issue 15 §2)

{machine()} One thread (`OMP_NUM_THREADS=1`). {note}

Measured with `python benchmarks/bench_instrument_transfer.py {shlex.join(sys.argv[1:])}`: the same 20 carbon-steel compositions (`{STEEL}`, seed 0) simulated on instrument A (the preset's `trcsl`, `{dataset_label(steel_a)}`) and B (`--instrument trcsl-b`: 0.05 nm offset, 1.4x broader lines, another response; `{label_b}`){f", {simulate_s:.0f} s to simulate" if simulate_s > 5 else ""}. TrCSL-1D pre-trained on 19 of the 20 instrument-A samples (`data.split` 0.95 / 0.05: `saca-lab train` refuses an empty test split), TrCSL's targets with a usable NIST line, {pre_epochs} epochs ({"run " + pre + ", reused" if args.pretrain_run else f"run {pre}, {pretrain_s:.0f} s"}): no instrument-B spectrum is seen in pre-training. Then two studies on B, Mn, on the same draws (same seed; each draw of k samples split 7:3 by sample; the test samples are B's), every model reading the pre-training's {len(lines)} line windows (half width {half_width}), `data.shots={SHOTS}`; TrCSL-1D {tune_epochs} epochs fine-tuned (features frozen, the head fine-tuned on Mn alone, so its output layer is re-initialised) and {scratch_epochs} from scratch; the chemometric transfers calibrate on A (`--source-dataset`) without A's measurements of the draw's test samples, PDS/DS taking the draw's training samples as the transfer standards:

{commands}

{chr(10).join(_table(summary, fits, sizes))}

R2 over the 1-2 test samples of a k = 5 draw is dominated by how close those samples' Mn lie (a
spread near zero makes R2 large and negative); RMSE is the comparable figure there. The last
column counts draws where the model's test RMSE is below target-only PLSR's on the same split.

{_findings(summary, fits, sizes)}

{published} Mean deep fit {deep_s:.1f} s; wall time of the two studies: {transfer['seconds'] / 60:.1f} and {scratch['seconds'] / 60:.1f} min.
"""
    print(body)
    if not args.no_write:
        update_section("instrument-transfer", body)


if __name__ == "__main__":
    main()
