"""Calibrate the nuisance levels (issue 16, section 2): a baseline's learning curve per preset.

For each candidate level a preset is simulated (reduced shot count), turned into the features of
the paper's study and a linear baseline is fitted on repeated random subsets of each size, each
split 70/30 into training and test samples exactly as ``saca-lab compare --sizes`` does. The
score is the mean test R2 for Mn per size. Only the baseline is ever scored: no deep model's
result enters the choice.

* ``--preset slag`` (TrCSL Fig. 14): PLSRCV on shot-averaged, airPLS, min-max spectra
  (``saca-lab compare``'s defaults); targets <= 0.65 at 20 samples, 0.85-0.93 at 40 and >= 0.97
  at 90.
* ``--preset carbon-steel`` (TrCSL Fig. 15): PCA-PLS on the line windows the 1D TrCSL
  pre-training reads (``data.lines: nist`` for C, Cu, Mn, Cr, chosen on the slag pre-training's
  training samples), as Fig. 15 and the transfer study feed it; targets in :data:`SETUPS`
  (the stored paper text gives no bar heights for Fig. 15: see ``SETUPS``).

Beside the curve each level reports what makes it look like real data: the within-sample shot RSD
of the Mn I 403.076 nm line (TrCSL Fig. 13: 5-8 %) on the calibration set, and on a set of
samples of one fixed composition (the design mean) the sample-to-sample scatter of that line's
net intensity within a session and the RSD between session means.

The libskit plasma spectra are a pure function of composition, plasma state and instrument, so
the benchmark memoises them in memory: levels that differ only in post-plasma sources (mass,
sessions, heterogeneity, reference values) reuse them. The datasets are the same, byte for byte,
as ``simulate_dataset`` writes without the memo.

Run: ``python benchmarks/bench_difficulty.py --preset slag --candidates levels.json --write``
(results accumulate in ``--json``, so levels can be added in later runs; ``--write`` puts every
level of the JSON file, grouped by preset, into BENCHMARKS.md, section "difficulty").
"""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, update_section  # noqa: E402

from saca_lab.spectra import simulate as sim  # noqa: E402
from saca_lab.spectra.nuisance import (  # noqa: E402
    CALIBRATED,
    LITERATURE_RANGES,
    NuisanceLevels,
    describe,
)

ELEMENT = "Mn"
MN_LINE_NM = 403.076
#: What is calibrated on each preset: the baseline, its features, the dataset size, the sample
#: counts and the target mean R2 per count (low, high; None: open).
#:
#: Carbon steel: the stored TrCSL text (/work/shared/papers, and the RSC HTML) has Fig. 15's
#: caption but not its bar heights, so no PCA-PLS value can be read off the figure. The text
#: gives: TrCSL 0.98 on 20 carbon steels, "an improvement of about 0.4 in R2" over PLSR and SVR
#: on those 20 samples (abstract, Sec. 3.4), and TrCSL and GLL "significantly higher than
#: PCA-PLS" at 10 and 20 samples (Sec. 3.4). The targets are that reading: PCA-PLS at 20 near
#: 0.98 - 0.4 (0.50-0.65, the slag's <= 0.65 with a floor), and at 10 below 0.6 (the paper's
#: "less than 0.6" under 20 samples).
SETUPS = {
    "slag": {"model": "plsr", "features": "spectrum", "samples": 100,
             "targets": {20: (None, 0.65), 40: (0.85, 0.93), 90: (0.97, None)},
             "source": "TrCSL Fig. 14, PLSR"},
    "carbon-steel": {"model": "pca_pls", "features": "lines", "samples": 20,
                     "targets": {10: (None, 0.60), 20: (0.50, 0.65)},
                     "source": "TrCSL abstract and Sec. 3.4 (Fig. 15 bar heights not in the text)"},
}
#: Targets of the 1D TrCSL pre-training (experiments/trcsl_1d_pretrain_slag.yaml): their NIST
#: windows are what PCA-PLS reads in Fig. 15 and the transfer study.
PRETRAIN_TARGETS = ("C", "Cu", "Mn", "Cr")
# Post-plasma sources scaled together by --scales; the electron density spread stays at the base
# level (changing it re-runs libskit for every sample) and so do the heterogeneity and the
# reference uncertainty (they set the ceiling at 90 samples rather than the slope).
SCALED = ("ablated_mass_rsd", "session_gain_rsd", "session_tilt_sd", "session_shift_nm",
          "session_background_rsd")


