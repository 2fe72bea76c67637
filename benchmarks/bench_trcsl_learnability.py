"""In-domain learnability of the TrCSL-family models (issue 11, section 8).

Each 1D model (``trcnn_1d``, ``trcnn_se_1d``, ``trcnn_lstm_1d``, ``trcsl_1d``) is trained from
scratch on the ``slag`` preset as the quick reproduction builds it (100 samples x 20 shots, shots
averaged in groups of 10, 7:3 split by sample) with its ``experiments/<model>_pretrain_slag.yaml``
protocol, for ``--epochs`` epochs, and its test R2 for Mn and Cr is compared with PLSRCV
(``saca_lab.baselines``, components by grouped 5-fold CV on the training samples) fitted on the
same split and the same line-window features (airPLS -> min-max -> windows). Goal: the deep
model within 0.05 of PLSR.

``--dims 2d`` does the same for the 2D ``trcsl`` (``experiments/trcsl_pretrain_slag.yaml``,
125 x 131 spectral images); PLSR then fits the same pixels, flattened (airPLS -> min-max ->
image). Its results go to their own section ("TrCSL learnability, 2D"), so the 1D tables stay.

The test R2 is over test spectra (items), as the runs log it (``test_r2_<element>``), for both.
Every choice is fixed in advance: the epochs, the final-epoch weights (no validation split, no
checkpoint selection), PLSR's components from CV on training samples only. The learning curve
(train and test R2 every ``--every`` epochs) is recorded for diagnosis only; nothing is chosen
from it.

Run (from the repository root)::

    MLFLOW_TRACKING_URI=sqlite:////tmp/me/mlflow.db SACA_LAB_DATA=/tmp/me/data \\
        python benchmarks/bench_trcsl_learnability.py --seeds 0 1 2

It prints a table and rewrites the "TrCSL learnability" section of BENCHMARKS.md (unless
``--no-write``).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from sklearn.metrics import r2_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, update_section  # noqa: E402

from saca_lab.baselines import PLSRCV  # noqa: E402
from saca_lab.config import load_config, project_dir  # noqa: E402
from saca_lab.runtime import resolve_precision  # noqa: E402
from saca_lab.spectra.presets import get_preset  # noqa: E402
from saca_lab.training.run import build_datamodule, run_experiment  # noqa: E402

MODELS = ("trcnn_1d", "trcnn_se_1d", "trcnn_lstm_1d", "trcsl_1d")
MODELS_2D = ("trcsl",)
ELEMENTS = ("Mn", "Cr")
GOAL = 0.05
DATASET = "{preset: slag, samples: 100, shots: 20}"
#: shots averaged per item unless ``--set data.shots=`` says otherwise (20 shots: 2 items per sample)
DEFAULT_SHOTS = 10
#: ``--set`` overrides for every run (deep and PLSR's data module)
COMMON: list[str] = []
#: ``--dims``: which inputs PLSR fits (the deep models' own)
DIMS: list[str] = ["1d"]


class LearningCurve(pl.Callback):
    """Train and test R2 of the reported elements every ``every`` epochs (diagnosis only)."""

    def __init__(self, every: int, elements=ELEMENTS) -> None:
        self.every = every
        self.elements = elements
        self.rows: list[dict] = []

    def _r2(self, module, dm, part: str) -> dict[str, float]:
        x, y, _ = dm._part(getattr(dm.split, part))
        with torch.no_grad():
            pred = module(torch.from_numpy(np.ascontiguousarray(x))).float().numpy()
        return {el: float(r2_score(y[:, dm.target_names.index(el)], pred[:, dm.target_names.index(el)]))
                for el in self.elements if el in dm.target_names}

    def on_train_epoch_end(self, trainer, module) -> None:
        epoch = trainer.current_epoch + 1
        if epoch % self.every and epoch != trainer.max_epochs:
            return
        was_training = module.training
        module.eval()
        dm = trainer.datamodule
        row = {"epoch": epoch, "train_loss": float(trainer.callback_metrics.get("train_loss", np.nan)),
               "train": self._r2(module, dm, "train"), "test": self._r2(module, dm, "test")}
        module.train(was_training)
        if module.hparams.freeze_features:
            module.model.features.eval()
        self.rows.append(row)


def overrides(seed: int, epochs: int, extra=()) -> list[str]:
    return [f"data.dataset={DATASET}", f"data.shots={DEFAULT_SHOTS}", f"train.max_epochs={epochs}",
            f"seed={seed}", f"data.split.seed={seed}", "tracking.log_model=false",
            "tracking.experiment=bench-trcsl-learnability", *COMMON, *extra]


def deep_run(model: str, seed: int, epochs: int, every: int, extra=()) -> dict:
    cfg = load_config(project_dir("experiments") / f"{model}_pretrain_slag.yaml",
                      overrides(seed, epochs, extra))
    curve = LearningCurve(every)
    start = time.perf_counter()
    result = run_experiment(cfg, progress=False, callbacks=[curve])
    wall = time.perf_counter() - start
    r2 = {el: result.test[f"test_r2_{el}"] for el in ELEMENTS if f"test_r2_{el}" in result.test}
    return {"model": model, "seed": seed, "extra": list(extra), "r2": r2, "wall_s": wall,
            "targets": result.targets, "curve": curve.rows,
            "precision": resolve_precision(cfg["train"]["precision"], cfg["train"]["accelerator"]),
            "lines": cfg["data"]["lines"]}


def plsr_run(seed: int, extra=()) -> dict:
    """PLSRCV per element on the deep models' split and features (line windows, or with
    ``--dims 2d`` the image pixels, flattened)."""
    two_d = DIMS[0] == "2d"
    cfg = load_config(project_dir("experiments") / ("trcsl_pretrain_slag.yaml" if two_d else "trcsl_1d_pretrain_slag.yaml"),
                      overrides(seed, 1, extra))
    dm = build_datamodule(cfg, "image_2d" if two_d else "lines_1d")
    dm.prepare_data()
    dm.setup()
    x_tr, y_tr, g_tr = dm._part(dm.split.train)
    x_te, y_te, _ = dm._part(dm.split.test)
    x_tr, x_te = x_tr.reshape(len(x_tr), -1), x_te.reshape(len(x_te), -1)
    r2, comps = {}, {}
    for el in ELEMENTS:
        j = dm.target_names.index(el)
        pls = PLSRCV().fit(x_tr, y_tr[:, j], groups=g_tr)
        r2[el] = float(r2_score(y_te[:, j], np.ravel(pls.predict(x_te))))
        comps[el] = int(pls.n_components_)
    return {"seed": seed, "r2": r2, "components": comps, "n_features": x_tr.shape[1],
            "lines": [round(v, 3) for v in dm.feature_spec.lines or ()], "targets": dm.target_names,
            "dropped": dict(dm.line_selection.dropped) if dm.line_selection else {}}


def _dataset_words(extra) -> str:
    """The data the runs read, in words: the preset's nuisance level and the shot grouping
    (``data.shots`` of :func:`overrides`, or the last ``--set data.shots=``)."""
    shots = DEFAULT_SHOTS
    for item in extra:
        if item.startswith("data.shots="):
            shots = int(item.partition("=")[2])
    per = 20 // shots
    grouping = "single shots" if shots == 1 else f"groups of {shots}"
    return (f"100 samples x 20 shots, `nuisance: {get_preset('slag').nuisance}` (the preset's "
            f"default), {grouping} -> {per} spectra per sample; train and test items alike")


def table(deep: list[dict], plsr: dict[int, dict]) -> str:
    lines = ["| model | seed | R2 Mn | PLSR Mn | diff Mn | R2 Cr | PLSR Cr | diff Cr | goal met | train R2 Mn / Cr (last epoch) | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for d in deep:
        p = plsr[d["seed"]]["r2"]
        diffs = {el: d["r2"][el] - p[el] for el in ELEMENTS}
        met = all(v >= -GOAL for v in diffs.values())
        last = d["curve"][-1]["train"] if d["curve"] else {}
        name = d["model"] + (f" ({', '.join(d['extra'])})" if d["extra"] else "")
        lines.append(f"| {name} | {d['seed']} | {d['r2']['Mn']:.3f} | {p['Mn']:.3f} | {diffs['Mn']:+.3f} | "
                     f"{d['r2']['Cr']:.3f} | {p['Cr']:.3f} | {diffs['Cr']:+.3f} | {'yes' if met else 'no'} | "
                     f"{last.get('Mn', np.nan):.3f} / {last.get('Cr', np.nan):.3f} | {d['wall_s']:.0f} |")
    return "\n".join(lines)


def summary(deep: list[dict], plsr: dict) -> str:
    """Mean +- std over seeds of each model's R2 and of its difference to PLSR."""
    out = ["| model | seeds | R2 Mn | diff Mn | R2 Cr | diff Cr | goal met |", "|---|---|---|---|---|---|---|"]
    for model in dict.fromkeys(d["model"] for d in deep):
        rows = [d for d in deep if d["model"] == model]
        cells = []
        for el in ELEMENTS:
            r2 = np.array([d["r2"][el] for d in rows])
            diff = r2 - np.array([plsr[d["seed"]]["r2"][el] for d in rows])
            cells += [f"{r2.mean():.3f} +- {r2.std():.3f}", f"{diff.mean():+.3f} +- {diff.std():.3f}"]
        met = sum(all(d["r2"][el] - plsr[d["seed"]]["r2"][el] >= -GOAL for el in ELEMENTS) for d in rows)
        out.append(f"| {model} | {len(rows)} | {' | '.join(cells)} | {met} of {len(rows)} |")
    return "\n".join(out)


