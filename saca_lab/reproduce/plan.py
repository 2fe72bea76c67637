"""The plan of a reproduction: what runs, sized to a time budget, as a file.

``saca-lab reproduce --budget MINUTES`` times a few training steps of each model family here
(:mod:`saca_lab.reproduce.plan_cost`), estimates every figure, and if the total exceeds the
budget cuts, in this fixed order, until it fits:

1. the epochs of Fig. 9's 2D trials: 3/4, 1/2, then 1/3 of ``sweep_epochs``;
2. the 2D values of each Fig. 9 axis, down to 2 (the paper's 2D optimum first, then its nearest
   grid neighbours, so a cut sweep still tests the paper's claim where it is made);
3. the 2D epochs again, down to ``FIG9_MIN_EPOCHS``;
4. the repeats: ``transfer_repeats``, ``compare_repeats``, ``deep_repeats``, each halved in
   turn down to its floor (``REPEAT_FLOORS``);
5. last, the 2D epochs down to ``FIG9_LAST_EPOCHS`` (a CPU without native bf16 needs it: there a
   2D step takes ~2-2.5 s, so 6 trials of 5 epochs alone take ~6-7 minutes).

Nothing else shrinks and every figure still runs; a plan at every floor that still exceeds the
budget says so. The plan is a YAML file (``--plan`` writes it without training, ``--plan-file``
runs it without timing anything), so the same runs, and the same results, can be repeated on
another machine. A plan file is untrusted input: every field is checked.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import platform
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import yaml

from saca_lab.errors import InputError
from saca_lab.reproduce.settings import MODES, Mode, get_mode

VERSION = 1
#: ``--budget`` when not given: quick fits 15 minutes, full runs the papers' protocols.
DEFAULT_BUDGET = {"quick": 15.0, "full": None}
FIG9_AXES = {"fig9a_conv_units": "n_units", "fig9b_kernel_size": "kernel_size",
             "fig9c_kernel_count": "kernels"}
FIG9_EPOCH_FRACTIONS = (0.75, 0.5, 1 / 3)
FIG9_MIN_EPOCHS = 5
FIG9_MIN_VALUES = 2
FIG9_LAST_EPOCHS = 2
REPEAT_FLOORS = (("transfer_repeats", 3), ("compare_repeats", 2), ("deep_repeats", 2))
FIELDS = ("version", "mode", "set", "only", "fig9_2d", "budget_minutes", "over_budget", "cuts",
          "measured", "estimate")


def fig9_grid() -> dict[str, list]:
    """Every value of each Fig. 9 axis, from the shipped sweep files."""
    return {axis: list(values) for axis, values in _fig9_grid()}


@functools.cache
def _fig9_grid() -> tuple:
    from saca_lab.reproduce.context import SWEEPS
    from saca_lab.sweeps.spec import load_sweep

    return tuple((axis, tuple(load_sweep(SWEEPS / f"{stem}.yaml").grid[f"model.overrides.{axis}"]))
                 for stem, axis in FIG9_AXES.items())


def value_order(axis: str, grid: list) -> list:
    """The order in which 2D values of an axis are kept: the paper's optimum, then outwards."""
    from saca_lab.reproduce.paper import FIG9_BEST

    best = grid.index(FIG9_BEST[axis]["2d"]) if FIG9_BEST[axis]["2d"] in grid else 0
    return sorted(grid, key=lambda v: (abs(grid.index(v) - best), grid.index(v)))


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


