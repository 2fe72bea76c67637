"""Sweeps: compute saved by pruning, and trials per hour of the shipped sweeps in quick mode.

Quick mode is what ``saca-lab sweep run ... --set`` gives a reduced reproduction: a reduced
``slag`` preset (``{preset: slag, samples: 30, shots: 30}``, shots averaged in groups of 5), a
few epochs, precision and memory format ``auto`` (bf16 with channels_last only where the CPU
runs bf16 natively, BENCHMARKS.md "TrCSL training time"). Every sweep runs in this process through
``saca_lab.sweeps.run_sweep``, one worker with the machine's threads, on a fresh SQLite storage
and MLflow store in a temporary folder; the dataset and its features are built once before any
timing.

1. Pruning: the kernel-count sweep (``sweeps/fig9c_kernel_count.yaml``, TrCSL Fig. 9(c): 8-128
   kernels, 1D and 2D, 10 grid points) is run with its own ``pruner: none`` and again with the
   median and the Hyperband pruner. Training is deterministic, so a trial that is not pruned
   gives the same value in every run: pruning is "free" when the best value is identical.
   Compute = each trial's epochs times its configuration's seconds per epoch (the lowest
   median over the runs, robust to other jobs on shared cores); measured wall time beside it.
2. Trials per hour in quick mode: the 1D + 2D grid of Fig. 9(c), a 2D-only grid (S5; S3, S4
   and S6 train the same model) and the joint TPE search. The Fig. 12 ablation needs four
   pre-trained models first and is left out.

Usage: ``python benchmarks/bench_sweeps.py [--epochs 15] [--tpe-trials 8] [--sweeps fig9c_kernel_count,...] [--no-md]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, update_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRUNERS = {"none": "none", "median": {"name": "median", "n_startup_trials": 3, "n_warmup_steps": 4},
           "hyperband": {"name": "hyperband", "min_resource": 2, "reduction_factor": 3}}
RATE_SWEEPS = ["fig9c_kernel_count", "s5_dropout", "joint_tpe"]


def quick_overrides(epochs: int) -> list[str]:
    return ["data.dataset={preset: slag, samples: 30, shots: 30}", "data.shots=5",
            f"train.max_epochs={epochs}", "train.precision=auto", "train.channels_last=auto"]


def variant(name: str, out: Path, **fields) -> Path:
    """A copy of a shipped sweep file with some fields replaced (paths made absolute)."""
    from saca_lab.sweeps.spec import load_sweep

    shipped = load_sweep(ROOT / "sweeps" / f"{name}.yaml")  # with its extends: chain merged in
    raw = {**shipped.source, "base": str(shipped.base), **fields}
    path = out / f"{name}-{len(list(out.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def warm_up(overrides: list[str]) -> None:
    """Simulate the reduced preset and cache its 1D and 2D features before timing."""
    from saca_lab.config import load_config
    from saca_lab.models import model_info
    from saca_lab.training.run import build_datamodule

    for exp in ("trcsl_1d_pretrain_slag.yaml", "trcsl_pretrain_slag.yaml"):
        cfg = load_config(ROOT / "experiments" / exp, overrides)
        build_datamodule(cfg, model_info(cfg["model"]["name"]).input_kind).setup()


def run(path: Path, tmp: Path, overrides: list[str], n_trials: int | None = None) -> dict:
    from saca_lab.sweeps import run_sweep

    start = time.perf_counter()
    study = run_sweep(path, n_trials=n_trials, storage=f"sqlite:///{tmp}/optuna.db",
                      study_name=path.stem, overrides=overrides, progress=True)
    wall = time.perf_counter() - start
    trials = study.get_trials()
    best = study.best_trial
    return {"trials": len(trials), "pruned": sum(t.state.name == "PRUNED" for t in trials),
            "per_trial": [(tuple(sorted(t.params.items())), t.user_attrs.get("epochs", 0),
                           t.user_attrs.get("epoch_seconds")) for t in trials],
            "failed": sum(t.state.name == "FAIL" for t in trials),
            "epochs": sum(t.user_attrs.get("epochs", 0) for t in trials),
            "train_s": sum(t.user_attrs.get("seconds", 0.0) for t in trials), "wall": wall,
            "best": best.value, "best_params": best.params}


def fmt_params(params: dict) -> str:
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in params.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--tpe-trials", type=int, default=8, help="trials of the joint TPE sweep")
    ap.add_argument("--sweeps", default=",".join(RATE_SWEEPS), help="sweeps for trials per hour")
    ap.add_argument("--skip-pruning", action="store_true")
    ap.add_argument("--no-md", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("SACA_LAB_DATA", str(Path(tempfile.gettempdir()) / "saca-bench-data"))
    overrides = quick_overrides(args.epochs)
    tmp = Path(tempfile.mkdtemp(prefix="bench-sweeps-"))
    os.chdir(tmp)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
    warm_up(overrides)
    load_before = os.getloadavg()[0]

    results: dict[str, dict] = {}
    if not args.skip_pruning:
        for label, pruner in PRUNERS.items():
            results[f"prune:{label}"] = run(variant("fig9c_kernel_count", tmp, pruner=pruner), tmp, overrides)
    rates = {}
    for name in [s for s in args.sweeps.split(",") if s]:
        if name == "fig9c_kernel_count" and "prune:none" in results:
            rates[name] = results["prune:none"]
            continue
        rates[name] = run(variant(name, tmp), tmp, overrides,
                          n_trials=args.tpe_trials if name == "joint_tpe" else None)

    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (other jobs share the cores)"
    lines = [f"Measured with `python benchmarks/bench_sweeps.py --epochs {args.epochs} --tpe-trials "
             f"{args.tpe_trials}`.", machine() + f" {load[0].upper()}{load[1:]}.", "",
             "Quick mode: every trial's config gets `--set " + " --set ".join(overrides) + "` "
             "(30 slag samples x 30 shots, groups of 5 -> 6 spectra per sample, 70/15/15 split by "
             "sample). One worker process, in-process `run_sweep`, fresh SQLite storage; the "
             "reduced dataset and its features are built before timing. *Trial time* is the wall "
             "time inside the trials (data module, fit, test, MLflow logging); *sweep wall* adds "
             "the study's own overhead.", ""]
    if not args.skip_pruning:
        # Seconds per epoch of each configuration: the fastest of its epochs' medians over the
        # three runs, as other jobs on the machine only ever slow an epoch down.
        cost: dict = {}
        for r in (results[f"prune:{label}"] for label in PRUNERS):
            for key, _, sec in r["per_trial"]:
                if sec is not None:
                    cost[key] = min(cost.get(key, sec), sec)
        for r in (results[f"prune:{label}"] for label in PRUNERS):
            r["compute"] = sum(epochs * cost.get(key, 0.0) for key, epochs, _ in r["per_trial"])
        base = results["prune:none"]
        lines += ["### Pruning on the kernel-count sweep (TrCSL Fig. 9(c), 10 grid points)", "",
                  "Training is deterministic, so a trial that is not pruned reaches the same value in "
                  "every run; the goal is >= 40 % compute saved at an equal best value. Pruners: "
                  f"median `{PRUNERS['median']}`, Hyperband `{PRUNERS['hyperband']}`.", "",
                  "*Compute* weighs each trial's epochs by its configuration's time per epoch (the "
                  "lowest median over the three runs: a 2D epoch with 128 kernels costs far more than "
                  "a 1D one with 8); *trial time* is the measured wall time, which other jobs on the "
                  "shared cores inflate unevenly.", "",
                  "| pruner | trials pruned | epochs trained | epochs saved | compute (s) | **compute "
                  "saved** | trial time (s) | time saved | best val_r2_Mn | best trial | same best? |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
        for label in PRUNERS:
            r = results[f"prune:{label}"]
            same = "yes" if r["best"] == base["best"] and r["best_params"] == base["best_params"] else "**no**"
            lines.append(f"| {label} | {r['pruned']} / {r['trials']} | {r['epochs']} | "
                         f"{1 - r['epochs'] / base['epochs']:.0%} | {r['compute']:.0f} | "
                         f"**{1 - r['compute'] / base['compute']:.0%}** | {r['train_s']:.0f} | "
                         f"{1 - r['train_s'] / base['train_s']:.0%} | {r['best']:.4f} | "
                         f"{fmt_params(r['best_params'])} | {same} |")
        lines.append("")
    lines += ["### Trials per hour, quick mode, one worker", "",
              "| sweep | sampler / pruner | trials (pruned) | epochs | sweep wall (s) | trials per hour "
              "| best val_r2_Mn |", "|---|---|---:|---:|---:|---:|---:|"]
    from saca_lab.sweeps import load_sweep

    for name, r in rates.items():
        spec = load_sweep(ROOT / "sweeps" / f"{name}.yaml")
        lines.append(f"| `{name}` | {spec.sampler['name']} / {spec.pruner['name']} | {r['trials']} "
                     f"({r['pruned']}) | {r['epochs']} | {r['wall']:.0f} | {3600 * r['trials'] / r['wall']:.0f} "
                     f"| {r['best']:.4f} |")
    body = "\n".join(lines)
    print(body)
    if not args.no_md:
        update_section("sweeps", "## Sweeps\n\n" + body)


if __name__ == "__main__":
    main()
