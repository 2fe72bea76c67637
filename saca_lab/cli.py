"""Command line: parses arguments and calls the library. Exit codes: 0 ok, 2 bad input."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from saca_lab import __version__
from saca_lab.compare import cli as compare_cli
from saca_lab.errors import InputError
from saca_lab.reproduce import cli as reproduce_cli
from saca_lab.sweeps import cli as sweep_cli


def _add_data_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", help="where datasets are stored (default: $SACA_LAB_DATA or ./data)")


def build_parser() -> argparse.ArgumentParser:
    """The ``saca-lab`` argument parser, every verb included; parsing runs nothing."""
    parser = argparse.ArgumentParser(prog="saca-lab", description=__doc__)
    parser.add_argument("--version", action="version", version=f"saca-lab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="simulate a preset dataset or one spectrum")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", help="slag, carbon-steel or stainless")
    src.add_argument("--composition", help='one spectrum, e.g. "Fe=98.2,Mn=0.8,C=0.4" (mass %%)')
    p.add_argument("--out", help="dataset directory (preset) or CSV file (composition); "
                                 "default for a preset: its cache folder under DATA_ROOT, the "
                                 "one training finds (e.g. slag-samples20-nuisance-calibrated)")
    p.add_argument("--samples", type=int, help="number of samples (preset default otherwise)")
    p.add_argument("--shots", type=int, help="shots per sample (preset default; 1 for --composition)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--instrument", help="trcsl, trcsl-b (a second TrCSL-type unit, for "
                                        "calibration transfer) or saca (preset default; trcsl "
                                        "for --composition)")
    p.add_argument("--nuisance", help="sample- and session-level nuisance (preset only): none, "
                                      "calibrated or a JSON object of levels (default: the "
                                      "preset's, calibrated for slag, carbon-steel, stainless)")
    p.add_argument("--matrix", help="steel, slag, stainless-spark or rock (--composition only; "
                                    "default: slag for oxides, else steel)")
    p.add_argument("--jobs", type=int, help="worker processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing different dataset")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_data_root(p)

    p = sub.add_parser("import", help="import measured spectra files into the dataset store")
    p.add_argument("files", nargs="+", help="CSV (PyHAT, two-column, wide), NPZ, or folders")
    p.add_argument("--targets", help="labels CSV: sample_id + element/oxide columns (mass %%)")
    p.add_argument("--out", required=True, help="dataset directory to write")
    p.add_argument("--grid", help="resample onto START:STOP:POINTS (nm) or onto the grid of "
                                  "this two-column CSV or dataset directory")
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("info", help="summarise a dataset")
    p.add_argument("dataset")
    p.add_argument("--verify", action="store_true", help="re-hash every file against the manifest")

    p = sub.add_parser("realism", help="score simulated vs measured spectra by peak matching")
    p.add_argument("measured", nargs="+", help="two-column wavelength,intensity CSV files")
    p.add_argument("--composition", help="mass %% (default: certified BHVO-2, O balance)")
    p.add_argument("--simulator", choices=["preset", "plain"], default="preset",
                   help="preset: the full simulator (channels, backgrounds, noise); "
                        "plain: a bare libskit LTE spectrum at 10,000 K")
    p.add_argument("--out", default="reports/realism", help="folder for overlay PNGs and scores.csv")

    p = sub.add_parser("train", help="train a model from an experiment YAML (tracked in MLflow)")
    p.add_argument("experiment", help="experiments/NAME.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.max_epochs=5 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--resume", metavar="RUN_ID",
                   help="continue this unfinished MLflow run from its last checkpoint (same "
                        "experiment file and --set values; see train.checkpoint_every)")

    p = sub.add_parser("predict", help="predict compositions of raw spectra with a trained model")
    p.add_argument("--model", required=True, help="MLflow run id, runs:/RUN_ID, or checkpoint path")
    p.add_argument("--input", required=True, help="spectra file(s) (any importable format) or dataset")
    p.add_argument("--out", required=True, help="predictions CSV")
    p.add_argument("--interval", type=float, metavar="LEVEL",
                   help="add <element>_lo/<element>_hi: split-conformal intervals at this level "
                        "(e.g. 0.9) from the calibration scores stored with the run (train with "
                        "--set data.split.calibration=0.2 to store them)")

    p = sub.add_parser("models", help="list registered models")

    p = sub.add_parser("plot", help="paper-style figures")
    p.add_argument("figure", choices=["fig8"], help="fig8: raw vs airPLS-corrected spectra, "
                                                    "first 5 slag and carbon-steel samples")
    p.add_argument("--out", default="reports/fig8.png")
    p.add_argument("--shots", type=int, help="shots per sample if the presets must be generated")
    p.add_argument("--jobs", type=int)
    _add_data_root(p)
    sweep_cli.add_parser(sub)
    compare_cli.add_parser(sub)
    reproduce_cli.add_parser(sub)
    return parser


def _cmd_simulate(args) -> int:
    from saca_lab.chemistry import parse_composition
    from saca_lab.datasets.resolve import preset_simulation, resolve_dataset
    from saca_lab.spectra.simulate import simulate_dataset, simulate_spectrum

    if args.composition:
        if not args.out:
            raise InputError("--out FILE.csv is required with --composition")
        if args.nuisance:
            raise InputError("--nuisance applies to --preset (it acts between samples and sessions)")
        wl, y = simulate_spectrum(parse_composition(args.composition),
                                  instrument=args.instrument or "trcsl", matrix=args.matrix,
                                  n_shots=args.shots or 1, seed=args.seed or 0)
        from saca_lab.io import write_two_column_csv

        write_two_column_csv(args.out, wl, y)
        print(f"wrote {args.out} ({wl.size} points, {wl[0]:.3f}-{wl[-1]:.3f} nm air)")
        return 0
    if args.matrix:
        raise InputError("--matrix applies to --composition; presets fix their matrix")
    from saca_lab.spectra.nuisance import parse_nuisance_text

    given = {"samples": args.samples, "shots": args.shots, "seed": args.seed,
             "instrument": args.instrument, "nuisance": parse_nuisance_text(args.nuisance)}
    spec = {"preset": args.preset, **{k: v for k, v in given.items() if v is not None}}
    if args.out:
        ds = simulate_dataset(preset_simulation(spec), Path(args.out), n_jobs=args.jobs,
                              overwrite=args.overwrite, progress=not args.quiet)
    else:
        ds = resolve_dataset(spec, args.data_root, n_jobs=args.jobs, overwrite=args.overwrite,
                             progress=not args.quiet)
    print(f"{ds.path}: {ds.shape[0]} samples x {ds.shape[1]} shots x {ds.shape[2]} points, "
          f"targets {', '.join(ds.targets)}")
    return 0


def _parse_grid(text: str | None):
    """``START:STOP:POINTS`` or a file/dataset whose wavelengths to use."""
    if text is None:
        return None
    import numpy as np

    from saca_lab.data.readers import read_any
    from saca_lab.data.store import is_dataset, open_dataset

    if is_dataset(text):
        return open_dataset(text).wavelengths
    if Path(text).exists():
        return read_any([text]).wavelengths
    parts = text.split(":")
    try:
        start, stop, n = float(parts[0]), float(parts[1]), int(parts[2])
    except (ValueError, IndexError):
        raise InputError(f"--grid {text!r}: expected START:STOP:POINTS or an existing file") from None
    if len(parts) != 3 or not start < stop or n < 2:
        raise InputError(f"--grid {text!r}: need START < STOP and POINTS >= 2")
    return np.linspace(start, stop, n)


def _cmd_import(args) -> int:
    from saca_lab.data.importer import import_files

    out = import_files(args.files, out_dir=args.out, targets_csv=args.targets,
                       grid=_parse_grid(args.grid), overwrite=args.overwrite)
    from saca_lab.data.store import open_dataset

    ds = open_dataset(out)
    print(f"{out}: {ds.shape[0]} samples x {ds.shape[1]} shots x {ds.shape[2]} points, "
          f"targets {', '.join(ds.targets) or '(none)'}")
    return 0


def _cmd_info(args) -> int:
    import json

    from saca_lab.data.store import open_dataset

    ds = open_dataset(args.dataset)
    m = ds.manifest
    print(f"{ds.path}\n  shape: {ds.shape} float32\n  wavelengths: "
          f"{ds.wavelengths[0]:.3f}-{ds.wavelengths[-1]:.3f} nm\n  targets: {', '.join(ds.targets)}")
    prov = {k: v for k, v in m["provenance"].items() if not isinstance(v, dict)}
    print("  provenance: " + json.dumps(prov, default=str))
    if args.verify:
        ds.verify()
        print("  checksums: ok")
    return 0


def _cmd_realism(args) -> int:
    from saca_lab.spectra.realism_report import run_realism

    return run_realism(args.measured, composition=args.composition, simulator=args.simulator,
                       out_dir=args.out)


def _cmd_plot(args) -> int:
    from saca_lab.plots import fig8_from_presets

    path = fig8_from_presets(args.out, data_root=args.data_root, n_shots=args.shots,
                             n_jobs=args.jobs)
    print(f"wrote {path}")
    return 0


def _cmd_train(args) -> int:
    from saca_lab.config import load_config
    from saca_lab.runtime import tune_allocator

    tune_allocator()
    from saca_lab.training.ownership import mark_dead_runs
    from saca_lab.training.run import run_experiment

    cfg = load_config(args.experiment, args.overrides)  # bad input: exit 2 before touching MLflow
    mark_dead_runs()
    result = run_experiment(cfg, progress=not args.quiet, resume=args.resume)
    if result.run_id is None:  # a rank > 0 of train.strategy: ddp; rank 0 tests and reports
        return 0
    print(f"run {result.run_id} ({cfg['tracking']['experiment']})")
    for name in result.targets:
        r2 = result.test_sample.get(f"test_sample_r2_{name}", float("nan"))
        rmse = result.test_sample[f"test_sample_rmse_{name}"]
        print(f"  {name:>6}: test R2 {r2:7.4f}  RMSE {rmse:.4g} %  (per sample)")
    if result.calibration:
        from saca_lab.training.conformal import finite_levels

        n = len(result.calibration["sample_ids"])
        print(f"  calibration scores of {n} samples stored: saca-lab predict --interval LEVEL "
              f"reads them (finite bounds up to level {finite_levels(n):.3g})")
    return 0


def _cmd_predict(args) -> int:
    from saca_lab.predict import predict_to_csv
    from saca_lab.runtime import tune_allocator

    tune_allocator()

    out = predict_to_csv(args.model, args.input, args.out, interval=args.interval)
    print(f"wrote {out}")
    return 0


def _cmd_models(args) -> int:
    from saca_lab.models import list_models, model_info

    for name in list_models():
        info = model_info(name)
        print(f"{name:20s} {info.input_kind:12s} {info.description}")
    return 0


COMMANDS = {"simulate": _cmd_simulate, "import": _cmd_import, "info": _cmd_info,
            "realism": _cmd_realism, "plot": _cmd_plot, "train": _cmd_train,
            "predict": _cmd_predict, "models": _cmd_models, "sweep": sweep_cli.run,
            "compare": compare_cli.run, "reproduce": reproduce_cli.run}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except InputError as e:
        print(f"saca-lab {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
