"""Sweep files: their fields, validation and per-trial experiment configurations.

A sweep file (``sweeps/*.yaml``) names a base experiment, fixed overrides, a search space over
dotted config paths, a sampler, a pruner and an objective. It turns TrCSL's one-axis-at-a-time
tuning (Ma et al., JAAS 2025, 40, 1810, Sec. 3.2, Fig. 9, Fig. S3-S6) and its ablation
(Fig. 12) into files that can be rerun, resumed and spread over workers.

Fields::

    description: free text (the MLflow parent run's note)
    extends: base/slag_grid.yaml  # optional: another sweep file (from this file's folder) whose
                              #   fields this one merges over: mappings key by key, anything
                              #   else replaced; the extended file may itself extend one
    base: ../experiments/trcsl_pretrain_slag.yaml   # from this file's folder, else the cwd
    set:                      # fixed for every trial: dotted config path -> value
      train.max_epochs: 200
      data.split: {train: 0.7, val: 0.15, test: 0.15}
    space:                    # dotted config path -> distribution
      model.name: {type: categorical, choices: [trcsl_1d, trcsl]}
      model.overrides.n_units: {type: int, low: 1, high: 5}          # optional step
      train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}  # or step
      seed: {type: categorical, choices: [0, 1, 2]}                  # repeated seeds
    sampler: grid             # tpe | random | grid, or {name: tpe, seed:, n_startup_trials:,
                              #   multivariate:, constant_liar:}
    pruner: none              # none | median | hyperband, or {name: median, n_startup_trials:,
                              #   n_warmup_steps:, interval_steps:} / {name: hyperband,
                              #   min_resource:, max_resource:, reduction_factor:}
    objective: {metric: val_r2_Mn, direction: maximize}   # a per-epoch validation metric;
                              # every trial's data.split needs a validation part (val > 0)
    n_trials: 10              # the whole study's budget; grid: default its size
    timeout: 3600             # seconds after which a worker starts no new trial
    heartbeat: {interval: 60, grace: 180, max_retry: 2}  # dead-worker detection (s)
    report: {series: model.name, metrics: [val_rmse_Mn, test_r2_Mn]}

The special path ``experiment`` (categorical, choices are experiment files) switches the base
YAML itself, for variants that differ in more than one field. ``report.series`` is the
categorical axis drawn side by side (default ``experiment`` or ``model.name`` when searched).
The objective is the metric's value after the last epoch, the value the pruner saw last.
Reading a file (its YAML, its ``extends:`` chain, the experiment paths it names) is
:mod:`saca_lab.sweeps.files`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saca_lab.config import DEFAULTS, Override, load_config, read_experiment
from saca_lab.errors import InputError
from saca_lab.sweeps.files import check_keys, read_chain, resolve_yaml

SAMPLER_OPTIONS = {"tpe": {"seed", "n_startup_trials", "multivariate", "constant_liar"},
                   "random": {"seed"}, "grid": {"seed"}}
PRUNER_OPTIONS = {"median": {"n_startup_trials", "n_warmup_steps", "interval_steps"},
                  "hyperband": {"min_resource", "max_resource", "reduction_factor"}, "none": set()}
PARAM_KEYS = {"int": {"low", "high", "step", "log"}, "float": {"low", "high", "step", "log"},
              "categorical": {"choices"}}
HEARTBEAT = {"interval": 60, "grace": 180, "max_retry": 2}
#: Metrics a trial can optimise: what SpectraRegressor logs on the validation split each epoch.
OBJECTIVE_RE = re.compile(r"^val_(loss|(r2|rmse|mae)_\w+)$")
REPORT_METRIC_RE = re.compile(r"^(val|test|test_sample)_(loss|(r2|rmse|mae)_\w+)$")
EXPERIMENT = "experiment"


@dataclass(frozen=True)
class Param:
    """One searched config path and its distribution."""

    path: str
    type: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(self.path, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.path, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.path, self.low, self.high, step=self.step, log=self.log)

    def grid_values(self) -> list:
        if self.type == "categorical":
            return list(self.choices)
        if self.log or (self.type == "float" and self.step is None):
            raise InputError(f"space.{self.path}: the grid sampler needs choices, or a range with "
                             f"step and without log")
        step = self.step or 1
        n = int(math.floor((self.high - self.low) / step + 1e-9)) + 1
        values = [self.low + i * step for i in range(n)]
        return [int(v) for v in values] if self.type == "int" else [round(v, 12) for v in values]

    def extremes(self) -> list:
        """Values worth checking before any trial runs: both ends, or every choice."""
        return list(self.choices) if self.type == "categorical" else [self.low, self.high]


@dataclass
class SweepSpec:
    """A validated sweep file; see the module docstring for the fields."""

    path: Path
    name: str
    base: Path | None
    set: dict[str, Any]
    space: dict[str, Param]
    sampler: dict[str, Any]
    pruner: dict[str, Any]
    metric: str
    direction: str
    n_trials: int | None
    timeout: float | None
    heartbeat: dict[str, int]
    report: dict[str, Any]
    description: str = ""
    grid: dict[str, list] | None = None
    #: the file's fields with its ``extends:`` chain merged in (logged with the study)
    source: dict[str, Any] | None = None

    @property
    def budget(self) -> int | None:
        """Trials of the whole study: ``n_trials``, or the grid's size."""
        if self.n_trials is not None:
            return self.n_trials
        return math.prod(len(v) for v in self.grid.values()) if self.grid else None

    def fingerprint(self, overrides: Sequence[str] = ()) -> str:
        """What decides a trial's result; a study refuses workers whose fingerprint differs.
        Experiment files count by what they set (their ``base:`` files merged in), so
        checkouts at different paths, and edits of comments, agree."""
        choices = self.space[EXPERIMENT].choices if EXPERIMENT in self.space else ()
        files = [f for f in [self.base] if f] + [resolve_yaml(c, self.path, EXPERIMENT) for c in choices]
        content = {"files": [read_experiment(f) for f in files],
                   "set": self.set, "overrides": list(overrides),
                   "space": {k: vars(p) for k, p in sorted(self.space.items())},
                   "metric": self.metric, "direction": self.direction}
        return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def trial_config(self, params: Mapping[str, Any], overrides: Sequence[Override] = ()) -> dict:
        """The resolved experiment config of one trial: base + ``set`` + ``--set`` + params."""
        base = resolve_yaml(params[EXPERIMENT], self.path, f"space.{EXPERIMENT}") \
            if EXPERIMENT in params else self.base
        items: list[Override] = [*self.set.items(), *overrides]
        items += [(k, v) for k, v in params.items() if k != EXPERIMENT]
        return load_config(base, items)


