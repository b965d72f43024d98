"""What the wheel carries (setup.cfg): every package on disk, and the harness as ``localizer_benchmarks``.

The package list is written out because setuptools' ``find:`` cannot install
the folder ``benchmarks/`` under another name; these tests catch a package
added on disk but forgotten in the list, which would only fail after install.
"""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]
MAPPED = "localizer_benchmarks"
# Files whose owners still have to switch their ``benchmarks.`` imports to relative ones (issue #22).
PENDING_RELATIVE: set[str] = set()


def _config() -> configparser.ConfigParser:
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "setup.cfg")
    return config


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip() and not line.strip().startswith("#")]


def _names(requirements: str) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower() for line in _lines(requirements)}


def test_every_package_on_disk_is_listed_and_benchmarks_is_renamed() -> None:
    options = _config()["options"]
    listed = set(_lines(options["packages"]))
    on_disk = set(find_packages(str(ROOT), include=["indexer", "indexer.*", "localizer", "localizer.*",
                                                    "cornstack_train", "cornstack_train.*"]))
    harness = {MAPPED} | {f"{MAPPED}.{name}" for name in find_packages(str(ROOT / "benchmarks"))}
    assert listed == on_disk | harness
    assert not any(name.split(".")[0] == "benchmarks" for name in listed)
    assert _lines(options["package_dir"]) == [f"{MAPPED} = benchmarks"]


def test_entry_points_name_modules_the_wheel_carries() -> None:
    listed = set(_lines(_config()["options"]["packages"]))
    for line in _lines(_config()["options.entry_points"]["console_scripts"]):
        module = line.split("=", 1)[1].strip().split(":")[0]
        assert module.rpartition(".")[0] in listed, line


def test_imports_inside_the_harness_are_relative() -> None:
    """Absolute ``benchmarks.`` imports would break under the installed name."""
    offenders = []
    for path in sorted((ROOT / "benchmarks").rglob("*.py")):
        rel = path.relative_to(ROOT / "benchmarks").as_posix()
        if rel in PENDING_RELATIVE:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            offenders += [f"{rel}:{node.lineno}" for m in modules if m.split(".")[0] == "benchmarks"]
    assert offenders == []


def test_test_extra_covers_train_bench_and_onnx() -> None:
    extras = _config()["options.extras_require"]
    needed = _names(extras["train"]) | _names(extras["bench"]) | _names(extras["onnx"]) | {"pytest"}
    assert needed <= _names(extras["test"])
