"""Keep the SWE-bench repositories out of the training data.

The embedder is evaluated on SWE-bench Lite, whose twelve repositories are
popular enough to be forked, vendored and copied all over GitHub. Training on
their code (or its copies) would let the model memorize the evaluation corpus,
so a pair is denied twice over:

* by **name**: the repository is one of the twelve, a fork (``owner__name``
  directories, any owner), or its name contains one of the project names
  (``django-extensions``, ``sympy-fork``, ``flask-login``...). This over-blocks
  a few ecosystem packages on purpose: losing them costs little, leaking the
  test corpus costs the benchmark's meaning.
* by **content**: when the benchmark repositories are on disk, every function
  at their HEAD is hashed (whitespace-normalized, with and without its
  documentation) and a mined positive with the same hash is dropped, wherever
  it was mined from (vendored copies inside unrelated repositories).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from indexer.chunking.definitions import function_definitions
from indexer.git.runner import run_git
from indexer.filters import FileFilter

from cornstack_train.data.cleaning import code_hash
from cornstack_train.data.docstrings import function_code

log = logging.getLogger(__name__)

SWE_BENCH_REPOS: tuple[str, ...] = (
    "astropy/astropy",
    "django/django",
    "matplotlib/matplotlib",
    "mwaskom/seaborn",
    "pallets/flask",
    "psf/requests",
    "pydata/xarray",
    "pylint-dev/pylint",
    "pytest-dev/pytest",
    "scikit-learn/scikit-learn",
    "sphinx-doc/sphinx",
    "sympy/sympy",
)
# Kept out of every training corpus for evaluation beyond SWE-bench (one per language).
EVALUATION_REPOS: tuple[str, ...] = (
    "gohugoio/hugo",
    "google/google-java-format",
    "eslint/eslint",
    "vuejs/core",
    "rubocop/rubocop",
    "puma/puma",
    "nikic/php-parser",
    "sebastianbergmann/phpunit",
)
# Project names as they appear inside other repositories' names. (vuejs/core's name is too common
# to deny by; its copies are left to the content check.)
PROJECT_NAMES: tuple[str, ...] = (
    "astropy", "django", "matplotlib", "seaborn", "flask", "requests", "xarray", "pylint", "pytest",
    "scikit-learn", "scikit_learn", "sklearn", "sphinx", "sympy",
    "hugo", "google-java-format", "eslint", "rubocop", "puma", "php-parser", "phpunit",
)


def canonical_repo_name(name: str) -> str:
    """``owner/name`` from ``owner__name``, a path, a URL or ``name.git``; lower case."""
    name = name.strip().rstrip("/")
    name = re.sub(r"^(https?://|git@)[^/:]+[/:]", "", name)
    name = re.sub(r"\.git$", "", name)
    last = name.split("/")[-1]
    if "__" in last:
        return "/".join(last.split("__", 1)).lower()
    if name.count("/") == 1 and not name.startswith(("/", ".", "~")):
        return name.lower()
    return last.lower()


def denied_by_name(name: str) -> str | None:
    """Why a repository name is denied (``benchmark``, ``evaluation``, ``fork``, ``name``), or None."""
    canonical = canonical_repo_name(name)
    if canonical in SWE_BENCH_REPOS:
        return "benchmark"
    if canonical in EVALUATION_REPOS:
        return "evaluation"
    repo = canonical.split("/")[-1]
    if any(canonical_repo_name(b).split("/")[-1] == repo for b in SWE_BENCH_REPOS):
        return "fork"
    if any(p in repo for p in PROJECT_NAMES):
        return "name"
    return None


def function_hashes(source: bytes, language: str) -> set[str]:
    """Hashes of every function of a file, with and without its docstring (mined positives are either)."""
    try:
        defs, rows = function_definitions(source, language)
    except ValueError:
        return set()
    out = set()
    for d in defs:
        out.add(code_hash(function_code(d, rows, drop_doc=True)))
        out.add(code_hash(function_code(d, rows, drop_doc=False)))
    return out


def _head(repo: Path) -> str:
    result = run_git(["rev-parse", "HEAD"], repo=repo, check=False, text=True)
    return result.stdout.strip() if result.returncode == 0 else "worktree"


@dataclass
class BenchmarkHashes:
    """Function hashes of the benchmark repositories at HEAD, cached per (repo, HEAD) in ``cache_dir``."""

    hashes: set[str] = field(default_factory=set)
    repos: list[str] = field(default_factory=list)

    def __contains__(self, positive_hash: str) -> bool:
        return positive_hash in self.hashes

    @classmethod
    def from_repos_dir(cls, repos_dir: str | Path, cache_dir: str | Path | None = None) -> "BenchmarkHashes":
        """Hash the benchmark repos found in ``repos_dir`` (``owner__name`` dirs, bare or not).

        Only directories whose name is a benchmark repository are read; test
        files are included (a vendored test helper is still benchmark code).
        """
        from indexer.source import open_source

        root = Path(repos_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"benchmark repos dir does not exist: {root}")
        result = cls()
        for entry in sorted(root.iterdir()):
            if denied_by_name(entry.name) != "benchmark" or not entry.is_dir():
                continue
            head = _head(entry)
            cache = Path(cache_dir) / f"{entry.name}-{head[:16]}.json" if cache_dir else None
            if cache is not None and cache.is_file():
                hashes = set(json.loads(cache.read_text()))
            else:
                hashes = set()
                source = open_source(entry, None, FileFilter(include_tests=True))
                try:
                    for f in source.files():
                        hashes |= function_hashes(source.read(f), f.language)
                finally:
                    source.close()
                if cache is not None:
                    cache.parent.mkdir(parents=True, exist_ok=True)
                    tmp = cache.with_suffix(".tmp")
                    tmp.write_text(json.dumps(sorted(hashes)))
                    tmp.replace(cache)
            log.info("benchmark hashes: %s @ %s: %d functions", entry.name, head[:12], len(hashes))
            result.hashes |= hashes
            result.repos.append(canonical_repo_name(entry.name))
        return result


def overlapping(positives: Iterable[str], benchmark: BenchmarkHashes) -> list[bool]:
    """For each positive, whether its normalized text is a benchmark function."""
    return [code_hash(p) in benchmark for p in positives]
