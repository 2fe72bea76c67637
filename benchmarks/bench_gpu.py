"""GPU training throughput of 2D ``trcsl`` and ``resnet_dcnn``, against the GPU's bf16 matmul peak.

For each model: a fixed number of training steps (forward, MSE, backward, Adam) on random inputs
of its registry ``default_input`` at the experiment files' batch size (``trcsl`` 32, SACA 16), in
the precision and memory format ``train.precision: auto`` / ``train.channels_last: auto``
resolve to on that GPU (``saca_lab/runtime.py``: bf16-mixed where the GPU runs bf16 natively),
timed with CUDA synchronisation after the warm-up steps. Reported: steps/s, spectra/s, and the
step's FLOPs (``FlopCounterMode``, forward + backward, plus the LSTM's, which it cannot see)
per second as a share of the bf16 peak measured in the same process (best of several
``torch.matmul`` of two 8192 x 8192 bf16 matrices). The same steps then run through a Lightning
``Trainer(max_steps=...)`` over a ``SpectraRegressor`` fed by saca-lab's loaders
(:func:`~saca_lab.datasets.datamodules.loader_placement`: the data kept on the GPU), to show what the
training loop adds. Last, the full protocol (``saca_lab/reproduce/settings.py`` ``FULL``: 800
pre-training and 800 fine-tuning epochs, SACA 200 epochs, ...) estimated from the measured step
times: the main runs one by one, and the whole ``saca-lab reproduce`` through the planner of
``saca_lab/reproduce/plan.py`` (its dataset generation and airPLS run on the CPU).

On a machine without a CUDA GPU it prints "no GPU" and records the section as unmeasured.

Usage: ``python benchmarks/bench_gpu.py [--steps 50] [--warmup 5] [--mm 8192] [--no-md]``
(``--device cpu --steps 2`` dry-runs the measuring code on a CPU without touching BENCHMARKS.md)
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
import warnings
from datetime import date
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, update_section  # noqa: E402
from bench_models import lstm_flops  # noqa: E402

#: model -> batch size (experiments/trcsl_pretrain_slag.yaml: 32, saca_stainless.yaml: 16)
MODELS = {"trcsl": 32, "resnet_dcnn": 16}
TITLE = "## GPU training throughput"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bf16_peak(device: torch.device, n: int, repeat: int = 10) -> float:
    """FLOP/s of the best of ``repeat`` n x n bf16 ``torch.matmul`` calls (after a warm-up)."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    torch.matmul(a, b)
    sync(device)
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def settings(name: str, device: torch.device) -> tuple[str, bool]:
    """(precision, channels_last) that ``auto`` gives a run of ``name`` on ``device``."""
    from saca_lab.models import model_info
    from saca_lab.runtime import resolve_training

    accelerator = "cuda" if device.type == "cuda" else "cpu"
    return resolve_training({"precision": "auto", "channels_last": "auto", "accelerator": accelerator},
                            model_info(name).input_kind)


