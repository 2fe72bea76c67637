"""``saca-lab sweep run|report``: argument parsing and printing; the work is in the library."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    """Register ``sweep`` on the main parser's subparsers."""
    p = sub.add_parser("sweep", help="Optuna sweeps: ablations and hyper-parameter searches "
                                     "that resume, prune and scale out")
    actions = p.add_subparsers(dest="sweep_command", required=True)
    storage_help = "Optuna storage URL (default sqlite:///mlruns/optuna.db); " \
                   "postgresql://USER:PASSWORD@HOST:PORT/DB shares a study across machines"

    r = actions.add_parser("run", help="run, resume or join a sweep (any number of processes)")
    r.add_argument("sweep", help="sweeps/NAME.yaml")
    r.add_argument("--n-trials", type=int, help="trials of the whole study, all workers together "
                                                "(default: the file's n_trials or the grid size)")
    r.add_argument("--storage", help=storage_help)
    r.add_argument("--study-name", help="default: the sweep file's name")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override every trial's config, e.g. --set train.max_epochs=5 (repeatable)")
    r.add_argument("--quiet", action="store_true", help="no per-trial progress lines")

    r = actions.add_parser("report", help="best parameters, importances, plots, per-trial table")
    r.add_argument("study", help="study name (the sweep file's name unless --study-name was given)")
    r.add_argument("--storage", help=storage_help)
    r.add_argument("--out", help="output folder (default reports/sweeps/STUDY)")


def _cmd_run(args) -> int:
    from saca_lab.runtime import tune_allocator
    from saca_lab.sweeps.runner import run_sweep

    tune_allocator()
    study = run_sweep(args.sweep, n_trials=args.n_trials, storage=args.storage,
                      study_name=args.study_name, overrides=args.overrides, progress=not args.quiet)
    try:
        best = study.best_trial
    except ValueError:
        print(f"study {study.study_name}: no complete trial")
        return 0
    print(f"study {study.study_name}: best trial {best.number}, value {best.value:.4g}, "
          + ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items()))
    return 0


def _cmd_report(args) -> int:
    from saca_lab.sweeps.report import sweep_report

    rep = sweep_report(args.study, storage=args.storage, out_dir=args.out)
    print(f"wrote {rep['markdown']} ({', '.join(p.name for p in rep['plots'])}, {rep['csv'].name})")
    if rep["best_trial"] is None:
        print("no complete trial yet")
        return 0
    print(f"best: trial {rep['best_trial']}, {rep['metric']} {rep['best_value']:.4g}")
    for key, value in rep["best_params"].items():
        imp = rep["importances"].get(key)
        print(f"  {key:<32} {_fmt(value):<24}" + (f" importance {imp:.3f}" if imp is not None else ""))
    done = [r for r in rep["trials"] if r["state"] == "COMPLETE"]
    done.sort(key=lambda r: r["value"], reverse=rep["direction"] == "maximize")
    print(f"top {min(5, len(done))} of {len(rep['trials'])} trials:")
    for r in done[:5]:
        params = " ".join(f"{k.rsplit('.', 1)[-1]}={_fmt(v)}" for k, v in r["params"].items())
        print(f"  #{r['number']:<4} {r['value']:.4g}  {params}")
    return 0


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def run(args: argparse.Namespace) -> int:
    """Dispatch ``sweep run`` / ``sweep report``."""
    return {"run": _cmd_run, "report": _cmd_report}[args.sweep_command](args)
