"""CV+ prediction intervals of every model of the transfer study on 10 and 20 carbon steels.

Issue 15 §1: per model and sample count, the empirical coverage of 90 % intervals over all test
predictions of all draws (exact binomial 95 % CI), the mean width, how many were infinite
(counted as misses), and GLL's own sigma-based interval beside its conformal one.

Data: the quick reproduction's sets (``{preset: carbon-steel, samples: 20, shots: 20}`` and
``{preset: slag, samples: 100, shots: 20}``, the presets' calibrated nuisance), under
``$SACA_LAB_DATA`` (simulated there on first use, about a minute each). Steps:

1. ``trcsl_1d`` pre-trained on slag as ``reproduce --quick`` does (``saca-lab train
   experiments/trcsl_1d_pretrain_slag.yaml``, ``data.shots=10``, 150 epochs, seed 0), unless
   ``--pretrain-run`` names a finished run of that experiment.
2. Per size, one ``saca-lab compare`` study of PLSR (CV+ by MAPIE), GLL (60 epochs, the quick
   transfer study's) and TrCSL-1D fine-tuned from the pre-training (150 epochs), all on the
   pre-training's line windows, ``--interval LEVEL --conformal cv+ --cv-folds K``.
3. Per size, a second study of the same network trained from scratch on each draw's carbon-steel
   training samples (the transfer study's model (c): ``--set trcsl_1d.transfer=null``, 150
   epochs, the pre-training's windows written into ``data.lines``). Same seed, sizes and
   repeats, so the same draws as step 2.

Each deep model's draw is K + 1 trainings (the point prediction on all training samples and K
fold runs). Everything is fixed in advance (epochs, windows, K); nothing looks at test samples.

Run from the repository root, one thread, private MLflow store and data folder::

    OMP_NUM_THREADS=1 MLFLOW_TRACKING_URI=sqlite:////tmp/me/mlflow.db SACA_LAB_DATA=/tmp/me/data \\
        python benchmarks/bench_intervals.py --sizes 10,20 --repeats 20

It prints the table and rewrites the "intervals-steel" section of BENCHMARKS.md (unless
``--no-write``); the studies' CSVs stay under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import load_note, machine, update_section  # noqa: E402

STEEL = {"preset": "carbon-steel", "samples": 20, "shots": 20}
SLAG = {"preset": "slag", "samples": 100, "shots": 20}
PRETRAIN = "trcsl_1d_pretrain_slag"
#: the quick reproduction's settings (saca_lab/reproduce/settings.py QUICK)
SHOTS, FINETUNE_EPOCHS, SCRATCH_EPOCHS, GLL_EPOCHS = 10, 150, 150, 60
ELEMENT = "Mn"
LABELS = {"plsr": "PLSR", "gll": "GLL", "trcsl_1d": "TrCSL-1D fine-tuned (slag)",
          "scratch": "TrCSL-1D from scratch"}
METHODS = {"cv+": "CV+", "gaussian": "own sigma (mean ± z sigma)", "split": "split"}


def _saca(argv: list[str]) -> None:
    from saca_lab.cli import main

    print("$ saca-lab " + shlex.join(argv), flush=True)
    code = main(argv)
    if code != 0:
        raise SystemExit(f"saca-lab {argv[0]} failed with exit code {code}")


def _pretrain(slag: Path) -> str:
    from saca_lab import tracking
    from saca_lab.config import project_dir

    _saca(["train", str(project_dir("experiments") / f"{PRETRAIN}.yaml"), "--quiet",
           "--set", f"data.dataset={slag}",
           "--set", f"data.shots={SHOTS}", "--set", f"train.max_epochs={FINETUNE_EPOCHS}",
           "--set", "seed=0", "--set", "data.split.seed=0", "--set", "tracking.log_model=false"])
    return tracking.latest_run(PRETRAIN)


def _windows(run_id: str) -> tuple[list[float], int]:
    """The pre-training's line windows (what the fine-tuned model and the study read)."""
    from saca_lab.tracking import resolve_checkpoint
    from saca_lab.training.checkpoint import load_checkpoint

    spec = load_checkpoint(resolve_checkpoint(run_id))["hyper_parameters"]["feature_spec"]
    if spec.get("input_kind") != "lines_1d" or spec.get("lines") is None:
        raise SystemExit(f"pre-training run {run_id} has no explicit line windows: {spec}")
    return [float(w) for w in spec["lines"]], int(spec["half_width"])


def _study(steel: Path, models: str, size: int, args, out: Path, extra: list[str]) -> dict:
    argv = ["compare", "--dataset", str(steel), "--transfer-dataset", str(steel), "--element",
            ELEMENT, "--models", models, "--sizes", str(size), "--repeats", str(args.repeats),
            "--interval", f"{args.level:g}", "--conformal", "cv+", "--cv-folds", str(args.folds),
            "--set", f"data.shots={SHOTS}", *extra, "--jobs", "1", "--quiet", "--out", str(out)]
    start = time.perf_counter()
    _saca(argv)
    return {"argv": argv, "seconds": time.perf_counter() - start, "out": out}


