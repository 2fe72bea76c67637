"""Reading sweep files: the YAML, the ``extends:`` chain and the experiment paths they name.

A sweep file may extend another (``extends: base/slag_grid.yaml``, relative to the extending
file's folder), which may extend a third: :func:`read_chain` merges the chain, the extending
file's fields over the extended ones', as experiment files merge their ``base:`` files.
Experiment paths (``base:``, the choices of ``experiment``) are relative to the sweep file that
names them, else to the working directory (:func:`resolve_yaml`). What the fields mean, and
their validation, is :mod:`saca_lab.sweeps.spec`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from saca_lab.config import deep_merge, load_yaml
from saca_lab.errors import InputError

FIELDS = ("description", "extends", "base", "set", "space", "sampler", "pruner", "objective", "n_trials",
          "timeout", "heartbeat", "report")


def resolve_yaml(value: Any, sweep_path: Path, where: str) -> Path:
    """The absolute path of the experiment file ``value`` named at ``where`` of ``sweep_path``:
    from the sweep file's folder, else the working directory; InputError if neither has it."""
    if not isinstance(value, str) or not value.endswith((".yaml", ".yml")):
        raise InputError(f"{sweep_path}: {where}: expected an experiment YAML path, got {value!r}")
    candidates = [Path(value)] if Path(value).is_absolute() else \
        [sweep_path.parent / value, Path.cwd() / value]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise InputError(f"{sweep_path}: {where}: experiment file {value!r} not found "
                     f"(looked in {', '.join(str(c.parent) for c in candidates)})")


def check_keys(mapping: Any, allowed: set | Sequence, where: str) -> dict:
    """``mapping`` as a dict if it is a mapping with only ``allowed`` keys; else InputError
    naming ``where`` and the unknown keys."""
    if not isinstance(mapping, Mapping):
        raise InputError(f"{where}: expected a mapping, got {mapping!r}")
    unknown = sorted(set(mapping) - set(allowed))
    if unknown:
        raise InputError(f"{where}: unknown field(s) {', '.join(map(str, unknown))}; "
                         f"expected {', '.join(sorted(allowed)) or 'none'}")
    return dict(mapping)


def read_chain(path: Path, chain: tuple[Path, ...]) -> dict:
    """A sweep file's fields with the files it ``extends`` merged under them (as experiment
    files' ``base:``, :func:`saca_lab.config.deep_merge`); an extended file's ``base`` is
    made absolute here, since it is relative to that file, not to the one extending it."""
    here = path.resolve()
    if here in chain:
        cycle = " -> ".join(str(p) for p in (*chain[chain.index(here):], here))
        raise InputError(f"{chain[-1]}: extends: {path} includes itself ({cycle})")
    try:
        raw = load_yaml(path.read_text()) or {}  # as experiment files: 1e-3 is a float, no repeated key
    except yaml.YAMLError as e:
        raise InputError(f"{path}: invalid YAML: {e}") from None
    except InputError as e:
        raise InputError(f"{path}: {e}") from None
    raw = check_keys(raw, FIELDS, str(path))
    if chain and isinstance(raw.get("base"), str):
        raw["base"] = str(resolve_yaml(raw["base"], path, "base"))
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str) or not parent.endswith((".yaml", ".yml")):
        raise InputError(f"{path}: extends: expected the path of another sweep file, got {parent!r}")
    target = path.parent / parent
    if not target.is_file():
        raise InputError(f"{path}: extends: {target} not found")
    return deep_merge(read_chain(target, (*chain, here)), raw)
