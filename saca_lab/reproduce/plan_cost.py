"""What a reproduction costs here: measured training-step times and a per-figure estimate.

The estimate is a model, not a measurement: each training run costs its epochs times its
steps per epoch (items of the training split over the batch size) times the step time measured
on this machine for its model family, plus a fixed cost per run and the generation of datasets
that are not cached yet. It decides what :mod:`saca_lab.reproduce.plan` cuts to fit a budget;
the report prints the wall time that was really spent next to it.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from saca_lab.config import DEFAULTS, load_config, project_dir

#: Timed steps per model (after one warm-up step): at least PROBE_STEPS, more while under
#: PROBE_SECONDS in all (cheap models: a steadier median on a busy machine), at most PROBE_MAX_STEPS.
PROBE_STEPS = 3
PROBE_SECONDS = 2.0
PROBE_MAX_STEPS = 25
#: Validation and test passes, per-epoch callbacks and logging on top of the training steps.
EVAL_FACTOR = 1.2
#: The same for the 2D network, whose data loading (125 x 131 images), autocast casts and
#: validation pass weigh more per step: its 30-epoch Fig. 9 trials took 1.14 times what 1.2
#: predicted in the quick report rerun of 2026-12-01 (c9f81f0, AMX Xeon; 293 s against 256 s).
EVAL_FACTOR_2D = 1.4
#: Per training run: Trainer and data module set-up, MLflow run and artifacts. This and the
#: other overheads below are fitted to the quick report of 2026-12-01 at d768a01 (AMX Xeon, 2
#: idle cores, 846 s for the plan in docs/results/quick/plan.yaml; estimated 886 s with these
#: values): 150-epoch, one-step-per-epoch transfer fits took 1.4 s with the head alone, 2.2 s
#: with every layer, 3.0 s from scratch; GLL's 60 epochs 1.0 s.
RUN_OVERHEAD_S = 0.5
#: Per epoch, whatever the model: Lightning's loops, validation, per-epoch callbacks (metrics
#: reach MLflow in batches, see ``training.lightning_io.RunLogger``).
EPOCH_OVERHEAD_S = 0.006
#: Per epoch of a sweep trial on top of that: the pruning callback reports to the Optuna storage
#: (30-epoch 1D trials took 2.6-4.0 s there, against 1.3 s from step times alone).
SWEEP_EPOCH_OVERHEAD_S = 0.04
#: Per sweep (study): the Optuna storage and study, the parent MLflow run, the sweep file and the
#: best-trial summary (each sweep's parent run outlasted the sum of its trials by 4.4-6.6 s, 8
#: sweeps, in the rerun at c9f81f0; 4.7-5.1 s at d768a01).
SWEEP_STUDY_OVERHEAD_S = 5.0
#: Per draw of the transfer study, besides its four trainings: the PLSR, PCA-PLS, slope/bias and
#: slag + steel PLS fits and every model's test predictions (at d768a01: 193 s for 20 draws, of
#: which 166 s inside the training runs).
TRANSFER_DRAW_OVERHEAD_S = 1.5
#: Fine-tuning only the head: the frozen features are computed once (one forward pass, about a
#: third of a training step) and each later step trains the head alone, ~4 ms per batch whatever
#: the network (BENCHMARKS.md "finetune-cache": 18-20 ms per 5-batch epoch, 1D and 2D).
HEAD_FEATURES_PASS = 1 / 3
HEAD_STEP_S = 0.004
#: Generating a dataset that is not cached yet, per sample (plasma, lines and shots; measured
#: on the development machine: 65 s for the quick slag and carbon-steel sets, 120 samples, with
#: their airPLS pass).
GEN_S_PER_SAMPLE = 0.55
#: One SVR fit inside PSO-SVR (Fig. 14 baselines, <= 100 samples).
PSO_FIT_S = 0.005
#: Spectra airPLS-corrected by the probe (16,375 points each).
AIRPLS_PROBE_SPECTRA = 8
#: Plots, tables and report rows of one figure.
FIGURE_OVERHEAD_S = 2.0
#: The ``trcsl_1d`` probe step of the run the overheads above were fitted to (bf16-mixed, AMX
#: Xeon). A 1D step is bound by per-op overhead (BENCHMARKS.md "models"), so its time on this
#: machine against this one scales those fixed costs: under AVX2 emulation and fp32 it was
#: 0.0116 s, and every short run's fixed cost grew about as much (BENCHMARKS.md "reproduce").
#: Never below 1: a faster probe does not shrink the budget's margin.
REFERENCE_1D_STEP_S = 0.0070
#: The experiment file whose ``data.batch_size`` each family's runs use.
BATCH_FILES = {"trcsl": "trcsl_pretrain_slag", "saca": "saca_stainless", "gll": "compare_gll"}
#: Train fraction of every split here (7:3 or 70/15/15 by sample): the config's default.
TRAIN_FRACTION = DEFAULTS["data"]["split"]["train"]


@functools.cache
def batch_sizes() -> dict[str, int]:
    """``data.batch_size`` of each family's experiment file (:data:`BATCH_FILES`), read once."""
    return {family: int(load_config(project_dir("experiments") / f"{stem}.yaml")["data"]["batch_size"])
            for family, stem in BATCH_FILES.items()}