def _number(value: Any, where: str, integer: bool = False) -> float:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or (not integer and not math.isfinite(value)):
        raise InputError(f"{where}: expected {'an integer' if integer else 'a number'}, got {value!r}")
    return value


def _config_path(path: Any, where: str) -> str:
    if not isinstance(path, str) or not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", path):
        raise InputError(f"{where}: {path!r} is not a dotted config path")
    if path != EXPERIMENT and path.split(".")[0] not in DEFAULTS:
        raise InputError(f"{where}: unknown config section {path.split('.')[0]!r}; expected "
                         f"{EXPERIMENT!r} or one of {', '.join(sorted(DEFAULTS))}")
    return path


def _param(path: str, raw: Any, src: str) -> Param:
    where = f"{src}: space.{path}"
    if not isinstance(raw, Mapping) or "type" not in raw:
        raise InputError(f"{where}: expected {{type: int|float|categorical, ...}}, got {raw!r}")
    kind = raw["type"]
    if kind not in PARAM_KEYS:
        raise InputError(f"{where}.type: {kind!r} is not one of int, float, categorical")
    spec = check_keys({k: v for k, v in raw.items() if k != "type"}, PARAM_KEYS[kind], where)
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise InputError(f"{where}.choices: expected a non-empty list, got {choices!r}")
        for c in choices:
            if c is not None and not isinstance(c, (bool, int, float, str)):
                raise InputError(f"{where}.choices: {c!r} is not a scalar (number, string, bool, null)")
        if len({json.dumps(c) for c in choices}) != len(choices):
            raise InputError(f"{where}.choices: duplicate values in {choices!r}")
        return Param(path, kind, choices=tuple(choices))
    for key in ("low", "high"):
        if key not in spec:
            raise InputError(f"{where}.{key}: required for a {kind} range")
        _number(spec[key], f"{where}.{key}", integer=kind == "int")
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    if low > high:
        raise InputError(f"{where}: reversed range, low {low} > high {high}")
    if low == high:
        raise InputError(f"{where}: empty range, low == high == {low} (a fixed value belongs in `set`)")
    if not isinstance(log, bool):
        raise InputError(f"{where}.log: expected true or false, got {log!r}")
    if log and low <= 0:
        raise InputError(f"{where}: a log range needs low > 0, got {low}")
    if step is not None:
        _number(step, f"{where}.step", integer=kind == "int")
        if step <= 0 or step > high - low or log:
            raise InputError(f"{where}.step: {step} must be > 0, <= high - low, and without log")
    return Param(path, kind, *(float(v) if kind == "float" else v for v in (low, high)), step, log)


