"""SACA's §6 protocol (issue 10): the report's Table 1 over three split seeds, and why presence fails.

Runs nothing heavy itself. Given the folder of a ``saca-lab reproduce --only saca_table1`` report
and its MLflow store, it re-scores the report's training runs on their test samples (the same
reduction and averaging as the report, :mod:`saca_lab.reproduce.saca`) to add what the report of
an older code version may lack: the median prediction over the test samples that hold none of
an element (``absent_median``), beside PLSR's on the same samples. It then writes the
"SACA protocol" section of BENCHMARKS.md: the report's Table 1, verbatim, and that table.

Usage (the protocol itself, about 36 min on 2 cores with one torch thread)::

    OMP_NUM_THREADS=1 saca-lab reproduce --only saca_table1 --set saca_model=resnet_dcnn_small \\
        --set saca_epochs=40 --out /tmp/x/report --data-root /tmp/x/data
    SACA_LAB_DATA=/tmp/x/data python benchmarks/bench_saca_protocol.py \\
        --report /tmp/x/report/report.md --mlruns mlruns
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, update_section  # noqa: E402


def table1_section(report: Path) -> tuple[str, list[str]]:
    """The report's "SACA Table 1" section and the run ids it names."""
    text = report.read_text()
    match = re.search(r"^## SACA Table 1.*?(?=^## |\Z)", text, flags=re.S | re.M)
    if match is None:
        raise SystemExit(f"{report}: no 'SACA Table 1' section")
    section = match.group(0).strip()
    runs = re.findall(r"seed \d+: ([0-9a-f]{8})", section)
    if not runs:
        raise SystemExit(f"{report}: the SACA Table 1 section names no runs")
    return section, runs


def rescore(mlruns: Path, run: str) -> dict:
    """Network and PLSR scores of one report run on its test samples."""
    from saca_lab.datasets.features import FeatureSpec
    from saca_lab.datasets.resolve import resolve_dataset
    from saca_lab.datasets.splits import make_split
    from saca_lab.reproduce.saca import predict_samples, references, scores, test_items
    from saca_lab.training.predictor import Predictor

    found = sorted(mlruns.glob(f"*/{run}*/artifacts"))
    if len(found) != 1:
        raise SystemExit(f"{mlruns}: run {run} found {len(found)} times")
    art = found[0]
    cfg = yaml.safe_load((art / "config.yaml").read_text())
    predictor = Predictor(art / "checkpoints" / "model.ckpt")
    ds = resolve_dataset(cfg["data"]["dataset"])
    split = make_split(ds.shape[0], cfg["data"]["split"])
    shots = cfg["data"]["shots"]
    names = predictor.target_names
    pred = predict_samples(lambda x: predictor.predict(ds.wavelengths, x), test_items(ds, split.test, shots))
    truth = ds.target_matrix(names)[split.test]
    refs = references(ds, names, split, FeatureSpec.from_dict(predictor.module.hparams.feature_spec), shots)
    return {"names": names, "absent": (truth == 0).sum(axis=0), "net": scores(truth, pred),
            "plsr": scores(truth, refs["plsr"])}


def absent_table(per_run: list[dict]) -> str:
    names = per_run[0]["names"]

    def cell(part: str, key: str, j: int, digits: int = 4) -> str:
        v = np.array([r[part][key][j] for r in per_run], dtype=float)
        return "-" if np.isnan(v).all() else f"{np.nanmean(v):.{digits}f} +- {np.nanstd(v):.{digits}f}"

    lines = ["| element | absent test samples (mean) | network: median prediction where absent, % | "
             "PLSR: median prediction where absent, % | network precision | PLSR precision |",
             "|---|---|---|---|---|---|"]
    for j, el in enumerate(names):
        absent = np.mean([r["absent"][j] for r in per_run])
        lines.append(f"| {el} | {absent:.1f} | {cell('net', 'absent_median', j)} | "
                     f"{cell('plsr', 'absent_median', j)} | {cell('net', 'precision', j, 3)} | "
                     f"{cell('plsr', 'precision', j, 3)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", type=Path, required=True, help="report.md of the SACA run")
    ap.add_argument("--mlruns", type=Path, required=True, help="the MLflow artifact root of its runs")
    ap.add_argument("--command", default="OMP_NUM_THREADS=1 saca-lab reproduce --only saca_table1 "
                    "--set saca_model=resnet_dcnn_small --set saca_epochs=40",
                    help="the command that made the report (quoted in BENCHMARKS.md)")
    ap.add_argument("--notes", type=Path, help="markdown after the tables (the analysis)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    section, runs = table1_section(args.report)
    header = "\n".join(line for line in args.report.read_text().splitlines()[:8]
                       if line.startswith(("- Code", "- Wall time", "- Training precision")))
    table = absent_table([rescore(args.mlruns, run) for run in runs])
    print(table)
    if not args.no_write:
        notes = "\n\n" + args.notes.read_text().strip() if args.notes else ""
        body = (f"## SACA protocol: 500 stainless samples, 3 split seeds\n\n{machine()}\n\n"
                f"`{args.command}`; the report's header:\n\n{header}\n\n"
                f"{section.replace('## SACA Table 1', '### SACA Table 1', 1)}\n\n"
                f"### Predictions on samples without the element\n\n"
                f"`python benchmarks/bench_saca_protocol.py --report REPORT --mlruns MLRUNS`: the "
                f"same runs and test samples, the median prediction where the certified content is "
                f"exactly 0 (mean +- std over the split seeds). Presence is called at >= 0.01 %.\n\n"
                f"{table}{notes}\n")
        update_section("saca-protocol", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
