"""Experiment configuration: YAML files, defaults, ``--set key=value`` overrides, validation.

An experiment file names a model, a dataset, targets, a split, preprocessing and training
settings; everything it leaves out comes from :data:`DEFAULTS`. The resolved configuration is
what a run logs, so a run can be repeated from its logged config alone.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from saca_lab.errors import InputError

#: Learning-rate schedules of ``train.lr_schedule`` (see saca_lab/training/module.py).
LR_SCHEDULES = ("step", "cosine", "constant")

DEFAULTS: dict[str, Any] = {
    "name": None,
    "seed": 0,
    "model": {"name": None, "overrides": {}},
    "data": {
        "dataset": None,          # a dataset directory, or {preset: NAME, samples:, shots:, seed:}
        "targets": None,          # element / oxide names; default: all of the dataset's targets
        "split": {"train": 0.7, "val": 0.0, "test": 0.3, "seed": 0, "folds": None, "fold": None,
                  "subset": None, "subset_seed": None},  # subset: draw N samples, split those
        "shots": "average",       # "average" | "each" | an int k: mean of each k consecutive shots
        "preprocessing": {"airpls": {"lam": 1e4, "max_iter": 50}, "minmax": True,
                          "standardize": True},  # per-feature, fitted on the training split
        "lines": "nist",          # lines_1d models: nist | paper | air wavelengths (nm), see windows.py
        "lines_per_element": 3,   # lines: nist
        "half_width": 5,
        "augment": None,          # {shift_nm:, jitter:} on training data only (SACA; data/augment.py)
        "batch_size": 32,
        "num_workers": 0,
    },
    "train": {
        "max_epochs": 100,
        "lr": 0.01,
        "lr_schedule": "step",    # step | cosine | constant (training/module.py)
        "lr_step": 100,           # epochs, or a fraction of max_epochs when < 1
        "lr_gamma": 0.1,
        "weight_decay": 0.0,
        "early_stopping": None,   # {patience:, min_delta:} monitors val_loss (SACA)
        "precision": "auto",      # bf16-mixed where the device runs bf16 natively, else 32-true
        "channels_last": "auto",  # true only for 2D inputs in bf16 on a CPU (saca_lab/runtime.py)
        "standardize_targets": True,
        "fast_dev_run": False,
        "limit_train_batches": None,
        "accelerator": "auto",
        "devices": 1,
        "strategy": "auto",       # Lightning strategy: auto | ddp | ddp_spawn | ... (train.devices > 1)
        "checkpoint_every": 10,   # epochs between resumable last-epoch checkpoints (0: never)
    },
    "transfer": None,             # {from: RUN_ID | checkpoint path, unfreeze_at_epoch:, unfreeze_lr:}
    "tracking": {"experiment": None, "run_name": None, "log_model": True},
}

_TOP_LEVEL = set(DEFAULTS)


def project_dir(name: str) -> Path:
    """The repository's ``experiments/`` or ``sweeps/`` folder (``./NAME`` for an installed
    package, whose wheel does not carry them)."""
    repo = Path(__file__).resolve().parents[1] / name
    return repo if repo.is_dir() else Path(name)


def deep_merge(base: Mapping, update: Mapping, where: str = "") -> dict:
    """Merge ``update`` into a copy of ``base``; unknown keys of dict-valued defaults are errors."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        path = f"{where}.{key}" if where else key
        if isinstance(out.get(key), dict) and isinstance(value, Mapping) and key not in ("overrides",):
            out[key] = deep_merge(out[key], value, path)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _check_keys(cfg: Mapping, defaults: Mapping, where: str, source: str) -> None:
    open_sections = {"overrides", "dataset", "preprocessing", "augment", "early_stopping", "transfer"}
    for key, value in cfg.items():
        path = f"{where}.{key}" if where else key
        if key not in defaults:
            raise InputError(f"{source}: unknown field {path!r}; expected one of {sorted(defaults)}")
        if isinstance(defaults[key], dict) and isinstance(value, Mapping) and key not in open_sections:
            _check_keys(value, defaults[key], path, source)


