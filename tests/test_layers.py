"""The import directions between the project's packages, enforced on every import statement.

    indexer  <-  localizer  <-  cornstack_train  <-  benchmarks

``indexer`` imports no other project package; ``localizer`` may import ``indexer``;
``cornstack_train`` may import both; ``benchmarks`` may import all three, and nothing imports
``benchmarks``. Every import counts, including lazy ones inside functions and
``importlib.import_module("...")`` with a literal name, so a cycle cannot hide behind a
deferred import. The tests mirror the packages and keep the same directions: a test under
``tests/localizer/`` may import what ``localizer`` may, plus the shared helpers in ``tests/``
and the tests of the layers below.
(docs/architecture.md draws the layout.)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("indexer", "localizer", "cornstack_train", "benchmarks")
ALLOWED = {layer: set(LAYERS[: i + 1]) for i, layer in enumerate(LAYERS)}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a file, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


def violations(layer: str, files: list[Path], extra_allowed: set[str] = frozenset()) -> list[str]:
    allowed = ALLOWED[layer] | set(extra_allowed)
    bad = []
    for path in files:
        for line, name in imported_modules(path):
            parts = name.split(".")
            top = parts[1] if parts[0] == "tests" and len(parts) > 1 and parts[1] in LAYERS else parts[0]
            if (top in LAYERS or top == "tests") and top not in allowed:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return bad


def python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("layer", LAYERS)
def test_packages_import_only_lower_layers(layer):
    files = python_files(ROOT / layer)
    assert files, f"no code found under {layer}/"
    assert violations(layer, files) == []


@pytest.mark.parametrize("layer", LAYERS)
def test_tests_keep_the_directions_of_their_package(layer):
    assert violations(layer, python_files(ROOT / "tests" / layer), {"tests"}) == []


def test_the_check_catches_lazy_relative_and_dynamic_imports(tmp_path, monkeypatch):
    package = tmp_path / "indexer" / "sub"
    package.mkdir(parents=True)
    (tmp_path / "indexer" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "mod.py").write_text(
        "import os\n"
        "from ..store import x\n"
        "def later():\n"
        "    from localizer.api import Localizer\n"
        "    import importlib\n"
        "    importlib.import_module('cornstack_train.cli')\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = violations("indexer", python_files(tmp_path / "indexer"))
    assert found == ["indexer/sub/mod.py:4 imports localizer.api", "indexer/sub/mod.py:6 imports cornstack_train.cli"]
    assert (2, "indexer.store") in imported_modules(package / "mod.py")
