"""Wall time per epoch of TrCSL pre-training (1D and 2D), extrapolated to the paper's 800 epochs.

Loads ``experiments/trcsl_1d_pretrain_slag.yaml`` and ``experiments/trcsl_pretrain_slag.yaml``
with ``saca_lab.config.load_config``, builds their data module with
``saca_lab.training.run.build_datamodule`` (the full ``slag`` preset: 100 samples x 300 shots,
averaged in groups of 30, 7:3 split by sample, batch 32) from ``$SACA_LAB_DATA`` (default
``/tmp/fig8data``, where the preset must already exist), and fits a ``SpectraRegressor`` built as
``run_experiment`` builds it with a plain ``lightning.pytorch.Trainer(max_epochs=3,
logger=False, enable_checkpointing=False)``: fp32, and bf16-mixed (plus channels_last for the
2D model). A callback times every epoch, split into training and the per-epoch validation pass
the YAML implies (``val: 0.0``: no validation loop, so its share is 0). The first
epoch carries the warm-up; the median of the later ones is extrapolated to the YAML's
``max_epochs`` (800) and set beside the paper's 12 s (1D) and 10 min (2D), whose hardware the
TrCSL paper does not state. Data-module setup (feature extraction, cached next to the dataset
after the first run) is timed separately. Everything runs twice, each time in a fresh subprocess: with
glibc's default malloc and with a "big heap" (``MALLOC_MMAP_THRESHOLD_`` raised).

Usage: ``python benchmarks/bench_training_time.py [--epochs 3] [--threads T] [--data DIR] [--no-md]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, update_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIG_HEAP = {"MALLOC_MMAP_THRESHOLD_": str(2**31), "MALLOC_TRIM_THRESHOLD_": str(2**32)}
EXPERIMENTS = {  # yaml, paper's time for the whole training, modes (precision, channels_last)
    "1D `trcsl_1d`": ("trcsl_1d_pretrain_slag.yaml", 12.0, [("32-true", False), ("bf16-mixed", False)]),
    "2D `trcsl`": ("trcsl_pretrain_slag.yaml", 600.0, [("32-true", False), ("bf16-mixed", True)]),
}


class EpochTimer(pl.Callback):
    """Wall time of every training epoch and of the validation pass inside it."""

    def __init__(self) -> None:
        self.epochs: list[float] = []
        self.vals: list[float] = []

    def on_train_epoch_start(self, trainer, module) -> None:
        self.t0, self.val = time.perf_counter(), 0.0

    def on_validation_start(self, trainer, module) -> None:
        self.v0 = time.perf_counter()

    def on_validation_end(self, trainer, module) -> None:
        self.val += time.perf_counter() - self.v0

    def on_train_epoch_end(self, trainer, module) -> None:
        self.epochs.append(time.perf_counter() - self.t0)
        self.vals.append(self.val)


def spawn(args: argparse.Namespace, big_heap: bool) -> list[dict]:
    """Run the measurements in a fresh process, with glibc's default malloc or the big heap."""
    cmd = [sys.executable, __file__, "--worker", "--epochs", str(args.epochs), "--threads", str(args.threads),
           "--data", args.data] + (["--only", args.only] if args.only else [])
    env = {k: v for k, v in os.environ.items() if k not in BIG_HEAP} | (BIG_HEAP if big_heap else {})
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"worker failed:\n{done.stderr[-3000:]}")
    print("\n".join(line for line in done.stderr.splitlines() if ": epochs [" in line), file=sys.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def fmt(s: float) -> str:
    if s < 1:
        return f"{s * 1e3:.0f} ms"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def bench(label: str, yaml: str, paper_s: float, modes, epochs: int) -> list[dict]:
    from saca_lab.config import load_config
    from saca_lab.models import model_info
    from saca_lab.training.module import SpectraRegressor
    from saca_lab.training.run import build_datamodule

    cfg = load_config(ROOT / "experiments" / yaml)
    info = model_info(cfg["model"]["name"])
    t0 = time.perf_counter()
    dm = build_datamodule(cfg, info.input_kind)
    dm.prepare_data()
    dm.setup()
    setup_s = time.perf_counter() - t0
    mean, std = dm.target_stats()
    config = {**(cfg["model"]["overrides"] or {}), "n_outputs": len(dm.target_names)}
    if info.input_kind == "lines_1d":
        config["in_length"] = dm.input_shape[-1]
    t = cfg["train"]
    n_train = len(dm.split.train) * dm.features.shape[1]
    steps = -(-n_train // dm.batch_size)
    rows = []
    for precision, channels_last in modes:
        pl.seed_everything(cfg["seed"], verbose=False)
        module = SpectraRegressor(cfg["model"]["name"], config, dm.target_names, mean.tolist(), std.tolist(),
                                  dm.feature_spec.to_dict(), dm.ds.wavelengths.tolist(), lr=t["lr"],
                                  lr_step=t["lr_step"], lr_gamma=t["lr_gamma"],
                                  weight_decay=t["weight_decay"], channels_last=channels_last)
        timer = EpochTimer()
        trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, precision=precision,
                             accelerator="cpu", devices=1, callbacks=[timer], enable_progress_bar=False,
                             enable_model_summary=False, num_sanity_val_steps=0)
        start = time.perf_counter()
        trainer.fit(module, dm)
        fit_s = time.perf_counter() - start
        later = timer.epochs[1:] or timer.epochs
        epoch_s = statistics.median(later)
        val_s = statistics.median(timer.vals[1:] or timer.vals)
        n = t["max_epochs"]
        rows.append({
            "exp": label, "mode": "fp32" if precision == "32-true" else "bf16" + (" + CL" if channels_last else ""),
            "items": f"{n_train} ({steps} x {dm.batch_size})", "first": timer.epochs[0], "epoch": epoch_s,
            "train": epoch_s - val_s, "val": val_s, "fit": fit_s, "n": n, "total": epoch_s * n,
            "total_train": (epoch_s - val_s) * n, "paper": paper_s, "setup": setup_s,
            "step_ms": 1e3 * (epoch_s - val_s) / steps,
        })
        print(f"{label} {rows[-1]['mode']}: epochs {[round(e, 2) for e in timer.epochs]} s", file=sys.stderr)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3, help="epochs to time (the first is warm-up)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--data", default="/tmp/fig8data", help="SACA_LAB_DATA holding the slag preset")
    ap.add_argument("--only", choices=["1d", "2d"], help="run one of the two experiments")
    ap.add_argument("--no-md", action="store_true", help="do not touch BENCHMARKS.md")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ["SACA_LAB_DATA"] = args.data  # before any dataset is resolved
    if not (Path(args.data) / "slag" / "manifest.json").is_file():
        sys.exit(f"{args.data}/slag is missing: simulate the slag preset there first")
    if args.worker:
        torch.set_num_threads(args.threads)
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
        rows = []
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            for label, (yaml, paper_s, modes) in EXPERIMENTS.items():
                if args.only is None or label.startswith(args.only.upper()):
                    rows += bench(label, yaml, paper_s, modes, args.epochs)
        print(json.dumps(rows))
        return
    d, h = spawn(args, False), spawn(args, True)
    t = ["| experiment | mode | train items (steps x batch) | data setup | epoch 1 (warm-up) | epoch (median of "
         "later) | of which validation | ms / train step | 800 epochs, train + val | 800 epochs, train only "
         "| epoch, big heap | 800 epochs, train + val, big heap | paper |", "|---|---|---|" + "---:|" * 10]
    t += [f"| {r['exp']} | {r['mode']} | {r['items']} | {fmt(r['setup'])} | {fmt(r['first'])} | {fmt(r['epoch'])} "
          f"| {fmt(r['val'])} | {r['step_ms']:.0f} | {fmt(r['total'])} ({r['total'] / r['paper']:.1f}x paper) "
          f"| {fmt(r['total_train'])} ({r['total_train'] / r['paper']:.1f}x) | {fmt(rh['epoch'])} "
          f"| {fmt(rh['total'])} ({rh['total'] / rh['paper']:.1f}x) | {fmt(r['paper'])} |"
          for r, rh in zip(d, h, strict=True)]
    table = "\n".join(t)
    print(table)
    body = (f"## TrCSL training time per epoch\n\nMeasured with `python benchmarks/bench_training_time.py "
            f"--epochs {args.epochs} --threads {args.threads}`.\n{machine()}\n\n"
            "Protocol of `experiments/trcsl_1d_pretrain_slag.yaml` and `experiments/trcsl_pretrain_slag.yaml` "
            "(full `slag` preset, 100 samples x 300 shots averaged in groups of 30 -> 10 spectra per sample, "
            "7:3 split by sample, batch 32, Adam at the YAMLs' lr 0.001 (the schedule does not change the "
            "time per step), 800 epochs), data module from "
            "`build_datamodule`, `SpectraRegressor` fitted by a plain `Trainer(max_epochs="
            f"{args.epochs}, logger=False, enable_checkpointing=False)` (no MLflow, no progress bar). "
            "The YAMLs have no validation split (`val: 0.0`), so no validation loop runs and the "
            "validation share is 0; the table gives both extrapolations (median later epoch x "
            "800). *data setup* is `prepare_data` + `setup` (reading the 1.8 GiB dataset, shot averaging, "
            "airPLS, features; cached next to the dataset after the first run). The TrCSL paper reports "
            "12 s for the 1D and 10 min for the 2D model without naming its hardware, epochs or data "
            "volume per epoch, so the ratio is only indicative. Each setting runs in its own process; *big heap* = "
            "`MALLOC_MMAP_THRESHOLD_=2147483648 MALLOC_TRIM_THRESHOLD_=4294967296` (glibc keeps large activations "
            "on the heap instead of mmap'ing and page-faulting them at every step).\n\n"
            f"{table}\n")
    if not args.no_md:
        update_section("training-time", body)


if __name__ == "__main__":
    main()
