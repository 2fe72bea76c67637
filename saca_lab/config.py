"""Experiment configuration: YAML files, defaults, ``--set key=value`` overrides, validation.

An experiment file names a model, a dataset, targets, a split, preprocessing and training
settings; everything it leaves out comes from :data:`DEFAULTS`. The resolved configuration is
what a run logs, so a run can be repeated from its logged config alone. Types, ranges and
defaults of every field live in :mod:`saca_lab.schema`; :func:`validate` checks against it.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from saca_lab import schema
from saca_lab.errors import InputError
from saca_lab.schema import LR_SCHEDULES  # noqa: F401  (re-exported: training/module.py)

#: The default configuration, generated from the typed schema (saca_lab/schema.py), which
#: owns every field's type, range and default.
DEFAULTS: dict[str, Any] = schema.defaults()

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


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last one
    silently, so ``{lr: 0.1, lr: 0.01}`` would leave the user guessing which value ran)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
            except TypeError:  # an unhashable key: SafeLoader's own error follows
                break
            if repeated:
                raise InputError(f"{key!r} is given twice (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 (PyYAML) reads ``1e-3`` and ``1e4`` as strings: a float needs a dot there. Users
# write learning rates that way, so numbers in exponent form are floats here, as in YAML 1.2.
_FLOAT_1_2 = re.compile(r"""^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$""")
_UniqueKeyLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_1_2, list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """YAML as :func:`yaml.safe_load` reads it, with repeated mapping keys refused."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  (a SafeLoader subclass)


def parse_value(text: str) -> Any:
    """``--set`` values are YAML scalars: ``3``, ``0.1``, ``true``, ``[Mn, Cr]``, ``null``."""
    try:
        return load_yaml(text)
    except yaml.YAMLError as e:
        raise InputError(f"cannot parse value {text!r}: {e}") from None
    except InputError as e:
        raise InputError(f"value {text!r}: {e}") from None


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


def check_overrides(overrides: Sequence[str], source: str = "--set") -> None:
    """Type-check ``KEY=VALUE`` items on their own, before the config they change is read
    (``compare`` checks its ``--set`` before it resolves a dataset)."""
    schema.check(apply_overrides({}, overrides), source, partial=True)


def load_config(path: str | os.PathLike, overrides: Sequence[str] = ()) -> dict:
    """Read an experiment YAML, apply overrides, fill defaults and validate."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"experiment file {path} not found")
    try:
        raw = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise InputError(f"{path}: invalid YAML: {e}") from None
    except InputError as e:
        raise InputError(f"{path}: {e}") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: an experiment file is a mapping of sections")
    raw = apply_overrides(raw, overrides)
    cfg = deep_merge(DEFAULTS, raw)
    validate(cfg, str(path))  # before anything reads a field (a section may not be a mapping)
    cfg["name"] = cfg["name"] or path.stem
    cfg["tracking"]["experiment"] = cfg["tracking"]["experiment"] or cfg["name"]
    return cfg


def validate(cfg: Mapping, source: str = "config") -> None:
    """Check a resolved config against :mod:`saca_lab.schema` (types, ranges, unknown and
    required fields, the split's fractions, model overrides); InputError names the field."""
    schema.check(cfg, source)


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
