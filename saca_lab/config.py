"""Experiment configuration: YAML files, defaults, ``--set key=value`` overrides, validation.

An experiment file names a model, a dataset, targets, a split, preprocessing and training
settings, or extends another file (``base: OTHER.yaml``, see :func:`read_experiment`);
everything it leaves out comes from :data:`DEFAULTS`. The resolved configuration is
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


def project_dir(name: str) -> Path:
    """The repository's ``experiments/`` or ``sweeps/`` folder (``./NAME`` for an installed
    package, whose wheel does not carry them)."""
    repo = Path(__file__).resolve().parents[1] / name
    return repo if repo.is_dir() else Path(name)


def deep_merge(base: Mapping, update: Mapping) -> dict:
    """Merge ``update`` into a copy of ``base``: mappings merge key by key, any other value
    (a list, a scalar, ``null``) replaces the base's."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(out.get(key), dict) and isinstance(value, Mapping):
            out[key] = deep_merge(out[key], value)
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


#: An override: ``"KEY=VALUE"`` text (``--set``), or a ``(KEY, value)`` pair of a value code
#: already holds typed (a sweep trial's parameters), which is applied as it is.
Override = str | tuple[str, Any]


def parse_override(item: str, source: str = "--set") -> tuple[str, Any]:
    """``KEY=VALUE`` -> ``(KEY, typed value)``: the one parser of every verb's ``--set``.

    The key is returned stripped and unchecked (each verb has its own key namespace); the
    value is YAML (:func:`parse_value`).
    """
    key, sep, raw = str(item).partition("=")
    key = key.strip()
    if not sep or not key:
        raise InputError(f"{source} {item!r}: expected KEY=VALUE")
    return key, parse_value(raw)


def apply_overrides(cfg: Mapping, overrides: Sequence[Override]) -> dict:
    """A copy of ``cfg`` with ``key.sub=value`` overrides applied in order (dotted paths; new
    keys only under open sections). Items are ``--set`` text or ``(key, value)`` pairs."""
    cfg = copy.deepcopy(dict(cfg))
    for item in overrides:
        key, value = parse_override(item) if isinstance(item, str) else item
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
        node[parts[-1]] = copy.deepcopy(value)
    return cfg


def check_overrides(overrides: Sequence[str], source: str = "--set") -> None:
    """Type-check ``KEY=VALUE`` items on their own, before the config they change is read
    (``compare`` checks its ``--set`` before it resolves a dataset)."""
    schema.check(apply_overrides({}, overrides), source, partial=True)


def read_experiment(path: str | os.PathLike) -> dict:
    """The mapping an experiment file sets, with its ``base:`` files merged in (no defaults).

    ``base: OTHER.yaml`` (a path relative to the including file) names a file whose mapping
    this one extends: mappings merge key by key (:func:`deep_merge`) and anything else the
    including file sets replaces the base's value. A base may have a base of its own.

    Raises
    ------
    InputError
        The file or a base is missing, is not YAML, is not a mapping, sets ``name``, or the
        bases form a cycle; the message names the file.
    """
    return _read_chain(Path(path), ())


def _read_chain(path: Path, chain: tuple[Path, ...]) -> dict:
    if not path.is_file():
        if chain:
            raise InputError(f"{chain[-1]}: base: {os.path.normpath(path)} not found")
        raise InputError(f"experiment file {path} not found")
    here = path.resolve()
    if here in chain:
        cycle = " -> ".join(str(p) for p in (*chain[chain.index(here):], here))
        raise InputError(f"{chain[-1]}: base: {os.path.normpath(path)} includes itself ({cycle})")
    try:
        raw = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise InputError(f"{path}: invalid YAML: {e}") from None
    except InputError as e:
        raise InputError(f"{path}: {e}") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: an experiment file is a mapping of sections")
    if chain and "name" in raw:
        # a base's name would name every child (and its MLflow experiment) alike
        raise InputError(f"{path}: a base file must not set name (included by {chain[-1]}); "
                         "each experiment is named by its own file")
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str) or not base.strip():
        raise InputError(f"{path}: base must be the path of another experiment file, got {base!r}")
    return deep_merge(_read_chain(path.parent / base.strip(), (*chain, here)), raw)


def load_config(path: str | os.PathLike, overrides: Sequence[Override] = ()) -> dict:
    """Read an experiment YAML (and its ``base:`` files), apply overrides, fill defaults and
    validate."""
    path = Path(path)
    raw = apply_overrides(read_experiment(path), overrides)
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