def _named(raw: Any, options: dict[str, set], where: str) -> dict[str, Any]:
    spec = {"name": raw} if isinstance(raw, str) else raw
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise InputError(f"{where}: expected a name or {{name: ..., options}}, got {raw!r}")
    name = spec["name"]
    if name not in options:
        raise InputError(f"{where}: unknown {where.rsplit(' ', 1)[-1]} {name!r}; "
                         f"expected one of {', '.join(options)}")
    out = check_keys({k: v for k, v in spec.items() if k != "name"}, options[name], f"{where}.{name}")
    for key, value in out.items():
        if key in ("multivariate", "constant_liar"):
            if not isinstance(value, bool):
                raise InputError(f"{where}.{key}: expected true or false, got {value!r}")
        elif not (key == "max_resource" and value == "auto"):
            _number(value, f"{where}.{key}", integer=True)
            if value < (1 if key in ("min_resource", "reduction_factor", "interval_steps",
                                     "max_resource") else 0):
                raise InputError(f"{where}.{key}: {value} is too small")
    return {"name": name, **out}


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file.

    Every field is checked, and the base experiment is resolved at each end of every range
    (and at every choice), with the model built on the meta device, so that a typo in a
    config path, a model argument or a value fails here, naming the field, not in trial 37.

    Raises
    ------
    InputError
        Naming the file and field: unknown field or config path, empty or reversed range,
        wrong type, unknown sampler or pruner, bad objective, missing base experiment.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"sweep file {path} not found")
    raw = read_chain(path, ())
    src = str(path)
    space_raw = raw.get("space")
    if not isinstance(space_raw, Mapping) or not space_raw:
        raise InputError(f"{src}: space: expected a non-empty mapping of config paths")
    space = {_config_path(k, f"{src}: space"): _param(k, v, src) for k, v in space_raw.items()}
    if EXPERIMENT in space and space[EXPERIMENT].type != "categorical":
        raise InputError(f"{src}: space.{EXPERIMENT}: must be categorical (experiment files)")
    base = None
    if raw.get("base") is not None:
        base = resolve_yaml(raw["base"], path, "base")
    elif EXPERIMENT not in space:
        raise InputError(f"{src}: base: required (an experiment YAML) unless space has {EXPERIMENT!r}")
    fixed = raw.get("set") or {}
    if not isinstance(fixed, Mapping):
        raise InputError(f"{src}: set: expected a mapping of config paths to values, got {fixed!r}")
    for key in fixed:
        _config_path(key, f"{src}: set")
        if key == EXPERIMENT or key in space:
            raise InputError(f"{src}: set.{key}: also in space (a path is either fixed or searched)")
    sampler = _named(raw.get("sampler", "tpe"), SAMPLER_OPTIONS, f"{src}: sampler")
    pruner = _named(raw.get("pruner", "none"), PRUNER_OPTIONS, f"{src}: pruner")
    metric, direction = _objective(raw.get("objective"), src)
    heartbeat = dict(HEARTBEAT)
    for key, value in check_keys(raw.get("heartbeat") or {}, HEARTBEAT, f"{src}: heartbeat").items():
        heartbeat[key] = _number(value, f"{src}: heartbeat.{key}", integer=True)
        if value < (0 if key == "max_retry" else 1):
            raise InputError(f"{src}: heartbeat.{key}: {value} is too small")
    if heartbeat["grace"] <= heartbeat["interval"]:
        raise InputError(f"{src}: heartbeat.grace ({heartbeat['grace']} s) must exceed "
                         f"heartbeat.interval ({heartbeat['interval']} s)")
    spec = SweepSpec(path=path.resolve(), name=path.stem, base=base, set=dict(fixed), space=space,
                     sampler=sampler, pruner=pruner, metric=metric, direction=direction,
                     n_trials=None, timeout=None, heartbeat=heartbeat,
                     report=_report(raw.get("report"), space, src),
                     description=str(raw.get("description") or ""), source=raw)
    if sampler["name"] == "grid":
        try:
            spec.grid = {k: p.grid_values() for k, p in space.items()}
        except InputError as e:
            raise InputError(f"{src}: {e}") from None
    for key in ("n_trials", "timeout"):
        value = raw.get(key)
        if value is not None:
            _number(value, f"{src}: {key}", integer=key == "n_trials")
            if value <= 0:
                raise InputError(f"{src}: {key}: must be > 0, got {value}")
            setattr(spec, key, value)
    if spec.grid and spec.n_trials and spec.n_trials > spec.budget:
        raise InputError(f"{src}: n_trials: {spec.n_trials} exceeds the grid's "
                         f"{math.prod(len(v) for v in spec.grid.values())} points")
    if spec.budget is None:
        raise InputError(f"{src}: n_trials: required for the {sampler['name']} sampler")
    check_configs(spec)
    return spec


