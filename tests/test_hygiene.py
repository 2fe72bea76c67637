"""Static checks on the package source: no private names imported across modules, no pyplot,
atomic writes only through ``saca_lab.io.atomic_path``."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "saca_lab"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _trees():
    for path in SOURCES:
        yield path.relative_to(PACKAGE.parent), ast.parse(path.read_text(), str(path))


def test_no_private_name_is_imported_from_another_module():
    found = []
    for rel, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("saca_lab"):
                found += [f"{rel}:{node.lineno} {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert not found, "make these public or move them:\n" + "\n".join(found)


def test_no_pyplot_and_no_backend_switch():
    found = []
    for rel, tree in _trees():
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom)
                     else [])
            found += [f"{rel}:{node.lineno} {n}" for n in names if n.startswith("matplotlib.pyplot")]
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "use" and getattr(node.func.value, "id", "") == "matplotlib"):
                found.append(f"{rel}:{node.lineno} matplotlib.use")
    assert not found, "build figures with saca_lab.io.new_figure:\n" + "\n".join(found)


def test_atomic_file_writes_only_in_io():
    found = []
    for rel, tree in _trees():
        if rel.as_posix() == "saca_lab/io.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = getattr(node.func.value, "id", "")
                if (owner, node.func.attr) in {("tempfile", "mkstemp"), ("os", "replace"), ("os", "rename")}:
                    found.append(f"{rel}:{node.lineno} {owner}.{node.func.attr}")
    assert not found, "write through saca_lab.io.atomic_path:\n" + "\n".join(found)