def _rows(study: dict, rename: dict | None = None) -> list[dict]:
    """intervals.csv of a study with its test RMSE (summary.csv) and cost (fits.csv)."""
    from saca_lab.compare.results import read_csv

    out = study["out"]
    rmse = {(s["model"], s["size"]): (s["rmse_mean"], s["rmse_std"])
            for s in read_csv(out / "summary.csv")}
    cost: dict = {}
    for f in read_csv(out / "fits.csv"):
        p = json.loads(f["params"])
        c = cost.setdefault((f["model"], f["size"]), [0.0, 0.0, 0, set()])
        c[0] += f["fit_seconds"]
        c[1] += float(p.get("cv_plus_seconds", 0.0))
        c[2] += 1
        c[3].add(f["n_train"])
    rows = []
    for r in read_csv(out / "intervals.csv"):
        key = (r["model"], r["size"])
        point, folds, n, n_train = cost[key]
        rows.append({**r, "label": (rename or {}).get(r["model"], r["model"]),
                     "rmse": rmse[key], "point_s": point / n, "folds_s": folds / n,
                     "n_train": "/".join(str(v) for v in sorted(n_train))})
    return rows


def _cv_plus_bound(n: int, k: int, level: float) -> float:
    """Barber et al. (2021), Theorem 4: CV+'s worst-case coverage for exchangeable samples."""
    a = 1.0 - level
    return 1 - 2 * a - min(2 * (1 - 1 / k) / (n / k + 1), (1 - k / n) / (k + 1))


def _table(rows: list[dict], folds: int) -> list[str]:
    lines = ["| model | samples (train) | method | draws | test predictions | coverage (95 % CI) "
             "| mean width (mass %) | infinite | test RMSE (mean ± std) |",
             "|---|---:|---|---:|---:|---|---:|---:|---|"]
    for r in rows:
        method = f"CV+ (K={folds})" if r["method"] == "cv+" else METHODS.get(r["method"], r["method"])
        width = "-" if not math.isfinite(r["mean_width"]) else f"{r['mean_width']:.2f}"
        lines.append(f"| {LABELS.get(r['label'], r['label'])} | {r['size']} ({r['n_train']}) "
                     f"| {method} | {r['n_fits']} "
                     f"| {r['n_pred']} | {r['coverage']:.3f} ({r['coverage_ci_lo']:.3f}-"
                     f"{r['coverage_ci_hi']:.3f}) | {width} | {r['n_infinite']} "
                     f"| {r['rmse'][0]:.2f} ± {r['rmse'][1]:.2f} |")
    return lines