def probe_models(mode) -> dict[str, tuple[str, int]]:
    """Model families a reproduction of ``mode`` trains: key -> (registered model, batch).

    ``trcsl_1d`` stands for every 1D line-window network (ablations, GLL), ``trcsl`` for the
    2D ones (Fig. 9's 2D trials in every mode), the SACA model for SACA Table 1.
    """
    batch = batch_sizes()
    return {"trcsl_1d": ("trcsl_1d", batch["trcsl"]), "trcsl": ("trcsl", batch["trcsl"]),
            mode.saca_model: (mode.saca_model, batch["saca"])}


def measure_step_times(models: Mapping[str, tuple[str, int]], steps: int = PROBE_STEPS,
                       min_seconds: float = PROBE_SECONDS) -> dict:
    """Seconds per training step (forward, backward, Adam) of each model on random inputs of its
    paper size, with the precision and memory format ``auto`` resolves to here: the median of at
    least ``steps`` steps, more until ``min_seconds`` were spent (at most ``PROBE_MAX_STEPS``).

    Returns
    -------
    dict
        ``{"step_seconds": {key: s}, "precision": {key: "bf16-mixed, channels_last"}}``.
    """
    import torch

    from saca_lab.models import create_model, model_info
    from saca_lab.runtime import BF16, resolve_training

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    out = {"step_seconds": {}, "precision": {}}
    for key, (name, batch) in models.items():
        info = model_info(name)
        precision, channels_last = resolve_training(
            {"precision": "auto", "channels_last": "auto", "accelerator": "auto"}, info.input_kind)
        torch.manual_seed(0)
        model = create_model(name, n_outputs=4).to(device)
        x = torch.randn(batch, 1, *info.default_input, device=device)
        if channels_last and x.dim() == 4:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        times: list[float] = []
        for i in range(max(steps, PROBE_MAX_STEPS) + 1):
            if len(times) >= steps and sum(times) >= min_seconds:
                break
            t0 = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == BF16):
                pred = model(x)
            pred = pred[0] if isinstance(pred, (tuple, list)) else pred
            loss = pred.float().square().mean()  # any output shape; the cost is the same
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if cuda:
                torch.cuda.synchronize()
            if i:  # the first step allocates and picks kernels
                times.append(time.perf_counter() - t0)
        out["step_seconds"][key] = round(statistics.median(times), 4)
        out.setdefault("probe_steps", {})[key] = len(times)
        out["precision"][key] = precision + (", channels_last" if channels_last else "")
    out["airpls_seconds"] = measure_airpls()
    return out


def measure_airpls(n: int = AIRPLS_PROBE_SPECTRA) -> float:
    """Seconds per spectrum of batched airPLS (TrCSL's lambda 1e4, 50 iterations) on smooth
    synthetic spectra of the TrCSL instrument's length: the preprocessing of each dataset."""
    import numpy as np

    from saca_lab.preprocessing.baseline import airpls_batch

    rng = np.random.default_rng(0)
    grid = np.linspace(0.0, 1.0, 16375)
    y = 1 + grid[None, :] ** 2 + np.abs(rng.normal(0, 0.05, (n, grid.size)))
    # the first call loads (or compiles) the numba kernel, once per process: not per spectrum
    airpls_batch(y[:1])
    t0 = time.perf_counter()
    airpls_batch(y)
    return round((time.perf_counter() - t0) / n, 5)


@dataclass(frozen=True)
class Size:
    samples: int
    shots: int
    cached: bool


def dataset_size(spec, data_root: str | None = None) -> Size:
    """Samples and shots of a mode's dataset spec (a preset mapping or a dataset folder), and
    whether it is on disk already (a preset's cache folder, as ``resolve_dataset`` names it)."""
    from saca_lab.data import store
    from saca_lab.datasets.resolve import preset_folder
    from saca_lab.spectra.presets import get_preset

    if isinstance(spec, Mapping):
        preset = get_preset(spec["preset"])
        cached = store.is_dataset(store.data_root(data_root) / preset_folder(spec))
        return Size(int(spec.get("samples") or preset.n_samples),
                    int(spec.get("shots") or preset.n_shots), cached)
    ds = store.open_dataset(spec)
    return Size(int(ds.shape[0]), int(ds.shape[1]), True)


