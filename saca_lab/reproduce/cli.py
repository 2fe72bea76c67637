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
                   help="reduced samples, shots, epochs and sweep budgets: ~15 min on 2 CPU cores")
    p.add_argument("--only", metavar="FIGS",
                   help=f"comma-separated subset of: {', '.join(figure_names())}")
    p.add_argument("--out", help="report folder (default reports/quick or reports/full)")
    p.add_argument("--data-root", help="where datasets are stored (default: $SACA_LAB_DATA or ./data)")
    p.add_argument("--no-reuse", action="store_true",
                   help="train every run and sweep anew instead of reusing finished ones")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a mode setting, e.g. --set compare_repeats=2 or "
                        "--set 'slag={preset: slag, samples: 40}' (see saca_lab/reproduce/settings.py)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def run(args) -> int:
    from saca_lab.reproduce.runner import parse_only, run_reproduce
    from saca_lab.reproduce.settings import get_mode
    from saca_lab.runtime import tune_allocator

    tune_allocator()
    mode = get_mode("quick" if args.quick else "full", args.overrides)
    only = parse_only(args.only)
    out = args.out or f"reports/{mode.name}"
    report, ok = run_reproduce(mode, out, only=only, data_root=args.data_root,
                               reuse=not args.no_reuse, progress=not args.quiet)
    print(f"wrote {report}")
    if not ok:
        print("some figures failed; see the report", flush=True)
    return 0 if ok else 1