class NodeMemo:
    """In-memory memo of ``simulate._node_spectra`` (libskit at the node temperatures)."""

    def __init__(self, path: Path | None = None) -> None:
        self.original = sim._node_spectra
        self.path = path
        self.cache: dict = {}
        if path is not None and path.is_file():
            with open(path, "rb") as f:
                self.cache = pickle.load(f)
        self.hits = self.misses = 0

    def save(self) -> None:
        """Keep the libskit spectra for a later run (``--memo``): the pass costs minutes."""
        if self.path is not None and self.misses:
            tmp = self.path.with_suffix(".tmp")
            with open(tmp, "wb") as f:
                pickle.dump(self.cache, f)
            tmp.replace(self.path)

    def __call__(self, args):
        composition, matrix, instrument, temperature = args
        key = (tuple(sorted(composition.items())), matrix, instrument, float(temperature))
        if key in self.cache:
            self.hits += 1
        else:
            self.misses += 1
            self.cache[key] = self.original(args)
        return self.cache[key]


def candidate(base: NuisanceLevels, scale: float) -> NuisanceLevels:
    return NuisanceLevels(**{**base.to_dict(),
                             **{k: getattr(base, k) * scale for k in SCALED}})


def simulate(preset: str, levels: NuisanceLevels | None, n_samples: int, n_shots: int, seed: int,
             out: Path):
    cfg = sim.preset_config(preset, n_samples=n_samples, n_shots=n_shots, seed=seed,
                            nuisance="none" if levels is None else levels.to_dict())
    return sim.simulate_dataset(cfg, out, n_jobs=1, overwrite=True, progress=False)


def pretrain_lines(seed: int = 0) -> tuple[float, ...]:
    """The line windows of the 1D TrCSL slag pre-training (``data.lines: nist``).

    As the data module resolves them: NIST lines of :data:`PRETRAIN_TARGETS` that are not
    blended with a major element of the mean composition of the training samples (7:3 split,
    seed 0, of the 100-sample slag design). The design's bulk composition stands in for the
    labels, which differ from it only by the reference-analysis error.
    """
    from saca_lab.config import DEFAULTS
    from saca_lab.datasets.splits import make_split
    from saca_lab.preprocessing.line_selection import select_lines
    from saca_lab.spectra.presets import element_compositions

    cfg = sim.preset_config("slag", n_samples=100, n_shots=1, seed=seed, nuisance="none")
    comps = element_compositions(cfg.design, cfg.matrix.balance)
    train = make_split(len(comps), DEFAULTS["data"]["split"]).train  # the experiments' 7:3
    elements = sorted({el for c in comps for el in c})
    composition = {el: float(np.mean([comps[i].get(el, 0.0) for i in train])) for el in elements}
    sel = select_lines("nist", list(PRETRAIN_TARGETS), cfg.instrument.wavelengths(), composition)
    return tuple(float(w) for w in sel.lines)


def features(ds, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The baseline's inputs as ``saca-lab compare`` builds them (airPLS, min-max) and Mn."""
    from saca_lab.compare.features import baseline_matrix

    lines = pretrain_lines() if kind == "lines" else None
    x = baseline_matrix(ds, kind, lines, 5, True, "minmax")
    return x, ds.target_matrix([ELEMENT])[:, 0]


def _fit(model, X, y, train, test) -> float:
    import warnings

    from sklearn.metrics import r2_score
    from threadpoolctl import threadpool_limits

    from saca_lab.baselines import make_baseline

    with threadpool_limits(1), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "y residual is constant")
        est = make_baseline(model).fit(np.asarray(X[train], np.float64), y[train])
        return float(r2_score(y[test], est.predict(np.asarray(X[test], np.float64))))


def learning_curve(model, X, y, sizes, repeats: int, seed: int, n_jobs: int) -> dict[int, list[float]]:
    from joblib import Parallel, delayed

    from saca_lab.compare.plan import size_split_spec
    from saca_lab.datasets.splits import make_split

    jobs = [(size, make_split(len(y), size_split_spec(size, r, seed))) for size in sizes
            for r in range(repeats)]
    scores = Parallel(n_jobs=n_jobs)(delayed(_fit)(model, X, y, s.train, s.test) for _, s in jobs)
    out: dict[int, list[float]] = {size: [] for size in sizes}
    for (size, _), r2 in zip(jobs, scores, strict=True):
        out[size].append(r2)
    return out


