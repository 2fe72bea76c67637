"""Training-step throughput of every registered model, as a fraction of the matmul peak.

One training step (forward, MSE, backward, Adam) of each model in ``list_models()`` on random inputs of its
``default_input`` (batch 128 for ``lines_1d`` models, else 32), best timed step after warm-up, in fp32 and
under CPU bf16 autocast (+ ``channels_last`` for 2D models). FLOPs of forward + backward from ``FlopCounterMode``,
plus the LSTM's, which it cannot see in oneDNN's ``mkldnn_rnn_layer`` (``2 * 4H * (I + H)`` per time step and
sample, backward 2x forward). Peaks, measured in the same process (best of 7, before and after the model): a
2048^2 ``torch.mm`` in fp32 (MKL) and bf16 (oneDNN), and the fp32 GEMM through oneDNN, since MKL runs AVX2
code on AMD CPUs. Each model and mode runs in a fresh subprocess, once with glibc's default malloc and once
with a raised ``MALLOC_MMAP_THRESHOLD_`` ("big heap": large activations are reused instead of mmap'ed,
page-faulted and unmapped every step); the second run is also profiled (``torch.profiler``) to split forward +
backward time by op kind. Goal (issue): >= 50 % of the matmul peak per model.

Usage: ``python benchmarks/bench_models.py [--models a,b] [--steps N] [--threads T] [--no-md]``
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import time
import timeit
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, update_section  # noqa: E402

from saca_lab.models import create_model, list_models, model_info  # noqa: E402

KINDS = {"conv": ("conv",), "matmul": ("aten::mm", "aten::addmm", "aten::bmm"), "lstm": ("rnn", "lstm"),
         "pool": ("pool",), "norm": ("batch_norm",), "relu": ("threshold", "relu", "clamp_min"),
         "grad-accum": ("aten::add_",), "fill": ("fill_", "zero_"), "cast": ("aten::to", "_to_copy", "copy_")}
BIG_HEAP = {"MALLOC_MMAP_THRESHOLD_": str(2**31), "MALLOC_TRIM_THRESHOLD_": str(2**32)}


def peaks(n: int) -> dict[str, float]:
    """FLOP/s of an n x n GEMM (best of 7): torch.mm fp32 and bf16, and fp32 through oneDNN."""
    a = torch.randn(n, n)
    b16, am = a.to(torch.bfloat16), a.to_mkldnn()
    fns = {"fp32": lambda: torch.mm(a, a), "bf16": lambda: torch.mm(b16, b16),
           "fp32_onednn": lambda: torch._C._nn.mkldnn_linear(am, am)}
    return {k: 2 * n**3 / min(timeit.repeat(fn, number=1, repeat=8)[1:]) for k, fn in fns.items()}


def lstm_flops(model: nn.Module, x: torch.Tensor) -> float:
    """Forward + backward FLOPs of every nn.LSTM (FlopCounterMode misses oneDNN's kernel)."""
    shapes: list = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: shapes.append((mod, inp[0].shape)))
             for m in model.modules() if isinstance(m, nn.LSTM)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return 3 * sum(2 * b * t * 4 * m.hidden_size * ((i if k == 0 else m.hidden_size) + m.hidden_size)
                   for m, (b, t, i) in shapes for k in range(m.num_layers))


class Bench:
    """One model in one mode: model, Adam, inputs, and a step split into phases."""

    def __init__(self, name: str, batch: int, bf16: bool) -> None:
        info = model_info(name)
        self.two_d = info.input_kind == "image_2d"
        self.model = create_model(name).train()
        x = torch.rand(batch, 1, *info.default_input)
        if bf16 and self.two_d:
            self.model = self.model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        # models that predict a std (GLL) output a mean and a log-variance per target
        width = self.model.n_outputs * (2 if getattr(self.model, "predicts_std", False) else 1)
        self.x, self.y, self.bf16 = x, torch.rand(batch, width), bf16
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)

    def loss(self) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out = self.model(self.x)
        return nn.functional.mse_loss(out.float(), self.y)

    def step(self) -> tuple[float, float, float]:
        t0 = time.perf_counter()
        loss = self.loss()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        self.opt.step()
        return t1 - t0, t2 - t1, time.perf_counter() - t2

    def flops(self) -> tuple[float, float]:
        """(total, conv + matmul) FLOPs of forward + backward; the total includes the LSTM."""
        with FlopCounterMode(display=False) as counter:
            self.loss().backward()
        gemm = float(counter.get_total_flops())
        return gemm + lstm_flops(self.model, self.x), gemm

    def profile(self, steps: int = 3) -> dict[str, float]:
        """Self CPU time (s) of forward + backward per step, by op kind."""
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                self.loss().backward()
        split: dict[str, float] = defaultdict(float)
        for ev in prof.key_averages():
            kind = next((k for k, pats in KINDS.items() if any(p in ev.key.lower() for p in pats)), "other")
            split[kind] += ev.self_cpu_time_total / 1e6 / steps
        return split