def _per_sample(shots: int, k) -> int:
    """Items per sample for ``data.shots`` k: groups of k shots, each shot, or one average."""
    if k == "each":
        return shots
    if isinstance(k, int) and not isinstance(k, bool):
        return max(1, shots // k)
    return 1


def trial_cost_factor(axis: str, value) -> float:
    """Step time of a 2D ``trcsl`` with one Fig. 9 setting changed, relative to the probed
    default (4 units, kernel size 3, 32 kernels).

    Fitted to the 30-epoch trials of the quick report of 2026-12-01 (AMX Xeon, 2 cores): 8-128
    kernels took 0.48, 0.66, 1, 2.05, 3.95 times the default; kernel size 5-9 1.05-1.33 times;
    1-3 units 2.0, 1.28, 1.14 times (fewer pooling stages leave a larger map for the LSTM).
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 1.0
    if axis.endswith("kernels"):
        return max(v / 32, 0.3 + 0.7 * v / 32)
    if axis.endswith("kernel_size"):
        return 1 + 0.04 * ((v / 3) ** 2 - 1)
    if axis.endswith("n_units"):
        return {1: 2.0, 2: 1.3, 3: 1.1}.get(int(v), 1.0)
    return 1.0


def overhead_scale(steps: Mapping[str, float]) -> float:
    """How much slower than the reference machine this one runs the fixed per-run, per-epoch
    and per-study costs: the ``trcsl_1d`` probe step over :data:`REFERENCE_1D_STEP_S`, at
    least 1 (1 when the 1D family was not timed)."""
    step = steps.get("trcsl_1d")
    return max(1.0, float(step) / REFERENCE_1D_STEP_S) if step else 1.0


class Estimate:
    """Accumulates the seconds and the run count of one figure."""

    def __init__(self, steps: Mapping[str, float]) -> None:
        self.steps, self.seconds, self.runs = steps, FIGURE_OVERHEAD_S, 0
        self.scale = overhead_scale(steps)

    def train(self, family: str, epochs: int, items: float, batch: int | None = None,
              n: int = 1, head_only: bool = False, sweep: bool = False, scale: float = 1.0) -> None:
        """Add ``n`` runs of ``batch`` items a step (default the TrCSL files', :func:`batch_sizes`);
        ``scale`` multiplies the measured step time (a sweep value that makes the network
        costlier than the probed default, see :func:`trial_cost_factor`)."""
        batches = math.ceil(max(items, 1) / (batch or batch_sizes()["trcsl"]))
        factor = EVAL_FACTOR_2D if family == "trcsl" else EVAL_FACTOR
        per_epoch = batches * self.steps[family] * scale * factor
        if head_only:
            run = per_epoch * HEAD_FEATURES_PASS + epochs * batches * HEAD_STEP_S * self.scale
        else:
            run = epochs * per_epoch
        run += epochs * (EPOCH_OVERHEAD_S + (SWEEP_EPOCH_OVERHEAD_S if sweep else 0.0)) * self.scale
        self.seconds += n * (run + RUN_OVERHEAD_S * self.scale)
        self.runs += n


def figure_estimates(mode, only: Sequence[str], fig9_2d: Mapping, measured: Mapping,
                     data_root: str | None = None) -> dict[str, tuple[float, int]]:
    """Estimated (seconds, training runs) of each figure in ``only`` (registry order), from the
    ``measured`` step times (and airPLS time per spectrum) of :func:`measure_step_times`."""
    from saca_lab.compare.plan import parse_sizes

    sizes = {w: dataset_size(getattr(mode, w), data_root) for w in ("slag", "carbon_steel", "stainless")}
    fam = "trcsl_1d" if mode.dims == "1d" else "trcsl"

    def items(which: str, n_samples: float | None = None, k=None) -> float:
        s = sizes[which]
        n = s.samples if n_samples is None else n_samples
        return n * _per_sample(s.shots, mode.shots if k is None else k) * TRAIN_FRACTION

    generated: set[str] = set()

    def generate(est: Estimate, *which: str) -> None:
        """A dataset's generation (when not cached) and preprocessing, where it is first used."""
        for w in which:
            if w not in generated:
                est.seconds += 0 if sizes[w].cached else sizes[w].samples * GEN_S_PER_SAMPLE
                # features are cached after the shots are grouped: airPLS once per item
                k = mode.saca_shots if w == "stainless" else mode.shots
                est.seconds += items(w, k=k) / TRAIN_FRACTION * measured.get("airpls_seconds", 0.0)
            generated.add(w)

    def pair(est: Estimate, n: int, family: str = fam, pre: bool = True) -> None:
        if pre:
            est.train(family, mode.pretrain_epochs, items("slag"), n=n)
        est.train(family, mode.finetune_epochs, items("carbon_steel"), n=n, head_only=True)

    def trials(grid: int) -> int:
        return grid if mode.sweep_trials is None else min(grid, mode.sweep_trials)

    out = {}
    for name in only:
        est = Estimate(measured["step_seconds"])
        if name in ("fig8", "table1", "fig13"):
            generate(est, "slag", "carbon_steel")
        elif name == "fig12":
            generate(est, "slag", "carbon_steel")
            pair(est, 4 * len(mode.seeds))
        elif name == "fig11":  # "with" correction is fig12's TrCSL pair when fig12 runs
            generate(est, "slag", "carbon_steel")
            pair(est, (1 if "fig12" in only else 2) * len(mode.seeds))
        elif name == "fig9":
            generate(est, "slag")
            for axis, values in fig9_2d["values"].items():
                est.seconds += 2 * SWEEP_STUDY_OVERHEAD_S * est.scale  # a 1D and a 2D study per axis
                est.train("trcsl_1d", mode.sweep_epochs, items("slag"), n=trials(fig9_2d["grid"][axis]),
                          sweep=True)
                for value in values[:trials(len(values))]:
                    est.train("trcsl", fig9_2d["epochs"], items("slag"), sweep=True,
                              scale=trial_cost_factor(axis, value))
        elif name in ("figS3", "figS4"):
            generate(est, "slag")
            est.train(fam, mode.sweep_epochs, items("slag"), n=trials(5), sweep=True)
            est.seconds += SWEEP_STUDY_OVERHEAD_S * est.scale
        elif name == "fig14":
            generate(est, "slag", "carbon_steel")
            if "fig12" not in only:
                est.train(fam, mode.pretrain_epochs, items("slag"))
            counts = parse_sizes(mode.compare_sizes)
            # TrCSL is fine-tuned on the transfer set: only the sizes it holds
            for size in [c for c in counts if c <= sizes["carbon_steel"].samples]:
                est.train(fam, mode.finetune_epochs, items("carbon_steel", size), n=mode.compare_repeats,
                          head_only=True)
            pso = mode.pso.get("n_particles", 20) * mode.pso.get("n_iter", 20)
            est.seconds += len(counts) * mode.compare_repeats * pso * PSO_FIT_S
        elif name == "fig15":
            generate(est, "slag", "carbon_steel")
            if "fig12" not in only and "fig14" not in only:
                est.train(fam, mode.pretrain_epochs, items("slag"))
            for size in parse_sizes(mode.deep_sizes):
                est.train(fam, mode.finetune_epochs, items("carbon_steel", size), n=mode.deep_repeats,
                          head_only=True)
                est.train("trcsl_1d", mode.gll_epochs, items("carbon_steel", size), batch_sizes()["gll"],
                          n=mode.deep_repeats)
        elif name == "transfer":
            generate(est, "slag", "carbon_steel")
            if not ("fig12" in only and mode.dims == "1d"):
                est.train("trcsl_1d", mode.pretrain_epochs, items("slag"))
            for size in parse_sizes(mode.transfer_sizes):
                n, train = mode.transfer_repeats, items("carbon_steel", size)
                est.seconds += n * TRANSFER_DRAW_OVERHEAD_S * est.scale
                est.train("trcsl_1d", mode.finetune_epochs, train, n=n, head_only=True)
                est.train("trcsl_1d", mode.finetune_epochs, train, n=n)
                est.train("trcsl_1d", mode.transfer_scratch_epochs, train, n=n)
                est.train("trcsl_1d", mode.gll_epochs, train, batch_sizes()["gll"], n=n)
        elif name == "saca_table1":  # an upper bound: early stopping usually ends it first
            generate(est, "stainless")
            est.train(mode.saca_model, mode.saca_epochs, items("stainless", k=mode.saca_shots),
                      batch_sizes()["saca"], n=len(mode.saca_seeds))
        elif name == "clean_vs_calibrated" and getattr(mode, name, False):  # Fig. 14 + transfer
            from saca_lab.errors import InputError
            from saca_lab.reproduce.clean_vs_calibrated import clean_mode

            try:
                clean = clean_mode(mode)
            except InputError:  # a dataset directory: the figure says so when it runs
                clean = mode
            again = figure_estimates(clean, ["fig14", "transfer"], fig9_2d, measured, data_root)
            # the calibrated side too, where this reproduction does not run it already
            mine = [f for f in ("fig14", "transfer") if f not in only]
            again.update({f"{f}-calibrated": v for f, v in
                          figure_estimates(mode, mine, fig9_2d, measured, data_root).items()})
            est.seconds += sum(s for s, _ in again.values())
            est.runs += sum(r for _, r in again.values())
        elif name == "saca_speed":
            generate(est, "stainless")
            if "saca_table1" not in only:
                est.train(mode.saca_model, mode.saca_epochs, items("stainless", k=mode.saca_shots),
                          batch_sizes()["saca"])
        out[name] = (est.seconds, est.runs)
    return out