def raw_steps(name: str, batch: int, device: torch.device, steps: int, warmup: int) -> dict:
    """Seconds per plain-PyTorch training step, and the step's FLOPs."""
    from saca_lab.models import create_model, model_info

    precision, channels_last = settings(name, device)
    bf16 = precision == "bf16-mixed"
    torch.manual_seed(0)
    model = create_model(name).to(device).train()
    x = torch.rand(batch, 1, *model_info(name).default_input, device=device)
    if channels_last and x.dim() == 4:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.rand(batch, model.n_outputs, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        nn.functional.mse_loss(out.float(), y).backward()
        opt.step()

    for _ in range(warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    seconds = (time.perf_counter() - t0) / steps
    with FlopCounterMode(display=False) as counter:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        nn.functional.mse_loss(out.float(), y).backward()
    flops = float(counter.get_total_flops()) + lstm_flops(model, x)
    mode = ("bf16" if bf16 else "fp32") + (" + CL" if channels_last else "")
    return {"model": name, "batch": batch, "mode": mode, "step_s": seconds, "flops": flops}


class StepTimer:
    """Wall time from the end of the warm-up steps to the end of the last step (a Lightning callback)."""

    def __init__(self, warmup: int, device: torch.device) -> None:
        import lightning.pytorch as pl

        timer = self

        class _Callback(pl.Callback):
            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
                if trainer.global_step == warmup:
                    sync(device)
                    timer.start = time.perf_counter()

            def on_train_end(self, trainer, module) -> None:
                sync(device)
                timer.end = time.perf_counter()

        self.callback = _Callback()
        self.start = self.end = math.nan


def lightning_steps(name: str, batch: int, device: torch.device, steps: int, warmup: int) -> float:
    """Seconds per training step of ``SpectraRegressor`` under a Lightning Trainer, with the
    batches drawn by saca-lab's loader (data placed as :func:`loader_placement` decides)."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    from saca_lab.datasets.datamodules import BatchedTensors, collate_batch, loader_placement
    from saca_lab.models import create_model, model_info
    from saca_lab.training.module import SpectraRegressor

    precision, channels_last = settings(name, device)
    info = model_info(name)
    n_out = create_model(name).n_outputs
    torch.manual_seed(0)
    n = batch * 8  # a few batches per epoch, so epoch boundaries are part of the measurement
    tensors = (torch.rand(n, *info.default_input), torch.rand(n, n_out), torch.zeros(n, dtype=torch.long))
    place = loader_placement(device, sum(t.element_size() * t.nelement() for t in tensors))
    if place["on_device"]:
        tensors = tuple(t.to(device) for t in tensors)
    loader = DataLoader(BatchedTensors(*tensors), batch_size=batch, shuffle=True, collate_fn=collate_batch,
                        pin_memory=place["pin_memory"], generator=torch.Generator().manual_seed(0))
    module = SpectraRegressor(name, {}, [f"t{i}" for i in range(n_out)], [0.0] * n_out, [1.0] * n_out,
                              {"input_kind": info.input_kind}, channels_last=channels_last)
    timer = StepTimer(warmup, device)
    trainer = pl.Trainer(max_steps=warmup + steps, accelerator="cuda" if device.type == "cuda" else "cpu",
                         devices=1, precision=precision, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[timer.callback],
                         log_every_n_steps=1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        trainer.fit(module, loader)
    return (timer.end - timer.start) / steps


def fmt_time(s: float) -> str:
    return f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def protocol_estimate(step_s: dict[str, float]) -> tuple[list[str], str]:
    """Rows for the main runs of the full protocol, and the planner's whole-reproduction total."""
    from saca_lab.reproduce.plan_cost import Estimate, batch_sizes, dataset_size
    from saca_lab.reproduce.settings import FULL

    def items(which: str, k) -> int:
        size = dataset_size(getattr(FULL, which))
        per = size.shots if k == "each" else max(1, size.shots // k) if isinstance(k, int) else 1
        return round(size.samples * per * 0.7)

    runs = [("TrCSL 2D pre-training (slag)", "trcsl", FULL.pretrain_epochs, items("slag", FULL.shots),
             batch_sizes()["trcsl"], False),
            ("TrCSL 2D fine-tuning (carbon steel, head only)", "trcsl", FULL.finetune_epochs,
             items("carbon_steel", FULL.shots), batch_sizes()["trcsl"], True),
            ("SACA `resnet_dcnn` (stainless, epoch cap)", "resnet_dcnn", FULL.saca_epochs,
             items("stainless", FULL.saca_shots), batch_sizes()["saca"], False)]
    rows = []
    for label, model, epochs, n, batch, head_only in runs:
        est = Estimate(step_s)
        est.seconds = 0.0
        est.train(model, epochs, n, batch, head_only=head_only)  # the planner's own cost model
        seconds = est.seconds
        rows.append(f"| {label} | {epochs} | {n} ({math.ceil(n / batch)} x {batch}) | {fmt_time(seconds)} |")
    try:
        from saca_lab.reproduce.plan import make_plan
        from saca_lab.reproduce.plan_cost import measure_airpls

        measured = {"step_seconds": dict(step_s), "airpls_seconds": measure_airpls(),
                    "probe_steps": 0, "machine": "bench_gpu.py"}
        total = f"{make_plan('full', measured=measured).total_minutes / 60:.1f} h"
    except Exception as e:  # the planner is optional here: the rows above stand on their own
        total = f"not estimated ({type(e).__name__}: {e})"
    return rows, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50, help="timed training steps per model")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (kernel selection)")
    ap.add_argument("--mm", type=int, default=8192, help="size of the peak-defining bf16 matmul")
    ap.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # cpu: dry run of the code
    ap.add_argument("--no-md", action="store_true", help="do not touch BENCHMARKS.md")
    args = ap.parse_args()
    dry = args.device != "cuda"
    if not dry and not torch.cuda.is_available():
        host = machine().removeprefix("Machine: ").split("; ")[0]
        print("no GPU")
        if not args.no_md:
            update_section("gpu", f"{TITLE}\n\nunmeasured (no GPU on {host}, {date.today()}). "
                                  "Run `python benchmarks/bench_gpu.py` on a machine with a CUDA GPU "
                                  "to fill this section.\n")
        return
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    peak = bf16_peak(device, args.mm)
    print(f"{name}: bf16 matmul peak {peak / 1e12:.1f} TFLOP/s ({args.mm}^2)")
    results, step_s = [], {}
    for model, batch in MODELS.items():
        r = raw_steps(model, batch, device, args.steps, args.warmup)
        r["lightning_s"] = lightning_steps(model, batch, device, args.steps, args.warmup)
        step_s[model] = r["lightning_s"]
        results.append(r)
        print(f"{model}: {1 / r['step_s']:.1f} steps/s, {batch / r['step_s']:.0f} spectra/s, "
              f"{r['flops'] / r['step_s'] / peak:.1%} of the bf16 peak ({r['mode']}); "
              f"Lightning {1 / r['lightning_s']:.1f} steps/s")
    # the 1D line-window family of the planner, timed the same way (tiny on any GPU)
    step_s["trcsl_1d"] = lightning_steps("trcsl_1d", 32, device, args.steps, args.warmup)
    rows, total = protocol_estimate(step_s)
    table = ["| model | batch | mode | GFLOP/step | steps/s | spectra/s | % of bf16 matmul peak "
             "| steps/s, Lightning | spectra/s, Lightning |", "|---|---:|---|" + "---:|" * 6]
    table += [f"| `{r['model']}` | {r['batch']} | {r['mode']} | {r['flops'] / 1e9:.2f} | {1 / r['step_s']:.1f} "
              f"| {r['batch'] / r['step_s']:,.0f} | {r['flops'] / r['step_s'] / peak:.1%} "
              f"| {1 / r['lightning_s']:.1f} | {r['batch'] / r['lightning_s']:,.0f} |" for r in results]
    est = ["| run | epochs | training items (steps x batch) | estimated time |", "|---|---:|---|---:|", *rows]
    text = "\n".join(table) + "\n\n" + "\n".join(est) + f"\n\nWhole `saca-lab reproduce` (full): {total}"
    print(text)
    if dry or args.no_md:
        return
    body = (f"{TITLE}\n\nMeasured with `python benchmarks/bench_gpu.py --steps {args.steps} --warmup "
            f"{args.warmup} --mm {args.mm}` on {name}.\n{machine()}\n\n"
            f"Peak: best of 10 `torch.matmul` of two {args.mm} x {args.mm} bf16 matrices, "
            f"{peak / 1e12:.1f} TFLOP/s. One step = forward + MSE + backward + Adam on random inputs "
            "of the registry's `default_input`, in what `auto` precision / memory format resolve to on "
            "this GPU; GFLOP from `FlopCounterMode` (+ LSTM analytically). *Lightning*: the same "
            "model in `SpectraRegressor` under `Trainer(max_steps=...)`, batches from saca-lab's "
            "loader (data kept on the GPU). Estimates: epochs x steps per epoch x the Lightning step "
            "time x 1.2 (validation, logging; `reproduce/plan_cost.py`), head-only fine-tuning x 0.6; "
            "the whole reproduction from the planner (`saca-lab reproduce --plan`'s model) with these "
            "step times; dataset generation and airPLS there run on the CPU.\n\n"
            f"{text}\n")
    update_section("gpu", body)


if __name__ == "__main__":
    main()