def parse_value(text: str) -> Any:
    """``--set`` values are YAML scalars: ``3``, ``0.1``, ``true``, ``[Mn, Cr]``, ``null``."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InputError(f"cannot parse value {text!r}: {e}") from None


def apply_overrides(cfg: dict, overrides: Sequence[str]) -> dict:
    """Apply ``key.sub=value`` overrides (dotted paths; new keys only under open sections)."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise InputError(f"--set {item!r}: expected KEY=VALUE")
        key, _, raw = item.partition("=")
        parts = key.strip().split(".")
        node = cfg
        for i, part in enumerate(parts[:-1]):
            where = ".".join(parts[: i + 1])
            if part not in node and i == 0 and part not in DEFAULTS:
                raise InputError(f"--set {key}: unknown field {where!r}; expected one of {sorted(DEFAULTS)}")
            if node.get(part) is None:
                node[part] = {}  # an unset optional section (transfer, augment, ...)
            elif not isinstance(node[part], dict):
                raise InputError(f"--set {key}: {where} is not a section")
            node = node[part]
        node[parts[-1]] = parse_value(raw)
    return cfg


def load_config(path: str | os.PathLike, overrides: Sequence[str] = ()) -> dict:
    """Read an experiment YAML, apply overrides, fill defaults and validate."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"experiment file {path} not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise InputError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: an experiment file is a mapping of sections")
    raw = apply_overrides(raw, overrides)
    _check_keys(raw, DEFAULTS, "", str(path))
    cfg = deep_merge(DEFAULTS, raw)
    cfg["name"] = cfg["name"] or path.stem
    cfg["tracking"]["experiment"] = cfg["tracking"]["experiment"] or cfg["name"]
    validate(cfg, str(path))
    return cfg


def validate(cfg: Mapping, source: str = "config") -> None:
    if not cfg["model"].get("name"):
        raise InputError(f"{source}: model.name is required")
    if cfg["data"].get("dataset") is None:
        raise InputError(f"{source}: data.dataset is required (a directory or {{preset: NAME}})")
    split = cfg["data"]["split"]
    if split.get("folds") is None:
        fractions = [split[k] for k in ("train", "val", "test")]
        if any(not isinstance(f, (int, float)) or f < 0 for f in fractions) or split["train"] <= 0:
            raise InputError(f"{source}: data.split fractions must be >= 0 with train > 0")
        if abs(sum(fractions) - 1.0) > 1e-6:
            raise InputError(f"{source}: data.split train+val+test = {sum(fractions)}, must be 1")
    else:
        k, fold = split["folds"], split.get("fold")
        if not isinstance(k, int) or k < 2 or not isinstance(fold, int) or not 0 <= fold < k:
            raise InputError(f"{source}: data.split needs folds >= 2 and 0 <= fold < folds")
    shots = cfg["data"]["shots"]
    if not (shots in ("average", "each") or (isinstance(shots, int) and shots >= 1)):
        raise InputError(f"{source}: data.shots must be 'average', 'each' or a positive integer")
    if cfg["train"]["precision"] not in ("auto", "32-true", "32", "bf16-mixed", "16-mixed"):
        raise InputError(f"{source}: train.precision must be auto, 32-true, bf16-mixed or 16-mixed")
    if cfg["train"]["channels_last"] not in ("auto", True, False):
        raise InputError(f"{source}: train.channels_last must be auto, true or false")
    if int(cfg["train"]["max_epochs"]) < 1:
        raise InputError(f"{source}: train.max_epochs must be >= 1")
    if cfg["train"]["lr_schedule"] not in LR_SCHEDULES:
        raise InputError(f"{source}: train.lr_schedule must be one of {', '.join(LR_SCHEDULES)}, "
                         f"got {cfg['train']['lr_schedule']!r}")
    per = cfg["data"]["lines_per_element"]
    if isinstance(per, bool) or not isinstance(per, int) or per < 1:
        raise InputError(f"{source}: data.lines_per_element must be an integer >= 1, got {per!r}")
    step = cfg["train"].get("lr_step")
    if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0:
        raise InputError(f"{source}: train.lr_step must be a positive number (epochs, or a "
                         f"fraction of max_epochs when < 1), got {step!r}")
    lines = cfg["data"].get("lines")
    if not (lines is None or lines in ("nist", "paper") or (
            isinstance(lines, list) and lines and all(isinstance(v, (int, float)) for v in lines))):
        raise InputError(f"{source}: data.lines must be nist, paper or a list of wavelengths "
                         f"(nm), got {lines!r}")


def dump_config(cfg: Mapping) -> str:
    return yaml.safe_dump(dict(cfg), sort_keys=False)


def flatten(cfg: Mapping, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (for MLflow params)."""
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
