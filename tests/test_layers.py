"""The package's layers: no module imports from a layer above its own.

Every import is walked, including those inside functions (a lazy import is still a dependency).
The table names modules by dotted path; a module takes the layer of its longest listed prefix,
so moving files between packages only changes the table. The README's Architecture section
shows the same map.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "saca_lab"

#: Lowest first. A module may import from its own layer and the ones before it.
LAYERS = (
    "core",           # errors, files, locks, config typing, allocator/precision, chemistry
    "storage",        # the on-disk dataset format and the readers of measured files
    "simulation",     # libskit plasma, instruments, presets, the simulator
    "models",         # networks and the sklearn baselines
    "config",         # experiment files and their schema (checks model and preset names)
    "preprocessing",  # sklearn transformers (line choice reads the config's defaults)
    "datasets",       # dataset specs, features, splits, augmentation, data modules
    "training",       # LightningModule, run_experiment, resume, MLflow, prediction
    "studies",        # compare, sweeps
    "reproduction",   # reproduce (uses compare and sweeps)
    "cli",
)

#: Module path (or package prefix) -> layer. ``saca_lab`` itself is only the package
#: ``__init__`` (the version), not a prefix of everything.
MODULE_LAYERS = {
    "saca_lab": "core",
    "saca_lab.errors": "core",
    "saca_lab.io": "core",
    "saca_lab.locking": "core",
    "saca_lab.typecheck": "core",
    "saca_lab.runtime": "core",
    "saca_lab.chemistry": "core",
    "saca_lab.data": "storage",
    "saca_lab.spectra": "simulation",
    "saca_lab.models": "models",
    "saca_lab.baselines": "models",
    "saca_lab.schema": "config",
    "saca_lab.config": "config",
    "saca_lab.preprocessing": "preprocessing",
    "saca_lab.datasets": "datasets",
    "saca_lab.plots": "datasets",
    "saca_lab.training": "training",
    "saca_lab.tracking": "training",
    "saca_lab.predict": "training",
    "saca_lab.compare": "studies",
    "saca_lab.sweeps": "studies",
    "saca_lab.reproduce": "reproduction",
    "saca_lab.cli": "cli",
    "saca_lab.__main__": "cli",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (PACKAGE.parent / rel).with_suffix(".py").is_file() or (PACKAGE.parent / rel / "__init__.py").is_file()


def layer_of(name: str) -> str | None:
    """The layer of a module: its longest prefix in :data:`MODULE_LAYERS`."""
    parts = name.split(".")
    for i in range(len(parts), 1, -1):
        layer = MODULE_LAYERS.get(".".join(parts[:i]))
        if layer:
            return layer
    return MODULE_LAYERS.get(name)  # only the package itself


def imports(path: Path, text: str | None = None) -> list[tuple[int, str]]:
    """(line, module) of every ``saca_lab`` import in a file (or in ``text`` as if it were
    that file), at any depth."""
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found = []
    source = path.read_text() if text is None else text
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # ``from saca_lab.data import store`` depends on the module ``saca_lab.data.store``
            found += [(node.lineno, f"{base}.{a.name}" if is_module(f"{base}.{a.name}") else base)
                      for a in node.names]
    return [(line, m) for line, m in found if m == "saca_lab" or m.startswith("saca_lab.")]


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    missing = [module_name(p) for p in sources() if layer_of(module_name(p)) is None]
    assert not missing, f"modules without a layer (add them to MODULE_LAYERS): {missing}"


def test_every_table_entry_names_a_module():
    """A stale entry (after a move) would hide a module's real layer behind a prefix."""
    stale = [m for m in MODULE_LAYERS if not is_module(m)]
    assert not stale, f"MODULE_LAYERS names modules that do not exist: {stale}"
    assert set(MODULE_LAYERS.values()) <= set(LAYERS)


def violations(path: Path, text: str | None = None) -> list[str]:
    """Each import of ``path`` from a layer above its own, as ``file:line: module (layer)
    imports module (layer)``."""
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    this = module_name(path)
    own = layer_of(this)
    found = []
    for line, target in imports(path, text):
        theirs = layer_of(target)
        if theirs is not None and own is not None and rank[theirs] > rank[own]:
            found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {this} ({own}) "
                         f"imports {target} ({theirs})")
    return found


def test_no_import_from_a_higher_layer():
    found = [v for path in sources() for v in violations(path)]
    assert not found, "imports from a higher layer:\n" + "\n".join(found)


@pytest.mark.parametrize(("source", "expected"), [
    ("from saca_lab.reproduce.context import source_hash\n", "saca_lab.reproduce.context"),
    ("from saca_lab import tracking\n", "saca_lab.tracking"),
    ("from saca_lab import __version__\n", "saca_lab"),
    ("import saca_lab.models\n", "saca_lab.models"),
    ("from ..reproduce import context\n", "saca_lab.reproduce.context"),
])
def test_imports_are_found_inside_functions_and_resolved(source, expected):
    """The walker sees a lazy import and resolves it to the module it loads (an import
    resolved to the wrong module would be checked against the wrong layer)."""
    probe = PACKAGE / "training" / "probe.py"  # a name only: the text is given
    assert imports(probe, "def f():\n    " + source) == [(2, expected)]
    assert layer_of(expected) is not None


def test_a_lower_module_importing_a_higher_one_is_reported():
    """The check fails on an inversion and names the module and the import (here the one
    ``training/resume.py`` had: reproduce's hash helpers)."""
    text = "def key():\n    from saca_lab.reproduce.context import source_hash\n"
    assert violations(PACKAGE / "training" / "resume.py", text) == [
        "saca_lab/training/resume.py:2: saca_lab.training.resume (training) imports "
        "saca_lab.reproduce.context (reproduction)"]
