"""SACA variants on a small stainless set: test R2 / RMSE per element beside PLSR on the same split.

Trains ``resnet_dcnn_small``-sized variants of SACA's network (issue 10 §2/§6) through
``run_experiment`` (``experiments/saca_stainless.yaml`` with overrides), scores each on the
test samples of its split (shots averaged per sample, as SACA Table 1) next to the constant
predictor and PLSR (``saca_lab.reproduce.saca.references``) on the same samples, and times a
forward pass. Also scores every run on test spectra shifted by +-``--shift-nm`` (the
augmentation check of §1). Results are appended to a JSON file, one line per run, so an
interrupted benchmark keeps what it measured; ``--report`` writes the "SACA" section of
BENCHMARKS.md from that file.

Usage (private data and MLflow store)::

    SACA_LAB_DATA=/tmp/x/data MLFLOW_TRACKING_URI=sqlite:////tmp/x/mlflow.db \\
        python benchmarks/bench_saca.py --variants r50,shallow --results /tmp/x/saca.jsonl
    python benchmarks/bench_saca.py --results /tmp/x/saca.jsonl --report
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, update_section  # noqa: E402

#: Variants of §2: model overrides and config overrides on top of the experiment file. The
#: default network (``flat``) is the stem (k7, stride 4) + 3-4-6-3 bottleneck stages with three
#: max-pools, a flattened head (125 segments) and per-pixel input standardisation.
_GAP = {"pooling": "gap"}
_FLAT = {"pooling": "bins", "head_bins": 125}
VARIANTS: dict[str, dict] = {
    "gap": {"note": "SACA as written: 3-4-6-3 bottleneck, 3 max-pools, GAP, per-pixel scaling",
            "model": _GAP, "set": []},
    "shallow": {"note": "the old design: one basic block per stage, 3 max-pools, GAP",
                "model": {**_GAP, "blocks": [1, 1, 1, 1], "block": "basic"}, "set": []},
    "flat": {"note": "default: 3-4-6-3 bottleneck, 3 max-pools, flattened head (125 segments)",
             "model": _FLAT, "set": []},
    "flat_global": {"note": "as `flat`, global input scaling (no per-pixel standardisation)",
                    "model": _FLAT, "set": ["data.preprocessing.standardize=false"]},
    "flat_strided": {"note": "as `flat`, strided convolutions instead of max-pools",
                     "model": {**_FLAT, "downsample": "stride"}, "set": []},
    "flat_rawloss": {"note": "as `flat`, plain mass-% MSE and a uniform initial head (the old loss)",
                     "model": _FLAT, "set": ["train.standardize_targets=false"]},
    "flat_noaug": {"note": "as `flat`, no augmentation", "model": _FLAT, "set": ["data.augment=null"]},
}

TARGETS = ["Fe", "Cr", "Ni", "Mo", "La", "Ce", "Nd", "Pr", "Sm", "Eu"]


def cpu_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "flags unknown"
    wanted = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return ", ".join(f for f in wanted if f in flags) or "no AVX-512/AMX"


def _ms_per_spectrum(module, length: int, batch: int = 64) -> float:
    import torch

    x = torch.rand(batch, length)
    module.eval()
    with torch.no_grad():
        module(x)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            module(x)
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times) / batch


def run_one(variant: str, seed: int, args) -> dict:
    import mlflow
    import torch

    from saca_lab import tracking
    from saca_lab.config import load_config
    from saca_lab.datasets.augment import shift_spectra
    from saca_lab.datasets.datamodules import resolve_dataset
    from saca_lab.datasets.features import FeatureSpec
    from saca_lab.datasets.splits import make_split
    from saca_lab.reproduce.saca import predict_samples, references, scores, test_items
    from saca_lab.training.predictor import Predictor
    from saca_lab.training.run import run_experiment

    v = VARIANTS[variant]
    spec = {"preset": "stainless", "samples": args.samples, "shots": args.shots}
    overrides = [f"data.dataset={json.dumps(spec)}", f"model.name={args.model}",
                 f"model.overrides={json.dumps({'head_type': 'composition', **v['model']})}",
                 f"train.max_epochs={args.epochs}", f"data.shots={args.group}",
                 f"data.split.seed={seed}", f"data.batch_size={args.batch_size}", "tracking.log_model=false",
                 "tracking.experiment=bench-saca", *v["set"]]
    cfg = load_config(Path(__file__).resolve().parents[1] / "experiments" / "saca_stainless.yaml", overrides)
    torch.set_num_threads(args.threads)
    if args.rescore:  # score a finished run of this variant again (its logged checkpoint)
        from saca_lab.tracking import resolve_checkpoint

        run_id = args.rescore
        run = tracking.client().get_run(run_id)
        train_s = (run.info.end_time - run.info.start_time) / 1000
        checkpoint = resolve_checkpoint(run_id)
        # a checkpoint records the overrides, not the defaults: pin the variant's model options
        # so a run trained before a default changed rebuilds as it was trained
        from saca_lab.training.checkpoint import load_checkpoint

        ckpt = load_checkpoint(checkpoint)  # the one safe loader, even for our own runs
        ckpt["hyper_parameters"]["model_config"].update(v["model"])
        checkpoint = str(Path(checkpoint).with_name("pinned.ckpt"))
        torch.save(ckpt, checkpoint)
    else:
        t0 = time.perf_counter()
        result = run_experiment(cfg, progress=False)
        train_s = time.perf_counter() - t0
        run_id, checkpoint = result.run_id, result.checkpoint
    history = tracking.client().get_metric_history(run_id, "val_loss")
    best = min(history, key=lambda m: m.value) if history else None
    predictor = Predictor(checkpoint)
    ds = resolve_dataset(spec)
    split = make_split(ds.shape[0], cfg["data"]["split"])
    test = split.test
    items = test_items(ds, test, cfg["data"]["shots"])  # reduced as in training
    truth = ds.target_matrix(predictor.target_names)[test]

    def predict(x: np.ndarray) -> np.ndarray:
        return predict_samples(lambda flat: predictor.predict(ds.wavelengths, flat), x)

    net = scores(truth, predict(items))
    step = float(np.median(np.diff(ds.wavelengths)))
    shifted_r2 = []
    for sign in (1, -1):  # every test spectrum shifted by +shift, then by -shift
        flat = torch.from_numpy(items.reshape(-1, ds.shape[2]))
        moved = shift_spectra(flat, torch.full((len(flat),), sign * args.shift_nm / step)).numpy()
        shifted_r2.append(scores(truth, predict(moved.reshape(items.shape)))["r2"])
    refs = references(ds, predictor.target_names, split,
                      FeatureSpec.from_dict(predictor.module.hparams.feature_spec), cfg["data"]["shots"])
    mlflow.end_run()
    return {
        "variant": variant, "seed": seed, "run_id": run_id, "note": v["note"], "targets": predictor.target_names,
        "params": sum(p.numel() for p in predictor.module.model.parameters()),
        "ms_per_spectrum": _ms_per_spectrum(predictor.module, ds.shape[2]),
        "train_s": train_s, "epochs_run": len({m.step for m in history}),
        "best_val_loss": best.value if best else None,
        "best_epoch": (sorted({m.step for m in history}).index(best.step) + 1) if best else None,
        "net": {k: v.tolist() for k, v in net.items()},
        "net_shifted_r2": np.mean(shifted_r2, axis=0).tolist(),
        "constant": {k: v.tolist() for k, v in scores(truth, refs["constant"]).items()},
        "plsr": {k: v.tolist() for k, v in scores(truth, refs["plsr"]).items()},
        "setup": {"samples": args.samples, "shots": args.shots, "group": args.group,
                  "epochs": args.epochs, "model": args.model, "batch_size": args.batch_size, "shift_nm": args.shift_nm,
                  "threads": args.threads, "n_test": len(test)},
    }


def _f(x, d=2) -> str:
    return "nan" if x is None or x != x else f"{x:.{d}f}"


def report(rows: list[dict], extra: str) -> str:
    """Markdown of the variant table and per-element tables (mean +- std over seeds)."""
    by_variant: dict[str, list[dict]] = {}
    for r in rows:
        by_variant.setdefault(r["variant"], []).append(r)
    names = rows[0]["targets"]
    s = rows[0]["setup"]
    out = [f"{machine()} CPU flags: {cpu_flags()}. {s['threads']} torch threads; the 2 cores were "
           "shared with other jobs (load average ~10), so times are upper bounds.",
           "",
           f"Setup: `stainless` preset, {s['samples']} samples x {s['shots']} shots, shots averaged in "
           f"groups of {s['group']}, 70/15/15 split by sample ({s['n_test']} test samples), "
           f"`{s['model']}` width, {s['epochs']} epochs max (early stopping on validation loss, "
           f"patience 10), Adam 1e-3, batch {s.get('batch_size', 64)}. Scores per test sample (shots averaged). PLSR: one "
           "`PLSRCV` per element on the same training samples and min-max spectra.",
           "",
           "| variant | seeds | params | ms / spectrum | train s | best epoch | best val loss | "
           "mean R2 (Fe,Cr,Ni,Mo) | mean R2 REE | R2 +-shift, Fe-Mo | REE beating constant RMSE |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, rs in by_variant.items():
        r2 = np.array([r["net"]["r2"] for r in rs])
        sh = np.array([r["net_shifted_r2"] for r in rs])
        beats = np.mean([np.sum(np.array(r["net"]["rmse"][4:]) < np.array(r["constant"]["rmse"][4:]))
                         for r in rs])
        note = VARIANTS.get(name, {}).get("note", rs[0]["note"])
        out.append(f"| `{name}`: {note} | {len(rs)} | {rs[0]['params']:,} | "
                   f"{_f(np.mean([r['ms_per_spectrum'] for r in rs]))} | "
                   f"{_f(np.mean([r['train_s'] for r in rs]), 0)} | "
                   f"{'/'.join(str(r['best_epoch']) for r in rs)} | "
                   f"{_f(np.mean([r['best_val_loss'] for r in rs]), 3)} | "
                   f"{_f(np.nanmean(r2[:, :4]))} | {_f(np.nanmean(r2[:, 4:]))} | "
                   f"{_f(np.nanmean(sh[:, :4]))} | {_f(beats, 1)} / 6 |")
    for name, rs in by_variant.items():
        out += ["", f"`{name}` per element ({len(rs)} seed(s): {', '.join(str(r['seed']) for r in rs)}; "
                "mean +- std):", "",
                "| element | net R2 | PLSR R2 | net RMSE % | PLSR RMSE % | constant RMSE % | "
                "net P / R | PLSR P / R | constant P / R |", "|---|---|---|---|---|---|---|---|---|"]

        def ms(key, part, j, d=2, rs=rs):
            vals = np.array([r[part][key][j] for r in rs], float)
            return _f(np.nanmean(vals), d) + (f" +- {_f(np.nanstd(vals), d)}" if len(rs) > 1 else "")

        for j, el in enumerate(names):
            out.append(f"| {el} | {ms('r2', 'net', j)} | {ms('r2', 'plsr', j)} | {ms('rmse', 'net', j, 3)} | "
                       f"{ms('rmse', 'plsr', j, 3)} | {ms('rmse', 'constant', j, 3)} | "
                       f"{ms('precision', 'net', j)} / {ms('recall', 'net', j)} | "
                       f"{ms('precision', 'plsr', j)} / {ms('recall', 'plsr', j)} | "
                       f"{ms('precision', 'constant', j)} / {ms('recall', 'constant', j)} |")
    return "\n".join(out + (["", extra] if extra else []))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {list(VARIANTS)}")
    ap.add_argument("--seeds", default="0", help="split seeds, comma list")
    ap.add_argument("--samples", type=int, default=150)
    ap.add_argument("--shots", type=int, default=10)
    ap.add_argument("--group", type=int, default=5, help="data.shots: average each k shots")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--model", default="resnet_dcnn_small")
    ap.add_argument("--batch-size", type=int, default=16,
                    help="small batches: more updates per epoch on a ~100-sample training split")
    ap.add_argument("--shift-nm", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--results", default="saca_bench.jsonl", help="JSON lines, appended per run")
    ap.add_argument("--rescore", metavar="RUN_ID",
                    help="score this finished run (one variant, one seed) instead of training")
    ap.add_argument("--report", action="store_true", help="write BENCHMARKS.md 'SACA' from --results")
    ap.add_argument("--notes", default="", help="markdown file appended to the section")
    args = ap.parse_args()
    results = Path(args.results)
    if args.report:
        rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
        extra = Path(args.notes).read_text() if args.notes else ""
        update_section("saca", report(rows, extra))
        print(report(rows, extra))
        return
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        ap.error(f"unknown variant(s) {sorted(unknown)}; choose from {list(VARIANTS)}")
    for seed in (int(s) for s in args.seeds.split(",")):
        for variant in args.variants.split(","):
            row = run_one(variant, seed, args)
            with results.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{variant} seed {seed}: R2 {np.round(row['net']['r2'], 2).tolist()} "
                  f"PLSR {np.round(row['plsr']['r2'], 2).tolist()} train {row['train_s']:.0f} s",
                  flush=True)


if __name__ == "__main__":
    main()