def _guarantee(rows: list[dict], sizes: list[int], folds: int, level: float) -> str:
    """What CV+ promises at each size (from the training samples of a draw) and what the
    measured rows show there."""
    parts = []
    for size in sizes:
        here = [r for r in rows if r["size"] == size]
        n = min(int(v) for r in here for v in str(r["n_train"]).split("/"))
        rank = math.ceil((n + 1) * level - 1e-9)
        conformal = [r for r in here if r["method"] == "cv+"]
        infinite = [LABELS.get(r["label"], r["label"]) for r in conformal
                    if r["n_infinite"] == r["n_pred"]]
        own = [r for r in here if r["method"] == "gaussian"]
        if rank > n:
            top = n / (n + 1)
            text = (f"At {size} samples a draw has n = {n} training samples, and a {level * 100:g} % "
                    f"CV+ interval needs the {rank}th smallest of {n} bounds, so no finite "
                    f"interval has the guarantee: measured, every CV+ interval of "
                    f"{', '.join(infinite) or 'no model'} was infinite "
                    f"({len(infinite)} of {len(conformal)} models), each counted as a miss. The "
                    f"guarantee holds only trivially (an infinite interval covers every value) "
                    f"and says nothing about the concentration; with {n} training samples no "
                    f"level above {n}/{n + 1} = {top:.3f} has a finite CV+ interval, and at that "
                    f"level the worst-case bound is {_cv_plus_bound(n, folds, top):.2f}.")
            if own:
                text += (f" What remains at {size} samples is a model's own sigma: GLL's "
                         f"{level * 100:g} % Gaussian interval covered {own[0]['coverage']:.3f} "
                         f"({own[0]['coverage_ci_lo']:.3f}-{own[0]['coverage_ci_hi']:.3f}), "
                         f"finite, but without any guarantee.")
        else:
            text = (f"At {size} samples n = {n} training samples: the interval uses ranks "
                    f"{n + 1 - rank} and {rank} of {n}, and CV+'s worst-case coverage for "
                    f"exchangeable samples (Barber et al. 2021, Theorem 4) is "
                    f"{_cv_plus_bound(n, folds, level):.2f}; near-nominal coverage is what it "
                    f"gives in practice, not a promise.")
        parts.append(text)
    return "\n\n".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,20", help="carbon-steel sample counts (default 10,20)")
    ap.add_argument("--repeats", type=int, default=20, help="random draws per size (default 20)")
    ap.add_argument("--level", type=float, default=0.9)
    ap.add_argument("--folds", type=int, default=5, help="K of CV+ (default 5)")
    ap.add_argument("--pretrain-run", help="a finished trcsl_1d_pretrain_slag run to reuse "
                                           "(default: train one, about 40 s)")
    ap.add_argument("--skip", action="append", default=[], metavar="MODEL@SIZE",
                    help="leave a model of the first study out at one size (e.g. trcsl_1d@20, "
                         "measured before); repeatable")
    ap.add_argument("--out", default="reports/bench-intervals", help="the studies' CSVs")
    ap.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = ap.parse_args()
    from saca_lab.datasets.resolve import resolve_dataset

    note = load_note()
    sizes = [int(s) for s in args.sizes.split(",")]
    steel, slag = (resolve_dataset(spec).path for spec in (STEEL, SLAG))
    start = time.perf_counter()
    pre = args.pretrain_run or _pretrain(slag)
    pretrain_s = time.perf_counter() - start
    lines, half_width = _windows(pre)
    scratch = ["--set", "trcsl_1d.transfer=null", "--set", f"train.max_epochs={SCRATCH_EPOCHS}",
               "--set", f"data.lines={json.dumps(lines)}", "--set", f"data.half_width={half_width}"]
    epochs = {"trcsl_1d": FINETUNE_EPOCHS, "gll": GLL_EPOCHS}
    rows, studies = [], []
    for size in sizes:
        models = ",".join(m for m in ("plsr", "gll", "trcsl_1d") if f"{m}@{size}" not in args.skip)
        # compare refuses a MODEL.key item for a model outside the study (unknown field MODEL)
        tuned = [item for m, e in epochs.items() if m in models.split(",")
                 for item in ("--set", f"{m}.train.max_epochs={e}")]
        # the pre-training's windows for GLL too: without a transfer model in the study (--skip)
        # they would otherwise be chosen on each draw (data.lines: nist), for PLSR as well
        tuned += ["--set", f"gll.data.lines={json.dumps(lines)}",
                  "--set", f"gll.data.half_width={half_width}"]
        a = _study(steel, models, size, args, Path(args.out) / f"n{size}", tuned)
        b = _study(steel, "trcsl_1d", size, args, Path(args.out) / f"n{size}-scratch", scratch)
        rows += _rows(a) + _rows(b, {"trcsl_1d": "scratch"})
        studies += [a, b]
    table = _table(rows, args.folds)
    costs = "; ".join(
        f"{LABELS.get(r['label'], r['label'])} at {r['size']}: {r['point_s']:.1f} s + "
        + (f"{r['folds_s']:.1f} s" if r["folds_s"] else "no fold runs (infinite anyway)")
        for r in rows if r["method"] == "cv+" and r["label"] != "plsr")
    skipped = (f"Left out: {', '.join(args.skip)} (measured in the subsection above).\n\n"
               if args.skip else "")
    walls = ", ".join(f"{s['seconds'] / 60:.1f} min" for s in studies)
    commands = "\n".join(f"    saca-lab {shlex.join(s['argv'])}" for s in studies)
    body = f"""### CV+ for every model of the transfer study, 10 and 20 carbon steels

{machine()} One thread (`OMP_NUM_THREADS=1`). {note}

Measured with `python benchmarks/bench_intervals.py {shlex.join(sys.argv[1:])}`: the quick reproduction's sets (`{STEEL}`, `{SLAG}`), TrCSL-1D pre-trained on slag ({"run " + pre + ", reused" if args.pretrain_run else f"run {pre}, {pretrain_s:.0f} s"}), then per size two studies on the same draws (same seed; each draw 7:3 by sample), every model reading the pre-training's {len(lines)} line windows (half width {half_width}); GLL {GLL_EPOCHS} epochs, TrCSL-1D {FINETUNE_EPOCHS} epochs fine-tuned and {SCRATCH_EPOCHS} from scratch (the quick transfer study's settings), `data.shots={SHOTS}`:

{commands}

Deep models: CV+ from K = {args.folds} fold runs of each draw's training samples besides the run on all of them; PLSR: CV+ by MAPIE, K shuffled folds of the same training samples; GLL's own interval is mean ± z sigma of its predicted sigma (the point run's), beside its CV+ one. Coverage over all test predictions of all draws, exact binomial 95 % CI (the test samples of one draw share its fold models, so the real uncertainty is larger); an infinite interval counts as a miss, its width is left out of the mean (`-`: all infinite).

{chr(10).join(table)}

{skipped}Cost per draw (point run + {args.folds} fold runs, mean): {costs}. Wall time of the studies in the order above: {walls}.

{_guarantee(rows, sizes, args.folds, args.level)}
"""
    print(body)
    if not args.no_write:
        update_section("intervals-steel", body)


if __name__ == "__main__":
    main()