def curves(deep: list[dict]) -> str:
    out = ["| model | seed | epoch | train loss | train R2 Mn | test R2 Mn | train R2 Cr | test R2 Cr |",
           "|---|---|---|---|---|---|---|---|"]
    for d in deep:
        name = d["model"] + (f" ({', '.join(d['extra'])})" if d["extra"] else "")
        for row in d["curve"]:
            out.append(f"| {name} | {d['seed']} | {row['epoch']} | {row['train_loss']:.3f} | "
                       f"{row['train'].get('Mn', np.nan):.3f} | {row['test'].get('Mn', np.nan):.3f} | "
                       f"{row['train'].get('Cr', np.nan):.3f} | {row['test'].get('Cr', np.nan):.3f} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", choices=("1d", "2d"), default="1d",
                    help="1d: the line-window models; 2d: the 2D trcsl on spectral images")
    ap.add_argument("--models", nargs="+", help=f"default {list(MODELS)}, with --dims 2d {list(MODELS_2D)}")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--every", type=int, default=25, help="learning-curve interval (epochs)")
    ap.add_argument("--variant", action="append", default=[], metavar="MODEL:KEY=VALUE",
                    help="an extra seed-0 run of MODEL with one more --set (repeatable), "
                         "e.g. trcsl_1d:model.overrides.lstm_output=last")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on a shared 2-core machine two threads spin against "
                         "each other and an epoch takes ~30x longer)")
    ap.add_argument("--json", type=Path, help="also write every measurement here")
    ap.add_argument("--notes", type=Path, help="markdown inserted after the tables (the analysis)")
    ap.add_argument("--from-json", type=Path,
                    help="report the measurements of an earlier --json run instead of training")
    ap.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    ap.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                    help="one more override for every run (repeatable), e.g. train.lr_schedule=cosine")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    COMMON[:] = args.extra
    DIMS[:] = [args.dims]
    two_d = args.dims == "2d"
    args.models = args.models or list(MODELS_2D if two_d else MODELS)

    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        deep = saved["deep"]
        plsr = {ast.literal_eval(k) if not k.isdigit() else int(k): v for k, v in saved["plsr"].items()}
        args.variant = []
    else:
        plsr = {s: plsr_run(s) for s in args.seeds}
        deep = []
        for seed in args.seeds:
            for model in args.models:
                deep.append(deep_run(model, seed, args.epochs, args.every))
                print(table(deep[-1:], plsr).splitlines()[-1], flush=True)
    for variant in args.variant:
        model, _, setting = variant.partition(":")
        extra = [setting]
        if setting.startswith("data.lines"):  # PLSR on those windows too
            plsr_v = plsr_run(args.seeds[0], extra)
            plsr[("v", variant)] = plsr_v
        deep.append(deep_run(model, args.seeds[0], args.epochs, args.every, extra))
        print(deep[-1]["model"], extra, deep[-1]["r2"], flush=True)

    variants = [d for d in deep if d["extra"]]
    main_rows = [d for d in deep if not d["extra"]]
    text = table(main_rows, plsr)
    if variants:
        vrows = []
        for d in variants:
            key = ("v", f"{d['model']}:{d['extra'][0]}")
            vrows.append(table([d], {d["seed"]: plsr.get(key, plsr[d["seed"]])}).splitlines()[-1])
        text += "\n" + "\n".join(vrows)
    print(text)
    p0 = plsr[args.seeds[0]]
    info = ((f"{p0['n_features']} image pixels" if two_d else
             f"{len(p0['lines'])} windows ({p0['n_features']} features), lines {p0['lines']}")
            + f", targets {p0['targets']}; PLSR components {[plsr[s]['components'] for s in args.seeds]}")
    print(info)
    variants_used = sorted({f"{d['model']}:{d['extra'][0]}" for d in variants})
    if args.json:
        args.json.write_text(json.dumps({"deep": deep, "plsr": {str(k): v for k, v in plsr.items()}},
                                        indent=1, default=str))
    if not args.no_write:
        # runs saved before the precision was resolved say "auto"
        precision = ", ".join(sorted({resolve_precision(d["precision"]) for d in deep}))
        notes = args.notes.read_text().strip() + "\n\n" if args.notes else ""
        body = (f"## TrCSL learnability{', 2D' if two_d else ''}\n\n{machine()}\n\n"
                f"`python benchmarks/bench_trcsl_learnability.py{' --dims 2d' if two_d else ''} "
                f"--seeds {' '.join(map(str, args.seeds))} --epochs {args.epochs}"
                + "".join(f" --set '{v}'" if " " in v else f" --set {v}" for v in args.extra)
                + "".join(f" --variant {v}" for v in variants_used) + "` (torch threads: "
                f"{args.threads})\n\n"
                f"Each {'2D' if two_d else '1D'} model trained from scratch with its `experiments/<model>_pretrain_slag.yaml` "
                f"protocol (4 targets C, Cu, Mn, Cr; "
                f"{'125 x 131 spectral images' if two_d else '`data.lines: nist`'}; precision {precision}) on the "
                f"quick slag set ({_dataset_words(args.extra)}, 7:3 "
                f"split by sample, split seed = run seed), {args.epochs} epochs, final-epoch weights. "
                f"PLSR: `PLSRCV` per element, components by grouped 5-fold CV on the training "
                f"samples, on the same split and the same {'image pixels' if two_d else 'line-window features'}. R2 over test "
                f"spectra. Goal: within {GOAL} of PLSR (diff >= -{GOAL}). *wall s*: one whole run (data "
                f"module, fit, test, MLflow), on cores shared with other jobs. Features: {info}.\n\n"
                f"{text}\n\n{summary(main_rows, plsr)}\n\n{notes}"
                f"Learning curves (diagnosis only; nothing is selected from them):\n\n"
                f"{curves(deep)}\n")
        update_section("trcsl-learnability-2d" if two_d else "trcsl-learnability", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