def worker(a: argparse.Namespace) -> dict:
    """Measure one model in one mode (run in its own process)."""
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    pk = peaks(a.mm)
    b = Bench(a.worker, a.batch, a.bf16)
    for _ in range(a.warmup):
        b.step()
    phases, start = [], time.perf_counter()
    while len(phases) < a.steps and not (len(phases) >= 3 and time.perf_counter() - start > a.budget):
        phases.append(b.step())
    step = min(sum(p) for p in phases)  # best step, like the best-of-7 peaks: the machine is shared
    fwd, bwd, opt = (min(p[i] for p in phases) for i in range(3))
    flops, gemm_flops = b.flops()
    split = b.profile() if a.profile else {}
    pk = {k: max(v, peaks(a.mm)[k]) for k, v in pk.items()}
    mm, best = (pk["bf16"], pk["bf16"]) if a.bf16 else (pk["fp32"], max(pk["fp32"], pk["fp32_onednn"]))
    total = sum(split.values()) or 1.0
    # kernel time = profiled share x timed fwd + bwd (robust to the machine's speed drifting)
    gemm_t = (split.get("conv", 0.0) + split.get("matmul", 0.0)) / total * (fwd + bwd)
    shares = sorted(((v / total, k) for k, v in split.items()), reverse=True)
    return {"ms": step * 1e3, "sps": a.batch / step, "gflop": flops / 1e9, "gflops": flops / step / 1e9,
            "frac": flops / step / mm, "frac_best": flops / step / best, "peaks": pk,
            "phases": "/".join(f"{t / (fwd + bwd + opt):.0%}" for t in (fwd, bwd, opt)),
            "gemm_eff": gemm_flops / gemm_t / best if gemm_t else float("nan"),
            "gemm_share": sum(s for s, k in shares if k in ("conv", "matmul", "lstm")),
            "split": ", ".join(f"{k} {s:.0%}" for s, k in shares[:4] if s >= 0.03)}


def spawn(name: str, bf16: bool, batch: int, a: argparse.Namespace, big_heap: bool) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--batch", str(batch), "--steps", str(a.steps),
           "--warmup", str(a.warmup), "--budget", str(a.budget), "--threads", str(a.threads), "--mm", str(a.mm)]
    cmd += ["--bf16"] * bf16 + ["--profile"] * big_heap
    env = {k: v for k, v in os.environ.items() if k not in BIG_HEAP} | (BIG_HEAP if big_heap else {})
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


WHY = {
    "resnet": "Wide 1D convs (thousands of positions x up to 1024 channels) are GEMM-shaped; the rest is batch "
              "norm, ReLU, residual adds and max-pool, all memory bound. At 1/8 width (8-128 channels) the "
              "convs are too narrow to amortise their loads, so those passes weigh more.",
    "2d": "The first conv has one input channel (9 MACs per output: memory bound) and the 32 -> 32 3x3 convs "
          "reuse each loaded value only 288 times, so oneDNN runs them well below its GEMM peak; avg-pool "
          "(forward and backward), ReLU and, with SE, the re-weighting and its gradient accumulation (`add_`) "
          "sweep 32-channel maps of up to 125 x 131 with hardly any arithmetic. NCHW fp32 `avg_pool2d` is "
          "particularly slow; channels_last bf16 halves the bytes but leaves the convs too small for the peak.",
    "1d": "A step is only 0.3-0.5 GFLOP at batch 128 (143 points, 32 channels), so per-op costs dominate: "
          "`AvgPool1d` runs through the generic `avg_pool2d` kernel (~0.7 ms a call); an LSTM (trcsl_1d, "
          "trcnn_lstm_1d) steps sequentially over 17 positions with 32 hidden units (128 x 64 x 128 GEMMs, fp32 "
          "by design); Adam's per-tensor loop is ~10 % of the step. bf16 only adds casts.",
}

NOTES = f"""One step = forward + MSE + backward + Adam on random inputs of the registry's `default_input`;
GFLOP from `FlopCounterMode` (forward + backward, LSTM added analytically). *% of mm peak*: against the same
process's `torch.mm` peak of the step's dtype (the issue's yardstick). *% of best GEMM peak*: against the
higher of that and oneDNN's fp32 GEMM; MKL's fp32 `torch.mm` runs AVX2 code on this AMD CPU, so fp32
fractions of the `torch.mm` peak overstate how well the hardware is used. *bf16*: CPU autocast
(+ `channels_last` for 2D; the LSTM stays fp32 by design). *big heap*: the same run with
`MALLOC_MMAP_THRESHOLD_={BIG_HEAP['MALLOC_MMAP_THRESHOLD_']}` `MALLOC_TRIM_THRESHOLD_={BIG_HEAP['MALLOC_TRIM_THRESHOLD_']}`.
*fwd/bwd/Adam*: share of the step. Last two columns, big heap: `torch.profiler` self CPU time of forward +
backward by op kind (3 steps), and conv + matmul FLOPs over (their profiled share x timed forward + backward).
Each row uses its own process's peaks. Goal: >= 50 % of the matmul peak."""