@dataclass
class Plan:
    """One reproduction's runs; see the module docstring. ``set`` holds every mode setting (the
    user's ``--set`` and the cuts included), so a replay does not depend on the defaults of
    another version of ``settings.py``."""

    mode: str
    set: dict
    only: list[str]
    fig9_2d: dict  # {"epochs": int, "values": {axis: [values]}}
    budget_minutes: float | None = None
    over_budget: bool = False
    cuts: list[str] = field(default_factory=list)
    measured: dict = field(default_factory=dict)
    estimate: dict = field(default_factory=dict)  # figure -> {runs, minutes}
    version: int = VERSION

    def build_mode(self) -> Mode:
        base = MODES[self.mode]
        items = [(k, v) for k, v in self.set.items() if v != _plain(getattr(base, k))]
        return get_mode(self.mode, items)  # named after the base mode when nothing differs

    def as_dict(self) -> dict:
        return copy.deepcopy({f.name: getattr(self, f.name) for f in fields(self)})

    def save(self, path: str | os.PathLike) -> Path:
        from saca_lab.io import atomic_path

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(yaml.safe_dump(self.as_dict(), sort_keys=False, width=100))
        return path

    @property
    def total_minutes(self) -> float:
        return sum(e["minutes"] for e in self.estimate.values())

    def describe(self, figure: str) -> str:
        """What a figure runs, in words: models, repeats and epochs."""
        mode = self.build_mode()
        pair = f"pre-train {mode.pretrain_epochs} + fine-tune {mode.finetune_epochs} epochs"
        text = {
            "fig12": f"4 models x {len(mode.seeds)} seed(s), {mode.dims}: {pair}",
            "fig11": f"TrCSL without airPLS x {len(mode.seeds)} seed(s), {mode.dims}: {pair}",
            "figS3": f"{mode.sweep_epochs}-epoch trials", "figS4": f"{mode.sweep_epochs}-epoch trials",
            "fig14": f"sizes {mode.compare_sizes} x {mode.compare_repeats} repeats; TrCSL "
                     f"fine-tunes {mode.finetune_epochs} epochs",
            "fig15": f"sizes {mode.deep_sizes} x {mode.deep_repeats} repeats; TrCSL "
                     f"{mode.finetune_epochs}, GLL {mode.gll_epochs} epochs",
            "transfer": f"sizes {mode.transfer_sizes} x {mode.transfer_repeats} draws x 4 models; "
                        f"{mode.finetune_epochs}/{mode.finetune_epochs}/{mode.transfer_scratch_epochs}"
                        f"/{mode.gll_epochs} epochs",
            "saca_table1": f"{mode.saca_model} x {len(mode.saca_seeds)} seed(s), <= {mode.saca_epochs} epochs",
        }
        if figure == "clean_vs_calibrated":
            if not mode.clean_vs_calibrated:
                return ("skipped (clean_vs_calibrated=False; --only clean_vs_calibrated or "
                        "--set clean_vs_calibrated=true runs it)")
            mine = [f for f in ("fig14", "transfer") if f not in self.only]
            return ("fig14 + transfer again with nuisance: none"
                    + (f", and {' + '.join(mine)} at the mode's nuisance" if mine else ""))
        if figure == "fig9":
            vals = "; ".join(f"{a} {v}" for a, v in self.fig9_2d["values"].items())
            cap = "" if mode.sweep_trials is None else f" (at most {mode.sweep_trials} trials per study)"
            return (f"1D: whole grid x {mode.sweep_epochs} epochs; 2D: {vals} x "
                    f"{self.fig9_2d['epochs']} epochs{cap}")
        return text.get(figure, "")

    def text(self) -> str:
        """The plan as printed by ``--plan``."""
        budget = "none" if self.budget_minutes is None else f"{self.budget_minutes:g} min"
        lines = [f"Plan: mode {self.mode}, budget {budget}, estimated {self.total_minutes:.1f} min"
                 + (" (OVER BUDGET at every floor)" if self.over_budget else "")]
        if self.measured:
            lines.append(f"Measured on {self.measured.get('machine', '?')}:")
            for key, s in self.measured.get("step_seconds", {}).items():
                lines.append(f"  {key}: {s:.4f} s/step ({self.measured['precision'][key]})")
        lines.append(f"{'figure':<20} {'runs':>5} {'est. min':>9}  what")
        for fig, e in self.estimate.items():
            lines.append(f"{fig:<20} {e['runs']:>5} {e['minutes']:>9.1f}  {self.describe(fig)}")
        lines.append(f"{'total':<20} {sum(e['runs'] for e in self.estimate.values()):>5} "
                     f"{self.total_minutes:>9.1f}")
        lines += ["Cuts:"] + [f"  - {c}" for c in self.cuts or ["none"]]
        return "\n".join(lines)

    def markdown(self, name: str = "plan.yaml") -> str:
        """The report's "Plan" section."""
        lines = ["## Plan", "",
                 f"Plan file `{name}` (rerun it anywhere with `saca-lab reproduce --plan-file "
                 f"{name}`). Budget: {'none' if self.budget_minutes is None else f'{self.budget_minutes:g} min'}; "
                 f"estimated {self.total_minutes:.1f} min from the step times measured before "
                 "training" + ("; **over budget even at every floor**" if self.over_budget else "") + ".", ""]
        if self.measured:
            lines += [f"Step times on {self.measured.get('machine', '?')} (median of the timed "
                      "steps, after one warm-up step):", ""]
            counts = self.measured.get("probe_steps") or {}
            lines += [f"- `{k}`: {s:.4f} s per step ({self.measured['precision'][k]}; "
                      f"{counts.get(k, '?') if isinstance(counts, dict) else counts} steps)"
                      for k, s in self.measured.get("step_seconds", {}).items()]
        lines += ["", "| figure | training runs | estimated min | what |", "|---|---:|---:|---|"]
        lines += [f"| {f} | {e['runs']} | {e['minutes']:.1f} | {self.describe(f)} |"
                  for f, e in self.estimate.items()]
        lines += ["", "Cut to fit the budget:", ""] + [f"- {c}" for c in self.cuts or ["nothing"]]
        return "\n".join(lines)


