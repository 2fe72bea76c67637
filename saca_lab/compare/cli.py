"""``saca-lab compare``: argument parsing for the sample-count study and grouped CV."""

from __future__ import annotations

import argparse

from saca_lab.training.conformal import DEEP_METHODS


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``compare`` subcommand on ``saca-lab``'s subparsers."""
    p = sub.add_parser(
        "compare", help="baselines vs deep models vs number of samples (TrCSL Fig. 14/15), "
                        "or grouped K-fold CV",
        description="For each sample count, REPEATS random subsets split 70/30 by sample (or "
                    "K-fold CV by sample with --cv); every model is fitted on the same samples. "
                    "Writes fits.csv, summary.csv, predictions.csv and fig14.png/fig15.png "
                    "(cv.png with --cv) and logs an MLflow parent run with a child per model "
                    "and size.")
    p.add_argument("--dataset", required=True,
                   help="preset name (slag, carbon-steel, stainless) or dataset directory")
    p.add_argument("--element", required=True, help="target column, e.g. Mn or SiO2")
    p.add_argument("--models", default="plsr,pso_svr",
                   help="comma-separated: plsr, pso_svr, pca_pls, the calibration-transfer "
                        "baselines plsr_pds, plsr_ds, plsr_slope_bias, plsr_source_target (with "
                        "--source-dataset) and any registered deep model (saca-lab models); "
                        "default plsr,pso_svr")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--sizes", help="sample counts: START:STOP:STEP or a list "
                                      "(default 10:100:10)")
    mode.add_argument("--cv", type=int, metavar="K", help="K-fold CV by sample over the whole "
                                                          "dataset instead of sizes")
    p.add_argument("--repeats", type=int, default=5, help="random subsets per size (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output folder (default reports/compare-DATASET-ELEMENT)")
    p.add_argument("--jobs", type=int, help="worker processes for the baselines "
                                            "(default: all cores)")
    p.add_argument("--features", choices=["spectrum", "lines"], default=None,
                   help="what every model reads: the full spectrum (baselines, 2D and "
                        "spectrum deep models) or the same line windows (baselines, *_1d models, "
                        "gll); default: what the deep models read (spectrum without any); "
                        "other pairs are refused")
    p.add_argument("--no-airpls", dest="airpls", action="store_false",
                   help="skip airPLS baseline correction (min-max only)")
    p.add_argument("--normalize", choices=["minmax", "sum", "none"], default="minmax",
                   help="per-spectrum scaling: min-max (TrCSL, default), total intensity "
                        "(baselines; deep models then get none) or none")
    p.add_argument("--epochs", type=int, help="train.max_epochs of every deep fit")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="baseline parameter (pso_svr.n_iter=5), deep config field for every deep "
                        "model (train.lr=0.001) or for one (gll.train.max_epochs=60); repeatable")
    p.add_argument("--transfer-dataset", default="carbon-steel",
                   help="what transfer models (trcsl ...) are fine-tuned on (default carbon-steel)")
    p.add_argument("--source-dataset",
                   help="what the calibration-transfer baselines calibrate on besides each "
                        "draw's training samples: the same samples on another instrument "
                        "(plsr_pds, plsr_ds: e.g. carbon-steel simulated with --instrument trcsl "
                        "while --dataset is trcsl-b) or another domain (slag, for "
                        "plsr_slope_bias and plsr_source_target)")
    p.add_argument("--interval", type=float, metavar="LEVEL",
                   help="prediction intervals at this level (e.g. 0.9): CV+ for plsr, pso_svr "
                        "and pca_pls (5 folds of training samples), split conformal for deep "
                        "models (data.split.calibration of the training samples, default 0.3; "
                        "CV+ with --conformal cv+), "
                        "and GLL's own Gaussian interval beside; writes intervals.csv with the "
                        "empirical coverage (binomial 95%% CI) and mean width per model and size")
    p.add_argument("--conformal", choices=DEEP_METHODS,
                   help="how deep models get their --interval: split (the calibration share, "
                        "default) or cv+ (K more trainings per draw, fold k of the training "
                        "samples calibrating the run fitted on the others; finite 90%% intervals "
                        "from 9 training samples, e.g. 20 carbon steels)")
    p.add_argument("--cv-folds", type=int, metavar="K",
                   help="K of every CV+ interval of the study (baselines and --conformal cv+; "
                        "default 5)")
    p.add_argument("--experiment", default="compare", help="MLflow experiment (default compare)")
    p.add_argument("--data-root", help="where presets are stored (default: $SACA_LAB_DATA or ./data)")
    p.add_argument("--quiet", action="store_true", help="no per-fit progress lines")
    return p


def run(args) -> int:
    from saca_lab.compare.results import format_table
    from saca_lab.compare.study import run_compare

    sizes = args.sizes if args.sizes is not None or args.cv is not None else "10:100:10"
    # unset options keep run_compare's defaults (each default in one place)
    conformal = {k: v for k, v in (("conformal", args.conformal), ("cv_folds", args.cv_folds))
                 if v is not None}
    result = run_compare(args.dataset, args.element, args.models, sizes=sizes,
                         repeats=args.repeats, cv=args.cv, seed=args.seed, out_dir=args.out,
                         n_jobs=args.jobs, features=args.features, overrides=args.overrides,
                         transfer_dataset=args.transfer_dataset, progress=not args.quiet,
                         epochs=args.epochs, experiment=args.experiment, airpls=args.airpls,
                         normalize=args.normalize, source_dataset=args.source_dataset,
                         interval=args.interval, **conformal,
                         data_root=args.data_root)
    print(format_table(result.summary))
    if result.intervals:
        from saca_lab.compare.results import format_interval_table

        print(format_interval_table(result.intervals))
    for path in result.paths.values():
        print(f"wrote {path}")
    print(f"MLflow parent run {result.parent_run_id} (experiment {args.experiment})")
    return 0
