"""``torch.compile`` (TorchInductor on CPU) for the TrCSL training step, eager against compiled (issue 12 §3).

What: one training step (forward, MSE, backward, Adam) of the 2D ``trcsl`` (input 32 x 1 x 125 x 131, batch 32
as ``experiments/trcsl_pretrain_slag.yaml``) and of the 1D ``trcsl_1d`` (32 x 1 x 143), in fp32 (NCHW) and,
where the CPU computes bf16 natively (AVX512-BF16 or AMX), under CPU bf16 autocast (+ ``channels_last`` in 2D),
timed eagerly and through ``torch.compile(model)`` (default mode, and ``max-autotune-no-cudagraphs`` for 2D when
the default compile takes under ``--autotune-if`` seconds). Optionally again with the CPU limited to AVX2
(``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2``, plus ``MKL_ENABLE_INSTRUCTIONS=AVX2`` so the fp32
``torch.mm`` peak is AVX2's too), fp32 only.

How: each configuration runs in a fresh process with its own empty Inductor cache (a cold compile, as a first
run on a new machine gets) and the "big heap" malloc settings of ``bench_models.py``. The eager and the compiled
model start from the same seed and train on the same fixed random batch; dropout is set to 0 so both compute
the same arithmetic (its cost is a 32 x 224 mask, negligible). *compile s*: the first three compiled steps minus
three steady compiled steps (Dynamo tracing, AOTAutograd, Inductor codegen and gcc). Then eager and compiled
steps alternate (so load drift on a shared machine hits both alike) and each gets the median (and the best) of
``--steps`` steps (5x as many for the cheap 1D step). GFLOP/step as ``bench_models.py`` counts it (``FlopCounterMode``, plus the LSTM that oneDNN hides from it), and
the fraction of the same process's 2048^2 GEMM peaks (best of 7, before and after) that the best step reaches
(best against best, as ``bench_models.py``: on a shared machine the median mostly measures the other jobs):
best fp32 (``torch.mm`` through MKL or oneDNN, whichever is faster) and ``torch.mm`` bf16. Agreement: the loss after 5 identical steps,
compiled against eager, relative difference. For the 1D model, which the quick report trains ~100 times in one
process, also: the compile cost of a second model instance in the same process, of a new process with the
cache warm, and the recompile a smaller last batch triggers; from these, the break-even step count against a
150-epoch run of 1-5 steps per epoch.

Usage: ``python benchmarks/bench_compile.py [--steps 20] [--threads 2] [--no-autotune] [--no-avx2] [--no-md]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import load_note, machine, update_section  # noqa: E402
from bench_models import BIG_HEAP, lstm_flops, peaks  # noqa: E402

from saca_lab.models import create_model, model_info  # noqa: E402

BATCH = 32  # experiments/base/pretrain_slag.yaml, and the quick report's fine-tunes
AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
#: Loss after 5 steps, compiled vs eager, relative: Inductor reorders reductions and fuses
#: elementwise chains (bf16 intermediates it keeps in fp32), so agreement is to round-off only.
TOLERANCE = {False: 1e-3, True: 5e-2}
AUTOTUNE = "max-autotune-no-cudagraphs"
GOAL = 0.5  # issue 12 §3: >= 50 % of the same process's best fp32 GEMM peak
KEEP_SPEEDUP, KEEP_COMPILE_S = 1.2, 60.0  # the bar the lead set for proposing a train.compile option


def native_bf16() -> bool:
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


class Trainee:
    """A model from a fixed seed, its Adam, and a training step on a given batch."""

    def __init__(self, name: str, seed: int, bf16: bool, compile_mode: str | None) -> None:
        torch.manual_seed(seed)
        self.model = create_model(name, n_outputs=4, dropout=0.0).train()
        self.cl = bf16 and model_info(name).input_kind == "image_2d"
        if self.cl:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.bf16 = bf16
        self.fn = (self.model if compile_mode is None else
                   torch.compile(self.model, mode=None if compile_mode == "default" else compile_mode))

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out = self.fn(x)
        return nn.functional.mse_loss(out.float(), y)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """(wall seconds, loss) of one step."""
        t0 = time.perf_counter()
        loss = self.loss(x, y)
        loss.backward()
        self.opt.step()
        return time.perf_counter() - t0, loss.item()


def batch(name: str, n: int, cl: bool, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, *model_info(name).default_input, generator=g)
    return (x.contiguous(memory_format=torch.channels_last) if cl else x), torch.rand(n, 4, generator=g)


def first_steps(t: Trainee, x: torch.Tensor, y: torch.Tensor, n: int) -> tuple[list[float], list[float]]:
    out = [t.step(x, y) for _ in range(n)]
    return [s for s, _ in out], [loss for _, loss in out]


def gemm_peaks(n: int = 2048) -> dict[str, float]:
    """``bench_models.peaks``; limited to AVX2 the fp32 ones only (bf16 is emulated there, and a
    2048^2 bf16 GEMM alone takes many seconds)."""
    if os.environ.get("ATEN_CPU_CAPABILITY") != "avx2":
        return peaks(n)
    a, am = torch.randn(n, n), torch.randn(n, n).to_mkldnn()
    fns = {"fp32": lambda: torch.mm(a, a), "fp32_onednn": lambda: torch._C._nn.mkldnn_linear(am, am)}
    return {k: 2 * n**3 / min(timeit.repeat(fn, number=1, repeat=8)[1:]) for k, fn in fns.items()} | {
        "bf16": float("nan")}


def worker(a: argparse.Namespace) -> dict:
    """Measure one model, precision and compile mode (run in its own process)."""
    torch.set_num_threads(a.threads)
    from torch._dynamo.utils import counters

    pk = gemm_peaks()
    eager = Trainee(a.worker, 0, a.bf16, None)
    comp = Trainee(a.worker, 0, a.bf16, a.mode)
    x, y = batch(a.worker, BATCH, eager.cl)
    _, eager_losses = first_steps(eager, x, y, 5)
    comp_times, comp_losses = first_steps(comp, x, y, 5)
    graphs = int(counters["stats"]["unique_graphs"])
    breaks = int(sum(counters["graph_break"].values()))
    for _ in range(a.warmup):
        eager.step(x, y)
        comp.step(x, y)
    te, tc = [], []
    # a 1D step is ~100x cheaper: more of them for the same confidence
    for _ in range(a.steps * (5 if model_info(a.worker).input_kind == "lines_1d" else 1)):  # alternated: load on the shared machine hits both alike
        te.append(eager.step(x, y)[0])
        tc.append(comp.step(x, y)[0])
    ms_e, ms_c = statistics.median(te), statistics.median(tc)
    res = {"eager_s": ms_e, "comp_s": ms_c, "eager_best_s": min(te), "comp_best_s": min(tc), "first_s": comp_times[0],
           "compile_s": sum(comp_times[:3]) - 3 * ms_c, "graphs": graphs, "breaks": breaks,
           "loss_eager": eager_losses[-1], "loss_comp": comp_losses[-1],
           "loss_rel": max(abs(c - e) / abs(e) for c, e in zip(comp_losses, eager_losses, strict=True))}
    if a.extra:  # 1D: what a run after the first pays, in this process
        again = Trainee(a.worker, 2, a.bf16, a.mode)
        times, _ = first_steps(again, x, y, 3)
        res["second_instance_s"] = sum(times) - 3 * ms_c
        xs, ys = x[:19].contiguous(), y[:19]  # a last batch smaller than 32 (e.g. 700 = 21 x 32 + 28)
        part = [comp.step(xs, ys)[0] for _ in range(3)]
        res["partial_batch_s"] = part[0] - statistics.median(part[1:])
    with FlopCounterMode(display=False) as counter:
        eager.loss(x, y).backward()
    res["gflop"] = (float(counter.get_total_flops()) + lstm_flops(eager.model, x)) / 1e9
    after = gemm_peaks()
    res["peaks"] = {k: max(v, after[k]) for k, v in pk.items()}
    return res


def spawn(model: str, bf16: bool, mode: str, a: argparse.Namespace, cache: str, avx2: bool = False,
          extra: bool = False, warm: bool = False, rep: int = 0) -> dict:
    """Measure one setting in a fresh process, or take it from ``--results`` if measured there."""
    key = {"model": model, "bf16": bf16, "mode": mode, "isa": "AVX2" if avx2 else "native", "warm": warm}
    key |= {"rep": rep} if rep else {}  # repeats of a setting: another fresh process
    if a.results and Path(a.results).exists():
        for line in Path(a.results).read_text().splitlines():
            r = json.loads(line)
            if {k: r.get(k) for k in key} == key:
                return r
    cmd = [sys.executable, __file__, "--worker", model, "--mode", mode, "--steps", str(a.steps),
           "--warmup", str(a.warmup), "--threads", str(a.threads)] + ["--bf16"] * bf16 + ["--extra"] * extra
    env = os.environ | BIG_HEAP | {"TORCHINDUCTOR_CACHE_DIR": cache} | (AVX2_ENV if avx2 else {})
    t0, load = time.perf_counter(), os.getloadavg()[0]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{model} {mode} ({key['isa']}) failed:\n{done.stderr[-3000:]}")
    r = json.loads(done.stdout.strip().splitlines()[-1])
    r |= key | {"wall_s": time.perf_counter() - t0, "load": [load, os.getloadavg()[0]]}
    if a.results:
        with open(a.results, "a") as fh:
            fh.write(json.dumps(r) + "\n")
    return r


def fresh_cache(root: str) -> str:
    return tempfile.mkdtemp(prefix="inductor-", dir=root)


def label(r: dict) -> str:
    return ("bf16 + CL" if model_info(r["model"]).input_kind == "image_2d" else "bf16") if r["bf16"] else "fp32"


def fracs(r: dict) -> dict[str, float]:
    best32 = max(r["peaks"]["fp32"], r["peaks"]["fp32_onednn"])
    f, e, c = r["gflop"] * 1e9, r["eager_best_s"], r["comp_best_s"]  # best step, like the best-of-7 peaks
    bf16 = float("nan") if r["isa"] == "AVX2" else r["peaks"]["bf16"]  # emulated there: no yardstick
    return {"e32": f / e / best32, "c32": f / c / best32, "e16": f / e / bf16, "c16": f / c / bf16}


HEADER = ("| model | precision | ISA | compile mode | GFLOP/step | eager ms/step, median (best) | compiled ms/step, "
          "median (best) | speedup, median (best) | compile s (cold cache) | graphs / breaks | eager % of best fp32 "
          "GEMM peak | compiled % of best fp32 GEMM peak | eager % of bf16 mm peak | compiled % of bf16 mm peak "
          "| loss rel. diff, 5 steps (tol.) |\n|---|---|---|---|" + "---:|" * 11)


def pct(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:.0%}"


def row(r: dict) -> str:
    f = fracs(r)
    tol = TOLERANCE[r["bf16"]]
    ok = "ok" if r["loss_rel"] <= tol else "**exceeds**"
    mode = r["mode"] + repeat(r)
    return (f"| {r['model']} | {label(r)} | {r['isa']} | {mode} | {r['gflop']:.3g} | {r['eager_s'] * 1e3:.1f} "
            f"({r['eager_best_s'] * 1e3:.1f}) | {r['comp_s'] * 1e3:.1f} ({r['comp_best_s'] * 1e3:.1f}) "
            f"| {r['eager_s'] / r['comp_s']:.2f}x ({r['eager_best_s'] / r['comp_best_s']:.2f}x) | {r['compile_s']:.0f} "
            f"| {r['graphs']} / {r['breaks']} | {f['e32']:.0%} | {f['c32']:.0%} | {pct(f['e16'])} | {pct(f['c16'])} "
            f"| {r['loss_rel']:.1e} ({ok}, {tol:g}) |")


def payoff(r: dict, warm: dict | None) -> str:
    """Whether compiling pays off for a 150-epoch 1D run of 1-5 steps per epoch."""
    saved = r["eager_s"] - r["comp_s"]
    costs = {"cold cache": r["compile_s"], "second model in the same process": r["second_instance_s"]}
    if warm is not None:
        costs["new process, warm cache"] = warm["compile_s"]
    parts = []
    for what, cost in costs.items():
        cost_total = cost + r["partial_batch_s"]  # a smaller last batch recompiles once per run
        be = f"{cost_total / saved:,.0f} steps" if saved > 0 else "never (compiled is not faster)"
        parts.append(f"{what}: {cost:.1f} s + {r['partial_batch_s']:.1f} s recompile for a smaller last "
                     f"batch, break-even after {be}")
    net = [f"{n} steps: {n * saved - r['second_instance_s'] - r['partial_batch_s']:+.1f} s" for n in (150, 750)]
    return (f"`trcsl_1d` {label(r)}: {r['eager_s'] * 1e3:.1f} -> {r['comp_s'] * 1e3:.1f} ms/step "
            f"({saved * 1e3:+.1f} ms saved per step); " + "; ".join(parts)
            + ". Net gain of a run after the first in one process (saved time minus its compile), "
            + ", ".join(net) + ".")


def repeat(r: dict) -> str:
    return f" (repeat {r['rep'] + 1})" if r.get("rep") else ""


def verdict(rows: list[dict]) -> str:
    two_d = [r for r in rows if r["model"] == "trcsl" and r["isa"] == "native" and r["mode"] == "default"]
    best = {}
    for r in rows:
        if r["model"] == "trcsl" and r["isa"] == "native":
            k = label(r)
            if k not in best or r["comp_s"] < best[k]["comp_s"]:
                best[k] = r
    win = bool(two_d) and all(r["eager_s"] / r["comp_s"] >= KEEP_SPEEDUP and r["compile_s"] < KEEP_COMPILE_S
                              for r in two_d)
    figs = "; ".join(f"{label(r)}{repeat(r)} {r['eager_s'] * 1e3:.0f} -> {r['comp_s'] * 1e3:.0f} ms/step median "
                     f"({r['eager_s'] / r['comp_s']:.2f}x; best steps {r['eager_best_s'] * 1e3:.0f} -> "
                     f"{r['comp_best_s'] * 1e3:.0f} ms, {r['eager_best_s'] / r['comp_best_s']:.2f}x), "
                     f"compile {r['compile_s']:.0f} s" for r in two_d)
    goal = "; ".join(f"{k}: fastest compiled setting ({v['mode']}{repeat(v)}) reaches {fracs(v)['c32']:.0%} of the "
                     f"best fp32 GEMM peak and {fracs(v)['c16']:.0%} of the bf16 mm peak in its best step (eager, same "
                     f"process: {fracs(v)['e32']:.0%} and {fracs(v)['e16']:.0%})" for k, v in best.items())
    met = "fp32" in best and fracs(best["fp32"])["c32"] >= GOAL
    b16 = [v for k, v in best.items() if k != "fp32"]
    bf16_note = "".join(f" The bf16 step is {'above' if fracs(v)['c16'] >= GOAL else 'below'} {GOAL:.0%} of the bf16 "
                        f"mm peak ({fracs(v)['c16']:.0%}); against the fp32 peak it reads {fracs(v)['c32']:.0%}, "
                        f"which only says bf16 beats fp32 GEMMs." for v in b16)
    head = ("**Kept as a candidate**: compiling the 2D step is a clear win" if win else
            "**Not kept**: compiling the 2D step is not a clear win")
    avx = "".join(f" Limited to AVX2 ({label(r)}, {r['mode']}): {r['eager_s'] * 1e3:.0f} -> "
                  f"{r['comp_s'] * 1e3:.0f} ms/step ({r['eager_s'] / r['comp_s']:.2f}x), compile "
                  f"{r['compile_s']:.0f} s, compiled {fracs(r)['c32']:.0%} of that process's best fp32 GEMM peak."
                  for r in rows if r["model"] == "trcsl" and r["isa"] == "AVX2")
    return (f"{head} (bar: >= {KEEP_SPEEDUP}x median speedup in every precision with a cold compile under {KEEP_COMPILE_S:.0f} s). "
            f"Default mode, native ISA: {figs}. Against the issue's goal (>= {GOAL:.0%} of the best fp32 GEMM peak): "
            f"{goal}. The fp32 goal is {'met' if met else 'not met'} by compiling." + bf16_note + avx)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="timed steps per model (median), each mode")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps after the first five")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1,
                    help="processes per 2D default-mode setting (the machine may be shared)")
    ap.add_argument("--autotune-if", type=float, default=180.0,
                    help=f"try {AUTOTUNE} on 2D only when the default compile took less (s)")
    ap.add_argument("--no-autotune", action="store_true", help=f"skip {AUTOTUNE}")
    ap.add_argument("--no-avx2", action="store_true", help="skip the runs limited to AVX2")
    ap.add_argument("--no-1d", action="store_true", help="skip trcsl_1d")
    ap.add_argument("--no-md", action="store_true", help="print only; do not update BENCHMARKS.md")
    ap.add_argument("--results", help="JSON-lines file: each measured setting is appended, and a setting "
                    "already there is reused instead of measured again (to resume or split a run)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # internal: measure one setting in this process
    ap.add_argument("--mode", default="default", help=argparse.SUPPRESS)
    ap.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--extra", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a)))
        return
    note = load_note()
    precisions = [False, True] if native_bf16() else [False]
    root = tempfile.mkdtemp(prefix="bench-compile-")
    rows, pay, notes, warm_rows = [], [], [], []

    def run(*args, **kw) -> dict:
        r = spawn(*args, **kw)
        rows.append(r)
        print(row(r), flush=True)
        return r

    try:
        default_2d = {bf: run("trcsl", bf, "default", a, fresh_cache(root)) for bf in precisions}
        for i in range(1, a.repeats):
            for bf in precisions:
                run("trcsl", bf, "default", a, fresh_cache(root), rep=i)
        if not a.no_1d:
            for bf in precisions:
                cache = fresh_cache(root)
                r = run("trcsl_1d", bf, "default", a, cache, extra=True)
                warm = spawn("trcsl_1d", bf, "default", a, cache, warm=True)  # same cache: a new process, warm
                warm_rows.append(warm)
                pay.append(payoff(r, warm))
                print(pay[-1], flush=True)
        optional = []  # a failure here is reported, not fatal
        if not a.no_autotune:
            for bf, r in default_2d.items():
                if r["compile_s"] < a.autotune_if:
                    optional.append(("trcsl", bf, AUTOTUNE, {}))
                else:
                    notes.append(f"{AUTOTUNE} ({label(r)}) not tried: the default compile took "
                                 f"{r['compile_s']:.0f} s (>= {a.autotune_if:.0f} s).")
        if not a.no_avx2:
            optional += [(m, False, "default", {"avx2": True}) for m in ("trcsl", "trcsl_1d")[:1 + (not a.no_1d)]]
        for model, bf, mode, kw in optional:
            try:
                run(model, bf, mode, a, fresh_cache(root), **kw)
            except RuntimeError as exc:
                notes.append(str(exc).splitlines()[0] + ": " + str(exc).strip().splitlines()[-1])
                print(exc, file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    pk = {k: max(r["peaks"][k] for r in rows if r["isa"] == "native") for k in rows[0]["peaks"]}
    avx = [r for r in rows if r["isa"] == "AVX2"]
    peak_txt = (f"2048 x 2048 GEMM, best of 7 before and after each setting, best over the native-ISA runs: "
                f"`torch.mm` fp32 (MKL) {pk['fp32'] / 1e9:.0f} GFLOP/s, fp32 through oneDNN "
                f"{pk['fp32_onednn'] / 1e9:.0f} GFLOP/s, `torch.mm` bf16 {pk['bf16'] / 1e9:.0f} GFLOP/s")
    if avx:
        p = avx[0]["peaks"]
        peak_txt += (f"; limited to AVX2: fp32 (MKL) {p['fp32'] / 1e9:.0f}, oneDNN {p['fp32_onednn'] / 1e9:.0f} "
                     f"GFLOP/s")
    peak_txt += f" ({a.threads} threads). Each row uses its own process's peaks."
    seen = [x for r in rows + warm_rows for x in r.get("load", [])]
    unseen = sum("load" not in r for r in rows + warm_rows)
    loads = (f"1-minute load average at the start and end of each setting: {min(seen):.1f}-{max(seen):.1f}"
             if seen else "") + (f"{'; ' if seen else ''}{unseen} settings reused from `--results` without "
                                 f"a recorded load" if unseen else "") + "."
    minutes = sum(r["wall_s"] for r in rows + warm_rows) / 60  # rows from --results included
    cmd = (f"python benchmarks/bench_compile.py --steps {a.steps} --threads {a.threads} --repeats {a.repeats}"
           + (" --results FILE" if a.results else "")) + "".join(
        f" --{k.replace('_', '-')}" for k in ("no_autotune", "no_avx2", "no_1d") if getattr(a, k))
    body = (f"## torch.compile for the 2D TrCSL step (issue 12 §3)\n\nMeasured with `{cmd}` "
            f"({minutes:.0f} min of measuring processes in all). {torch.__version__}, gcc for Inductor's C++ kernels.\n{machine()}\n"
            f"{note} Load average at the end: {os.getloadavg()[0]:.1f}. {loads}\n\nPeaks: {peak_txt}\n\n"
            + "How: " + " ".join(__doc__.split("How: ", 1)[1].split("\n\nUsage")[0].split()) + "\n\n"
            f"{HEADER}\n" + "\n".join(row(r) for r in rows) + "\n\n"
            + ("### 1D: does compiling pay off in the quick report?\n\n" + "\n".join(f"- {p}" for p in pay) + "\n\n"
               if pay else "")
            + "".join(f"{n}\n\n" for n in notes)
            + "### Verdict\n\n" + verdict(rows) + "\n")
    print("\n" + body)
    if not a.no_md:
        update_section("compile", body)


if __name__ == "__main__":
    main()