HEADER = ("| model | input | batch | mode | GFLOP/step | ms/step | samples/s | % of mm peak | ms/step, big heap | "
          "samples/s, big heap | % of mm peak, big heap | % of best GEMM peak, big heap | fwd/bwd/Adam | conv+mm "
          "kernels, % of best peak | fwd+bwd time by op kind |\n|---|---|---:|---|" + "---:|" * 8 + "---|---:|---|")


def row(r: dict) -> str:
    d, h = r["default"], r["big"]
    return (f"| {r['model']} | {r['input']} | {r['batch']} | {r['mode']} | {d['gflop']:.3g} | {d['ms']:.1f} "
            f"| {d['sps']:,.0f} | {d['frac']:.0%} | {h['ms']:.1f} | {h['sps']:,.0f} | {h['frac']:.0%} "
            f"| {h['frac_best']:.0%} | {h['phases']} | {h['gemm_eff']:.0%} | {h['split']} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="*", help="comma-separated names or wildcards (default: all)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per model and mode (best)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--budget", type=float, default=30.0, help="stop timing after this many s (>= 3 steps)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--batch", type=int, help="override every batch size (debugging)")
    ap.add_argument("--mm", type=int, default=2048, help="size of the peak-defining GEMM")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # internal: measure one model in this process
    for flag in ("--no-md", "--bf16", "--profile"):
        ap.add_argument(flag, action="store_true", help=None if flag == "--no-md" else argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a)))
        return
    names = sorted({n for p in a.models.split(",") for n in fnmatch.filter(list_models(), p.strip())})
    if not names:
        sys.exit(f"no model matches {a.models!r}; registered: {', '.join(list_models())}")
    results = []
    for name in names:
        info = model_info(name)
        batch = a.batch or (128 if info.input_kind == "lines_1d" else 32)
        for bf16 in (False, True):
            r = {"model": name, "input": "x".join(map(str, info.default_input)), "batch": batch,
                 "mode": ("bf16" + (" + CL" if info.input_kind == "image_2d" else "")) if bf16 else "fp32",
                 "default": spawn(name, bf16, batch, a, False), "big": spawn(name, bf16, batch, a, True)}
            results.append(r)
            print(row(r), flush=True)
    pk = {k: max(r[s]["peaks"][k] for r in results for s in ("default", "big")) for k in results[0]["big"]["peaks"]}
    peak_txt = (f"{a.mm} x {a.mm} GEMM, best of 7 before and after each model, best over the run: `torch.mm` "
                f"fp32 (MKL) {pk['fp32'] / 1e9:.0f} GFLOP/s, fp32 through oneDNN {pk['fp32_onednn'] / 1e9:.0f} "
                f"GFLOP/s, `torch.mm` bf16 (oneDNN) {pk['bf16'] / 1e9:.0f} GFLOP/s ({a.threads} threads)")
    lines = []
    for n in names:
        rs = [r for r in results if r["model"] == n]
        mm, best = (max(rs, key=lambda r: r["big"][k]) for k in ("frac", "frac_best"))
        h = best["big"]
        verdict = ("meets the goal" if h["frac_best"] >= 0.5 else "misses the goal" if mm["big"]["frac"] < 0.5
                   else "meets the goal only against MKL's fp32 `torch.mm`")
        lines.append(f"- `{n}` {verdict}: best {mm['big']['frac']:.0%} of the `torch.mm` peak ({mm['mode']}), "
                     f"{h['frac_best']:.0%} of the best GEMM peak ({best['mode']}; big heap). Conv/matmul/LSTM take "
                     f"{h['gemm_share']:.0%} of forward + backward, conv + matmul kernels alone run at "
                     f"{h['gemm_eff']:.0%} of the best peak; largest op kinds: {h['split']}. "
                     + WHY["resnet" if n.startswith("resnet") else "1d" if n.endswith("_1d") else "2d"])
    print(f"\npeaks: {peak_txt}\n\n" + "\n".join(lines))
    body = (f"## Model training-step throughput\n\nMeasured with `python benchmarks/bench_models.py --steps "
            f"{a.steps} --threads {a.threads}` (best of the timed steps after {a.warmup} warm-up steps; each model and mode in a "
            f"fresh process).\n{machine()}\n\nPeaks: {peak_txt}.\n\n{NOTES}\n\n{HEADER}\n"
            + "\n".join(row(r) for r in results) + "\n\n### Per model\n\n" + "\n".join(lines) + "\n")
    if not a.no_md:
        update_section("models", body)


if __name__ == "__main__":
    main()