def _estimate(mode: Mode, only, fig9_2d, measured, data_root) -> dict:
    from saca_lab.reproduce.plan_cost import figure_estimates

    grid = {a: len(v) for a, v in fig9_grid().items()}
    est = figure_estimates(mode, only, {**fig9_2d, "grid": grid}, measured, data_root)
    return {f: {"runs": r, "minutes": round(s / 60, 2)} for f, (s, r) in est.items()}


def _candidates(mode: Mode, grid: dict[str, list], fig9: bool):
    """(fig9 2D epochs, values kept per axis, repeat changes) from no cut to every floor;
    without Fig. 9 among the figures only the repeats are cut."""
    e = mode.sweep_epochs
    n_max = max(len(v) for v in grid.values())
    low = min(e, max(FIG9_MIN_EPOCHS, math.ceil(e * FIG9_EPOCH_FRACTIONS[-1])))
    yield e, n_max, {}
    floor, n_min = (min(e, FIG9_MIN_EPOCHS), FIG9_MIN_VALUES) if fig9 else (e, n_max)
    for f in FIG9_EPOCH_FRACTIONS if fig9 else ():
        yield min(e, max(FIG9_MIN_EPOCHS, math.ceil(e * f))), n_max, {}
    for k in range(n_max - 1, n_min - 1, -1):
        yield low, k, {}
    for epochs in (min(e, max(FIG9_MIN_EPOCHS, math.ceil(e / 4))), floor) if fig9 else ():
        yield epochs, n_min, {}
    repeats: dict[str, int] = {}
    for key, minimum in REPEAT_FLOORS:
        value = getattr(mode, key)
        while value > minimum:
            value = max(minimum, value // 2)
            repeats = {**repeats, key: value}
            yield floor, n_min, repeats
    if fig9:
        yield min(e, FIG9_LAST_EPOCHS), n_min, repeats


def make_plan(base: str, overrides=(), only=None, budget_minutes: float | None = None,
              measured: dict | None = None, data_root: str | None = None) -> Plan:
    """Time the model families (unless ``measured`` is given, as tests do), estimate, and cut
    in the documented order until the estimate fits ``budget_minutes`` (None: no cut).

    ``only`` is the figures ``--only`` named (None: every figure). A mode that leaves the
    "clean vs calibrated" rerun out (``clean_vs_calibrated=False``, the quick mode) runs it when
    ``only`` names it, unless ``overrides`` set ``clean_vs_calibrated`` themselves."""
    from saca_lab.reproduce.plan_cost import measure_step_times, probe_models
    from saca_lab.reproduce.runner import figure_names
    from saca_lab.runtime import describe_auto_precision

    if budget_minutes is not None and (isinstance(budget_minutes, bool) or not budget_minutes > 0):
        raise InputError(f"--budget: expected a positive number of minutes, got {budget_minutes!r}")
    mode = get_mode(base, overrides)
    named = only is not None
    only = list(only or figure_names())
    if named and "clean_vs_calibrated" in only and not mode.clean_vs_calibrated \
            and "clean_vs_calibrated" not in _set_keys(overrides):
        # a mode leaves the clean side out of its whole-report run to save time (the quick
        # mode's budget); named in --only it is what was asked for, so it runs at the mode's sizes
        mode = replace(mode, clean_vs_calibrated=True)
    if measured is None:
        measured = {**measure_step_times(probe_models(mode)),
                    "machine": f"{platform.machine()} {platform.processor() or ''}".strip()
                               + f", {os.cpu_count()} cores, {describe_auto_precision()}"}
    measured = copy.deepcopy(measured)
    steps = measured["step_seconds"]
    grid = fig9_grid()
    order = {a: value_order(a, v) for a, v in grid.items()}
    chosen = None
    first_total = None
    for epochs, k, repeats in _candidates(mode, grid, "fig9" in only):
        values = {a: [v for v in grid[a] if v in order[a][:k]] for a in grid}
        fig9 = {"epochs": epochs, "values": values}
        cut_mode = replace(mode, **repeats)
        estimate = _estimate(cut_mode, only, fig9, measured, data_root)
        total = sum(e["minutes"] for e in estimate.values())
        first_total = total if first_total is None else first_total
        chosen = (fig9, repeats, estimate)
        if budget_minutes is None or total <= budget_minutes:
            break
    fig9, repeats, estimate = chosen
    total = sum(e["minutes"] for e in estimate.values())
    settings = {k: _plain(v) for k, v in {**mode.as_dict(), **repeats}.items() if k != "name"}
    plan = Plan(base, settings, only, _plain_fig9(fig9), budget_minutes,
                over_budget=budget_minutes is not None and total > budget_minutes,
                measured=measured, estimate=estimate)
    plan.cuts = _describe_cuts(mode, grid, fig9, repeats, first_total, budget_minutes, steps)
    return plan


def _set_keys(overrides) -> set[str]:
    """The mode fields that ``--set`` items (text or ``(key, value)`` pairs) change."""
    from saca_lab.config import parse_override

    return {(parse_override(o) if isinstance(o, str) else o)[0] for o in overrides}


def _plain_fig9(fig9: dict) -> dict:
    return {"epochs": fig9["epochs"], "values": {a: _plain(v) for a, v in fig9["values"].items()}}


def _describe_cuts(mode, grid, fig9, repeats, first_total, budget, steps) -> list[str]:
    if budget is None or first_total <= budget:
        return []
    why = (f"estimated {first_total:.1f} min without cuts > budget {budget:g} min (2D trcsl "
           f"{steps.get('trcsl', float('nan')):.3f} s/step, 1D trcsl_1d "
           f"{steps.get('trcsl_1d', float('nan')):.4f} s/step)")
    cuts = [f"why: {why}"]
    if fig9["epochs"] < mode.sweep_epochs:
        cuts.append(f"Fig. 9 2D trials: {mode.sweep_epochs} -> {fig9['epochs']} epochs "
                    f"(1D trials keep {mode.sweep_epochs})")
    for axis, values in fig9["values"].items():
        if len(values) < len(grid[axis]):
            cuts.append(f"Fig. 9 2D {axis}: {values} of {grid[axis]} "
                        f"({len(grid[axis]) - len(values)} trial(s) fewer)")
    for key, value in repeats.items():
        cuts.append(f"{key}: {getattr(mode, key)} -> {value}")
    return cuts
