"""``saca-lab reproduce``: arguments and the command."""

from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    from saca_lab.reproduce.runner import figure_names

    p = sub.add_parser(
        "reproduce", help="reproduce the papers' figures and tables; writes report.md",
        description="Run what every paper figure needs (reusing cached datasets, runs and "
                    "studies), log each figure to its own MLflow experiment (reproduce-FIG), and "
                    "write report.md with every PNG and a paper-vs-ours table.")
    p.add_argument("--quick", action="store_true",
                   help="reduced samples, shots, epochs and sweep budgets, sized to --budget (15 min)")
    p.add_argument("--only", metavar="FIGS",
                   help=f"comma-separated subset of: {', '.join(figure_names())}")
    p.add_argument("--out", help="report folder (default reports/quick or reports/full)")
    p.add_argument("--data-root", help="where datasets are stored (default: $SACA_LAB_DATA or ./data)")
    p.add_argument("--no-reuse", action="store_true",
                   help="train every run and sweep anew instead of reusing finished ones")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a mode setting, e.g. --set compare_repeats=2 or "
                        "--set 'slag={preset: slag, samples: 40}' (see saca_lab/reproduce/settings.py)")
    p.add_argument("--budget", type=float, metavar="MINUTES",
                   help="time a few training steps here, then shrink Fig. 9's 2D trials and "
                        "epochs (then repeats) to fit (default: 15 with --quick, none for full)")
    p.add_argument("--plan", nargs="?", const="", metavar="PATH",
                   help="print the plan (runs, epochs, estimated minutes per figure) and write it "
                        "to PATH (default OUT/plan.yaml) without training")
    p.add_argument("--plan-file", metavar="PATH",
                   help="run exactly this plan (from --plan; no timing): the same runs anywhere")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def run(args) -> int:
    from saca_lab.errors import InputError
    from saca_lab.reproduce.plan import DEFAULT_BUDGET, make_plan
    from saca_lab.reproduce.plan_file import load_plan
    from saca_lab.reproduce.runner import parse_only, run_reproduce
    from saca_lab.reproduce.settings import get_mode
    from saca_lab.runtime import tune_allocator

    tune_allocator()
    base = "quick" if args.quick else "full"
    if args.plan_file:
        given = [f for f, v in (("--quick", args.quick), ("--only", args.only), ("--set", args.overrides),
                                ("--budget", args.budget is not None)) if v]
        if given:
            raise InputError(f"--plan-file fixes the figures and settings; drop {', '.join(given)}")
        plan = load_plan(args.plan_file)
    else:
        budget = DEFAULT_BUDGET[base] if args.budget is None else args.budget
        if not args.quiet:
            print("timing a few training steps of each model family for the plan ...", flush=True)
        # None, not every name: a figure a mode leaves out runs only when --only names it
        plan = make_plan(base, args.overrides, parse_only(args.only) if args.only else None, budget,
                         data_root=args.data_root)
    out = args.out or f"reports/{get_mode(plan.mode, args.overrides).name}"
    if args.plan is not None:
        path = plan.save(args.plan or f"{out}/plan.yaml")
        print(plan.text())
        print(f"wrote {path}")
        return 0
    if not args.quiet:
        print(plan.text(), flush=True)
    report, ok = run_reproduce(plan.build_mode(), out, only=plan.only, data_root=args.data_root,
                               reuse=not args.no_reuse, progress=not args.quiet, plan=plan)
    print(f"wrote {report}")
    if not ok:
        print("some figures failed; see the report", flush=True)
    return 0 if ok else 1