def shot_rsd(ds, n: int = 10) -> float:
    """Median over the first ``n`` samples of the Mn line's within-sample shot RSD."""
    from saca_lab.spectra.lines import line_rsd

    wl = ds.wavelengths
    return float(np.median([line_rsd(wl, np.asarray(ds.spectra[i], np.float64), MN_LINE_NM)
                            for i in range(min(n, ds.shape[0]))]))


def fixed_composition_scatter(preset: str, levels: NuisanceLevels | None, n_samples: int,
                              n_shots: int, seed: int, out: Path) -> tuple[float, float]:
    """(sample-to-sample RSD within sessions, RSD between session means) of the Mn line at one
    composition (the mean of the preset's design)."""
    from saca_lab.spectra.lines import net_line_intensity

    p = sim.preset_config(preset, n_samples=100, n_shots=1, seed=seed, nuisance="none")
    design = {k: np.full(n_samples, float(np.mean(v))) for k, v in p.design.items()}
    extra = {"preset": preset}
    session_size = 10
    if levels is not None:
        extra["nuisance"] = describe(levels.to_dict(), levels)
        session_size = levels.session_size
    cfg = sim.SimulationConfig(name=f"{preset}-fixed", matrix=p.matrix, instrument=p.instrument,
                               n_shots=n_shots, seed=seed, design=design, extra=extra)
    ds = sim.simulate_dataset(cfg, out, n_jobs=1, overwrite=True, progress=False)
    net = np.array([net_line_intensity(ds.wavelengths, np.asarray(ds.spectra[i], np.float64),
                                       MN_LINE_NM).mean() for i in range(n_samples)])
    session = np.arange(n_samples) // session_size
    means = np.array([net[session == s].mean() for s in np.unique(session)])
    within = np.sqrt(np.mean([net[session == s].var(ddof=1) for s in np.unique(session)
                              if (session == s).sum() > 1]))
    between = means.std(ddof=1) / net.mean() if means.size > 1 else float("nan")
    return float(within / net.mean()), float(between)


def evaluate(name: str, levels: NuisanceLevels | None, args, work: Path) -> dict:
    setup = SETUPS[args.preset]
    t0 = time.perf_counter()
    ds = simulate(args.preset, levels, args.samples, args.shots, args.seed, work / name)
    X, y = features(ds, setup["features"])
    sizes = [s for s in args.sizes if s <= args.samples]
    curve = learning_curve(setup["model"], X, y, sizes, args.repeats, args.seed, args.jobs)
    rsd = shot_rsd(ds)
    within, between = fixed_composition_scatter(args.preset, levels, args.fixed_samples, args.shots,
                                                args.seed, work / f"{name}-fixed")
    shutil.rmtree(work / name, ignore_errors=True)
    shutil.rmtree(work / f"{name}-fixed", ignore_errors=True)
    return {"name": name, "levels": None if levels is None else levels.to_dict(),
            "r2": {str(k): v for k, v in curve.items()}, "shot_rsd_mn": rsd,
            "fixed_sample_rsd_mn": within, "fixed_session_rsd_mn": between,
            "seconds": round(time.perf_counter() - t0, 1),
            "settings": {"preset": args.preset, "model": setup["model"],
                         "features": setup["features"], "samples": args.samples,
                         "shots": args.shots, "repeats": args.repeats, "seed": args.seed,
                         "fixed_samples": args.fixed_samples}}


def preset_of(r: dict) -> str:
    return r["settings"].get("preset", "slag")  # results before carbon steel were all slag


def targets_of(r: dict) -> dict[int, tuple]:
    return SETUPS[preset_of(r)]["targets"]


def meets(r: dict) -> bool:
    for size, (lo, hi) in targets_of(r).items():
        if str(size) not in r["r2"]:
            return False
        m = float(np.mean(r["r2"][str(size)]))
        if (lo is not None and m < lo) or (hi is not None and m > hi):
            return False
    return True


def shortfall(r: dict) -> float:
    """Distance of a level's curve from the targets, each size in standard errors of its mean.

    The mean R2 at 20 slag samples has a standard error near 0.08 over 20 subsets, at 90 near
    0.002; counting misses in those units keeps the noisy small sizes from dominating the choice.
    """
    total = 0.0
    for size, (lo, hi) in targets_of(r).items():
        v = np.asarray(r["r2"][str(size)])
        m, se = float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size))
        miss = max(0.0, (lo - m) if lo is not None else 0.0, (m - hi) if hi is not None else 0.0)
        total += miss / max(se, 1e-9)
    return total