def _objective(raw: Any, src: str) -> tuple[str, str]:
    spec = check_keys(raw if raw is not None else {}, {"metric", "direction"}, f"{src}: objective")
    metric = spec.get("metric")
    if not isinstance(metric, str) or not OBJECTIVE_RE.match(metric):
        raise InputError(f"{src}: objective.metric: {metric!r} is not a validation metric "
                         f"(val_loss, val_r2_EL, val_rmse_EL, val_mae_EL, EL an element or 'mean')")
    natural = "maximize" if metric.startswith("val_r2_") else "minimize"
    direction = spec.get("direction", natural)
    if direction not in ("minimize", "maximize"):
        raise InputError(f"{src}: objective.direction: {direction!r} is not minimize or maximize")
    if direction != natural:
        raise InputError(f"{src}: objective.direction: {metric} should be {natural}d, not {direction}d")
    return metric, direction


def _report(raw: Any, space: Mapping[str, Param], src: str) -> dict[str, Any]:
    spec = check_keys(raw or {}, {"series", "metrics"}, f"{src}: report")
    series = spec.get("series")
    if series is None:  # 1D vs 2D side by side, as TrCSL Fig. 9, when the sweep has that axis
        series = next((k for k in (EXPERIMENT, "model.name") if k in space), None)
    elif series not in space or space[series].type != "categorical":
        raise InputError(f"{src}: report.series: {series!r} is not a categorical path of space")
    metrics = spec.get("metrics") or []
    if not isinstance(metrics, list) or not all(
            isinstance(m, str) and REPORT_METRIC_RE.match(m) for m in metrics):
        raise InputError(f"{src}: report.metrics: expected a list like [val_rmse_Mn, test_r2_Mn], "
                         f"got {metrics!r}")
    return {"series": series, "metrics": metrics}


def check_configs(spec: SweepSpec, overrides: Sequence[str] = ()) -> None:
    """Resolve the trial config at both ends of every range (and each choice) and build its
    model on the meta device: catches unknown paths, model arguments and bad values early."""
    import torch

    from saca_lab.models import create_model
    from saca_lab.training.run import require_validation

    defaults = {k: p.extremes()[0] for k, p in spec.space.items()}
    seen = set()
    for path, param in spec.space.items():
        for value in param.extremes():
            params = {**defaults, path: value}
            key = json.dumps(params, sort_keys=True, default=str)
            if key in seen:
                continue
            seen.add(key)
            where = f"{spec.path}: space.{path}={value!r}"
            try:
                cfg = spec.trial_config(params, overrides)
                with torch.device("meta"):
                    create_model(cfg["model"]["name"], **copy.deepcopy(cfg["model"]["overrides"] or {}))
            except InputError as e:
                raise InputError(f"{where}: {e}") from None
            try:
                # a trial's objective is a val_* metric: without validation samples it would
                # have nothing to read (before, it silently read the test samples)
                require_validation(cfg, f"objective.metric {spec.metric}")
            except InputError as e:
                raise InputError(f"{where}: {e}") from None
            targets = cfg["data"]["targets"]
            element = spec.metric.rsplit("_", 1)[-1]
            if targets and spec.metric != "val_loss" and element not in [*targets, "mean"]:
                raise InputError(f"{spec.path}: objective.metric: {element!r} is not one of the "
                                 f"experiment's targets {targets}")


def short_name(path: str) -> str:
    """``model.overrides.kernels`` -> ``kernels``, for tables and axis labels."""
    return path if path == EXPERIMENT else path.rsplit(".", 1)[-1]
