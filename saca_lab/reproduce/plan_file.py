"""Reading a plan file (``saca-lab reproduce --plan-file``): untrusted input, every field
checked against the mode's settings and the figure registry before anything runs; the message
names the file and the field."""

from __future__ import annotations

import math
import os
from dataclasses import fields
from pathlib import Path

import yaml

from saca_lab.errors import InputError
from saca_lab.reproduce.plan import FIELDS, VERSION, Plan, fig9_grid
from saca_lab.reproduce.settings import MODES, Mode


def _fail(src: str, where: str, message: str):
    raise InputError(f"plan file {src}: {where}: {message}")


def _check_setting(src: str, key: str, value, default) -> None:
    """Type of one ``set`` entry against the mode field's default (get_mode then parses it)."""
    where = f"set.{key}"
    positive_int = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    if key in ("slag", "carbon_steel", "stainless"):
        ok, want = isinstance(value, (dict, str)), "a dataset mapping {preset: ...} or a folder"
    elif key in ("shots", "saca_shots"):
        ok, want = positive_int or isinstance(value, str), "a positive integer or each/average"
    elif key == "sweep_set":
        ok = isinstance(value, list) and all(isinstance(v, str) and "=" in v for v in value)
        want = "a list of KEY=VALUE config overrides"
    elif isinstance(default, tuple):
        ok = isinstance(value, list) and bool(value) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value)
        want = "a non-empty list of integers"
    elif isinstance(default, dict):
        ok, want = isinstance(value, dict), "a mapping"
    elif default is None:
        ok, want = value is None or positive_int, "a positive integer or null"
    elif isinstance(default, bool):
        ok, want = isinstance(value, bool), "true or false"
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) \
            and math.isfinite(value) and value > 0
        want = "a positive number"
    elif isinstance(default, int):
        ok, want = positive_int, "a positive integer"
    else:
        ok, want = isinstance(value, str), "text"
    if not ok:
        _fail(src, where, f"expected {want}, got {value!r}")


def plan_from_dict(raw, src: str = "<plan>") -> Plan:
    """Validate a plan read from a file; InputError naming the field on anything wrong."""
    from saca_lab.reproduce.runner import figure_names

    if not isinstance(raw, dict):
        _fail(src, "top level", f"expected a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        _fail(src, ", ".join(map(str, unknown)), f"unknown field(s); expected {', '.join(FIELDS)}")
    if raw.get("version") != VERSION:
        _fail(src, "version", f"expected {VERSION}, got {raw.get('version')!r}")
    if raw.get("mode") not in MODES:
        _fail(src, "mode", f"expected one of {sorted(MODES)}, got {raw.get('mode')!r}")
    settings = raw.get("set") or {}
    if not isinstance(settings, dict):
        _fail(src, "set", f"expected a mapping of mode settings, got {settings!r}")
    base = MODES[raw["mode"]]
    names = {f.name for f in fields(Mode)} - {"name"}
    for key, value in settings.items():
        if key not in names:
            _fail(src, f"set.{key}", f"unknown mode setting; expected one of {sorted(names)}")
        _check_setting(src, key, value, getattr(base, key))
    only = raw.get("only")
    known = figure_names()
    if not isinstance(only, list) or not only or not all(isinstance(o, str) for o in only):
        _fail(src, "only", f"expected a non-empty list of figure names, got {only!r}")
    unknown_figs = [o for o in only if o not in known]
    if unknown_figs or len(set(only)) < len(only):
        _fail(src, "only", f"unknown or repeated figure(s) in {only}; choose from {', '.join(known)}")
    _check_fig9(src, raw.get("fig9_2d"))
    budget = raw.get("budget_minutes")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float))
                               or not math.isfinite(budget) or budget <= 0):
        _fail(src, "budget_minutes", f"expected a positive number or null, got {budget!r}")
    if not isinstance(raw.get("over_budget", False), bool):
        _fail(src, "over_budget", "expected true or false")
    cuts = raw.get("cuts") or []
    if not isinstance(cuts, list) or not all(isinstance(c, str) for c in cuts):
        _fail(src, "cuts", "expected a list of text lines")
    measured = raw.get("measured") or {}
    steps = measured.get("step_seconds", {}) if isinstance(measured, dict) else None
    if not isinstance(steps, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in steps.values()):
        _fail(src, "measured.step_seconds", "expected a mapping of model -> seconds")
    if not isinstance(measured.get("precision", {}), dict) or set(steps) - set(measured.get("precision", {})):
        _fail(src, "measured.precision", "expected the precision of every timed model")
    estimate = raw.get("estimate") or {}
    if not isinstance(estimate, dict) or not all(
            isinstance(e, dict) and isinstance(e.get("runs"), int) and isinstance(e.get("minutes"), (int, float))
            for e in estimate.values()):
        _fail(src, "estimate", "expected figure -> {runs: int, minutes: number}")
    plan = Plan(raw["mode"], dict(settings), [n for n in known if n in only],
                {"epochs": raw["fig9_2d"]["epochs"], "values": dict(raw["fig9_2d"]["values"])},
                budget, raw.get("over_budget", False), list(cuts), dict(measured), dict(estimate))
    try:
        plan.build_mode()
    except InputError as e:
        _fail(src, "set", str(e))
    return plan


def _check_fig9(src: str, fig9) -> None:
    if not isinstance(fig9, dict) or set(fig9) != {"epochs", "values"}:
        _fail(src, "fig9_2d", f"expected {{epochs: N, values: {{axis: [..]}}}}, got {fig9!r}")
    epochs = fig9["epochs"]
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        _fail(src, "fig9_2d.epochs", f"expected a positive integer, got {epochs!r}")
    values, grid = fig9["values"], fig9_grid()
    if not isinstance(values, dict) or set(values) != set(grid):
        _fail(src, "fig9_2d.values", f"expected the axes {sorted(grid)}, got {values!r}")
    for axis, vals in values.items():
        if not isinstance(vals, list) or not vals or len(set(map(repr, vals))) < len(vals) or any(
                isinstance(v, bool) or v not in grid[axis] for v in vals):
            _fail(src, f"fig9_2d.values.{axis}", f"expected distinct values of {grid[axis]}, got {vals!r}")


def load_plan(path: str | os.PathLike) -> Plan:
    """Read and validate a plan file (YAML or JSON)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--plan-file {path}: no such file")
    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise InputError(f"plan file {path}: invalid YAML/JSON: {e}") from None
    return plan_from_dict(raw, str(path))