def in_ranges(levels: dict | None) -> bool:
    """Whether every level lies in its literature range (``none`` counts as outside)."""
    tol = 1e-9  # scaled levels such as 0.2 x 1.5 carry rounding
    return levels is not None and all(lo - tol <= levels[k] <= hi + tol
                                      for k, (lo, hi, _) in LITERATURE_RANGES.items())


def chosen(results: list[dict]) -> dict | None:
    """The level inside the literature ranges that meets every target, else the one with the
    smallest shortfall (None if no level is inside the ranges). A level measured more than
    once is judged by its run with the most subsets (the smallest standard errors)."""
    best: dict[str, dict] = {}
    for r in results:
        if in_ranges(r["levels"]):
            key = json.dumps(r["levels"], sort_keys=True)
            if key not in best or r["settings"]["repeats"] > best[key]["settings"]["repeats"]:
                best[key] = r
    return min(best.values(), key=lambda r: (not meets(r), shortfall(r)), default=None)


def _levels_text(levels: dict | None) -> str:
    if levels is None:
        return "none"
    return ", ".join(f"{k}={v:g}" for k, v in levels.items() if v)


def table(results: list[dict]) -> str:
    sizes = sorted({int(s) for r in results for s in r["r2"]})
    head = ("| level | " + " | ".join(f"R2 at {s} (mean +- sd)" for s in sizes)
            + " | subsets | meets targets | shortfall (SE) | in lit. ranges | shot RSD Mn 403"
            " | sample RSD, fixed comp. | session RSD, fixed comp. | s |")
    rows = [head, "|" + "---|" * (len(sizes) + 9)]
    for r in results:
        cells = [f"{np.mean(r['r2'][str(s)]):.3f} +- {np.std(r['r2'][str(s)]):.3f}"
                 if str(s) in r["r2"] else "-" for s in sizes]
        rows.append(f"| {r['name']} | " + " | ".join(cells)
                    + f" | {r['settings']['repeats']}"
                    f" | {'yes' if meets(r) else 'no'} | {shortfall(r):.1f}"
                    f" | {'yes' if in_ranges(r['levels']) else 'no'} | {100 * r['shot_rsd_mn']:.1f} %"
                    f" | {100 * r['fixed_sample_rsd_mn']:.1f} % | {100 * r['fixed_session_rsd_mn']:.1f} %"
                    f" | {r['seconds']:.0f} |")
    return "\n".join(rows)


def levels_table(results: list[dict]) -> str:
    return "\n".join(f"- **{r['name']}**: {_levels_text(r['levels'])}" for r in results)


def ranges_table() -> str:
    rows = ["| level | low | high | basis |", "|---|---|---|---|"]
    rows += [f"| `{k}` | {lo:g} | {hi:g} | {why} |" for k, (lo, hi, why) in LITERATURE_RANGES.items()]
    return "\n".join(rows)


def _targets_text(preset: str) -> str:
    return ", ".join(
        f"{'>= ' + format(lo, 'g') if hi is None else '<= ' + format(hi, 'g') if lo is None else format(lo, 'g') + '-' + format(hi, 'g')}"
        f" at {size}" for size, (lo, hi) in SETUPS[preset]["targets"].items())


