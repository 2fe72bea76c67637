"""What a small training run spends outside its training steps (issue 12 §2, the quick budget).

The quick reproduction trains ~150 short runs: the transfer study alone 80 runs of 150 epochs
with one batch per epoch (7-14 carbon steels), where Lightning's loop, MLflow and checkpoints
cost more than the steps. This benchmark times one such run (``trcsl_1d`` from scratch, the
transfer study's model (c): ``experiments/trcsl_1d_finetune_carbon_steel.yaml`` with
``transfer=null``, 150 epochs, carbon steel 20 samples x 20 shots in groups of 10, 7:3 split
by sample) through ``run_experiment`` in one process, in three settings, each ``--repeats``
times after a warm-up run, median reported:

- *now*: the code as it is (metrics batched by ``RunLogger``, no per-epoch "best" checkpoint
  when there is no validation data);
- *per-epoch metrics*: ``RunLogger.FLUSH_SECONDS = 0``, one MLflow transaction per epoch;
- *+ per-epoch checkpoint*: also Lightning's ``ModelCheckpoint`` writing every epoch.

The last setting is what the code did before these two changes. The test R2 of every setting is
printed: the changes must not move it. MLflow goes to a temporary SQLite store, one torch thread.

Usage: ``python benchmarks/bench_run_overhead.py [--repeats 3] [--no-md]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import load_note, machine, update_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "experiments" / "trcsl_1d_finetune_carbon_steel.yaml"


def overrides(data: Path) -> list[str]:
    return ["transfer=null", "train.max_epochs=150", f"data.dataset={data}", "data.shots=10",
            "data.split={train: 0.7, test: 0.3, val: 0, seed: 3}", "data.targets=[Mn,Cr]",
            "tracking.log_model=false", "tracking.experiment=bench-run-overhead"]


def one_run(data: Path) -> tuple[float, float]:
    from saca_lab.config import load_config
    from saca_lab.training.run import run_experiment

    cfg = load_config(EXPERIMENT, overrides(data))
    start = time.perf_counter()
    result = run_experiment(cfg, progress=False)
    return time.perf_counter() - start, float(result.test_sample["test_sample_r2_Mn"])


def setting(name: str):
    """Patch the code into one of the three settings; returns an undo function."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from saca_lab.training import lightning_io, run

    undo = []
    if name in ("per-epoch metrics", "+ per-epoch checkpoint"):
        old = lightning_io.RunLogger.FLUSH_SECONDS
        lightning_io.RunLogger.FLUSH_SECONDS = 0.0
        undo.append(lambda: setattr(lightning_io.RunLogger, "FLUSH_SECONDS", old))
    if name == "+ per-epoch checkpoint":
        def every_epoch(*args, **kwargs):
            return ModelCheckpoint(*args, **{**kwargs, "every_n_epochs": 1})
        run.ModelCheckpoint = every_epoch
        undo.append(lambda: setattr(run, "ModelCheckpoint", ModelCheckpoint))
    return lambda: [u() for u in undo]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-md", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="bench-run-overhead-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work}/mlflow.db"
    os.chdir(work)
    from saca_lab.spectra.simulate import preset_config, simulate_dataset

    data = work / "carbon-steel-20x20"
    simulate_dataset(preset_config("carbon-steel", n_samples=20, n_shots=20, seed=1), data,
                     n_jobs=1, progress=False)
    load = load_note()
    one_run(data)  # warm-up: imports, kernels, the feature cache
    rows = []
    for name in ("now", "per-epoch metrics", "+ per-epoch checkpoint"):
        undo = setting(name)
        try:
            runs = [one_run(data) for _ in range(args.repeats)]
        finally:
            undo()
        rows.append((name, statistics.median(t for t, _ in runs), runs[0][1]))
        print(f"{name:24s} {rows[-1][1]:6.2f} s  test R2 Mn {rows[-1][2]:.4f}", flush=True)
    base = rows[0][1]
    table = ["| setting | s per run (median) | vs now | test R2 Mn |", "|---|---:|---:|---:|"]
    table += [f"| {n} | {t:.2f} | {t / base:.2f}x | {r:.4f} |" for n, t, r in rows]
    body = "\n".join([
        "## Per-run overhead of a short training run",
        "",
        machine(),
        "",
        (f"`python benchmarks/bench_run_overhead.py --repeats {args.repeats}`: one 150-epoch "
         "`trcsl_1d` run from scratch on 14 carbon steels (one batch per epoch, the transfer "
         "study's model (c)) through `run_experiment`, one torch thread, a temporary SQLite "
         f"store; median of {args.repeats} runs after a warm-up run. {load} "
         "*+ per-epoch checkpoint* is the code before `RunLogger` batched metrics and the "
         "'best' checkpoint was written once without validation data."),
        "",
        *table,
    ])
    print("\n" + body)
    if not args.no_md:
        update_section("run-overhead", body)


if __name__ == "__main__":
    main()
