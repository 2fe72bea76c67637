"""Fine-tuning with the frozen features cached (issue 12 §3): wall time and equality of results.

A TrCSL network (1D ``trcsl_1d`` and 2D ``trcsl``) is pre-trained for one epoch on a small slag
draw, then fine-tuned on a carbon-steel draw through ``run_experiment`` (features frozen, head
trained) twice per setting: with ``saca_lab.training.transfer.CACHE_FROZEN_FEATURES`` off (the
features run again at every step) and on (computed once at the start of fit,
``CacheFrozenFeatures``). Times come from a callback: the whole ``fit`` (which includes the
one-off feature pass) and its training loop; each setting runs ``--repeats`` times and the
fastest is kept (the machine is shared). The test metrics of the two settings are compared.
Data: ``carbon-steel`` 20 samples x 10 shots, ``data.shots=1`` (140 training spectra, 5 steps of
32 per epoch, as the full protocol's fine-tune), simulated into ``--data`` once. MLflow goes to a
temporary store.

Usage: ``python benchmarks/bench_finetune_cache.py [--epochs 5] [--repeats 2] [--no-md]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, update_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = [  # label, pre-training yaml, fine-tune yaml, precision
    ("1D `trcsl_1d`", "trcsl_1d_pretrain_slag.yaml", "trcsl_1d_finetune_carbon_steel.yaml", "32-true"),
    ("2D `trcsl`", "trcsl_pretrain_slag.yaml", "trcsl_finetune_carbon_steel.yaml", "32-true"),
    ("2D `trcsl`", "trcsl_pretrain_slag.yaml", "trcsl_finetune_carbon_steel.yaml", "bf16-mixed"),
]


class FitTimer(pl.Callback):
    def on_fit_start(self, trainer, module) -> None:
        self.t0 = time.perf_counter()

    def on_train_start(self, trainer, module) -> None:
        self.t1 = time.perf_counter()

    def on_fit_end(self, trainer, module) -> None:
        self.fit = time.perf_counter() - self.t0
        self.loop = time.perf_counter() - self.t1


def datasets(root: Path) -> tuple[Path, Path]:
    from saca_lab.spectra.simulate import preset_config, simulate_dataset

    out = []
    for name, n in (("slag", 8), ("carbon-steel", 20)):
        path = root / f"{name}-{n}x10"
        if not (path / "manifest.json").is_file():
            simulate_dataset(preset_config(name, n_samples=n, n_shots=10, seed=1), path, n_jobs=1, progress=False)
        out.append(path)
    return out[0], out[1]


def bench(label, pre_yaml, fine_yaml, precision, slag, steel, epochs, repeats) -> dict:
    from saca_lab.config import load_config
    from saca_lab.training import transfer
    from saca_lab.training.run import run_experiment

    common = ["tracking.log_model=false", f"train.precision={precision}"]
    pre = run_experiment(load_config(ROOT / "experiments" / pre_yaml, [
        f"data.dataset={slag}", "train.max_epochs=1", "data.shots=5", *common]), progress=False)
    best: dict[bool, tuple[float, float]] = {}
    metrics = {}
    for _ in range(repeats):
        for cache in (False, True):
            transfer.CACHE_FROZEN_FEATURES = cache
            timer = FitTimer()
            r = run_experiment(load_config(ROOT / "experiments" / fine_yaml, [
                f"data.dataset={steel}", f"transfer.from={pre.checkpoint}", f"train.max_epochs={epochs}",
                "data.shots=1", "data.batch_size=32", *common]), progress=False, callbacks=[timer])
            if cache not in best or timer.fit < best[cache][0]:
                best[cache] = (timer.fit, timer.loop)
            metrics[cache] = r.test
    transfer.CACHE_FROZEN_FEATURES = True
    rel = max(abs(metrics[True][k] - v) / max(abs(v), 1e-12) for k, v in metrics[False].items())
    row = {"label": label, "precision": precision, "plain": best[False], "cached": best[True], "rel": rel}
    print(f"{label} {precision}: fit {best[False][0]:.2f} s -> {best[True][0]:.2f} s, training loop "
          f"{best[False][1]:.2f} s -> {best[True][1]:.2f} s; max relative test-metric difference {rel:.1e}",
          file=sys.stderr)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "saca-finetune-cache"))
    ap.add_argument("--no-md", action="store_true")
    args = ap.parse_args()
    slag, steel = datasets(Path(args.data))
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        rows = [bench(*s, slag, steel, args.epochs, args.repeats) for s in SETTINGS]
    e = args.epochs
    table = ["| model | precision | fit, features each step | fit, cached | training loop per epoch, "
             "each step -> cached | fit speedup | 800 epochs, each step -> cached (estimate) | max rel. "
             "test-metric difference |", "|---|---|---:|---:|---|---:|---|---:|"]
    for r in rows:
        (fp, lp), (fc, lc) = r["plain"], r["cached"]
        once = fc - lc  # the feature pass and the rest of fit's start
        table.append(f"| {r['label']} | {r['precision']} | {fp:.2f} s | {fc:.2f} s | {lp / e * 1e3:.0f} -> "
                     f"{lc / e * 1e3:.0f} ms | {fp / fc:.1f}x | {800 * lp / e / 60:.1f} -> "
                     f"{(once + 800 * lc / e) / 60:.1f} min | {r['rel']:.0e} |")
    text = "\n".join(table)
    print(text)
    if args.no_md:
        return
    update_section("finetune-cache", (
        f"## Fine-tuning on cached frozen features\n\nMeasured with `python benchmarks/bench_finetune_cache.py "
        f"--epochs {e} --repeats {args.repeats}`.\n{machine()}\n\n"
        "`run_experiment` fine-tunes (features frozen, no augmentation) with "
        "`transfer.CACHE_FROZEN_FEATURES` off and on: carbon steel 20 samples x 10 shots, single shots "
        "(140 training spectra, 5 steps of 32 per epoch), after a 1-epoch pre-training on 8 slag "
        f"samples; {e} epochs, fastest of {args.repeats}. *fit* includes the one-off feature pass; the "
        "800-epoch column extrapolates the training loop and adds that pass once. The test metrics "
        "of the two settings are compared (same seed).\n\n" + text + "\n"))


if __name__ == "__main__":
    main()