def preset_section(preset: str, results: list[dict]) -> str:
    """Table, choice and levels of one preset's results."""
    setup = SETUPS[preset]
    best = chosen(results)
    pick = ("No level lies in every literature range." if best is None else
            f"Chosen ({'meets every target' if meets(best) else 'no level meets every target; smallest shortfall'}"
            f", inside the literature ranges): **{best['name']}**.")
    s = results[-1]["settings"]
    feats = ("shot-averaged, airPLS, min-max spectra (the Fig. 14 features)"
             if setup["features"] == "spectrum" else
             "the NIST line windows of the 1D TrCSL slag pre-training (C, Cu, Mn, Cr; airPLS, "
             "min-max; the Fig. 15 and transfer-study features)")
    return (f"### {preset}: {setup['model']} on {ELEMENT}\n\n"
            f"{preset} preset, {s['samples']} samples x {s['shots']} shots, seed {s['seed']}; "
            f"{setup['model']} on {feats}; per size the number of random subsets in the "
            "'subsets' column, each split 70/30 as `saca-lab compare --sizes`; mean +- sd of the "
            f"test R2. Targets ({setup['source']}): {_targets_text(preset)}.\n\n"
            f"{table(results)}\n\n{pick}\n\nLevels (zero levels omitted):\n\n{levels_table(results)}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="slag", choices=sorted(SETUPS))
    ap.add_argument("--samples", type=int, help="default: the preset's (100 slag, 20 carbon steel)")
    ap.add_argument("--shots", type=int, default=20)
    ap.add_argument("--sizes", help="default: the sizes of the preset's targets")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fixed-samples", type=int, default=30)
    ap.add_argument("--scales", default="1", help="multiples of the base level's post-plasma sources")
    ap.add_argument("--base", default="calibrated",
                    help="'calibrated' (CALIBRATED[preset]) or a JSON object of levels")
    ap.add_argument("--label", default="base", help="name of the base level in the table")
    ap.add_argument("--candidates", help="JSON file {name: {levels}} of further levels to try "
                                         "(one electron-density spread keeps the libskit memo warm)")
    ap.add_argument("--none", action="store_true", help="also measure nuisance: none")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", default="difficulty.json", help="results, accumulated over runs")
    ap.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    ap.add_argument("--memo", help="pickle file of libskit spectra shared between runs (trusted, "
                                   "written by this benchmark)")
    ap.add_argument("--note", default="", help="file whose text (what was and was not searched) "
                                               "follows the tables")
    args = ap.parse_args()
    setup = SETUPS[args.preset]
    args.samples = args.samples or setup["samples"]
    args.sizes = ([int(s) for s in args.sizes.split(",")] if args.sizes else list(setup["targets"]))
    base = (CALIBRATED[args.preset] if args.base == "calibrated"
            else NuisanceLevels(**json.loads(args.base)))
    candidates: list[tuple[str, NuisanceLevels | None]] = [("none", None)] if args.none else []
    for s in (float(x) for x in args.scales.split(",") if x):
        candidates.append((f"{args.label} x{s:g}", candidate(base, s)))
    if args.candidates:
        candidates += [(name, NuisanceLevels(**levels))
                       for name, levels in json.loads(Path(args.candidates).read_text()).items()]
    path = Path(args.json)
    results = json.loads(path.read_text()) if path.is_file() else []
    memo = NodeMemo(Path(args.memo) if args.memo else None)
    sim._node_spectra = memo
    work = Path(tempfile.mkdtemp(prefix="difficulty-"))
    try:
        for name, levels in candidates:
            r = evaluate(name, levels, args, work)
            results = [x for x in results
                       if not (x["name"] == name and preset_of(x) == args.preset)] + [r]
            path.write_text(json.dumps(results, indent=1))
            memo.save()
            print(table([r]).splitlines()[-1], f"(libskit memo: {memo.hits} hits, {memo.misses} misses)",
                  flush=True)
    finally:
        sim._node_spectra = memo.original
        shutil.rmtree(work, ignore_errors=True)
    presets = [p for p in SETUPS if any(preset_of(r) == p for r in results)]
    sections = [preset_section(p, [r for r in results if preset_of(r) == p]) for p in presets]
    print("\n".join(sections))
    if args.write:
        note = Path(args.note).read_text() if args.note else ""
        update_section("difficulty", (
            "## Difficulty: nuisance levels vs the baselines' learning curves (Mn)\n\n"
            f"{machine()}\n\n"
            "`python benchmarks/bench_difficulty.py --preset PRESET`. Shot RSD: median over 10 "
            "samples of the within-sample RSD of Mn I 403.076 nm (Fig. 13: 5-8 %); fixed "
            "composition: samples of the mean design, RSD of the per-sample mean net Mn line "
            "intensity within sessions and RSD of the session means. 'shortfall': the misses "
            "of the targets in standard errors of each mean; 's': wall time per level (the "
            "first level of a run includes the libskit pass unless `--memo` held it; the "
            "machine was shared with other jobs).\n\n"
            + "\n".join(sections)
            + "\nLiterature ranges of the levels (`saca_lab.spectra.nuisance.LITERATURE_RANGES`):"
            f"\n\n{ranges_table()}\n\n{note}\n"))


if __name__ == "__main__":
    main()
