"""The default retriever follows what the build ships: hybrid over the shipped static embedder, or
BM25 with a one-line note when there is none (a transformer index is too slow to run unasked)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from localizer import config as config_module
from localizer.embedding import embedder as embedder_module
from localizer.embedding.shipped import STATIC_MODEL, shipped_static_path


def test_default_follows_the_shipped_static_model(monkeypatch, tmp_path):
    monkeypatch.setattr(config_module, "shipped_static_path", lambda: tmp_path)
    assert config_module.default_retriever() == "hybrid"
    monkeypatch.setattr(config_module, "shipped_static_path", lambda: None)
    assert config_module.default_retriever() == "bm25"


def test_default_model_is_the_static_one_when_it_ships(monkeypatch, tmp_path):
    monkeypatch.setattr(embedder_module, "shipped_static_path", lambda: tmp_path)
    assert embedder_module.default_model() == STATIC_MODEL
    monkeypatch.setattr(embedder_module, "shipped_static_path", lambda: None)
    assert embedder_module.default_model() != STATIC_MODEL


def test_this_build_agrees_with_itself():
    """What the package data holds decides the defaults, at import, in one place."""
    ships = shipped_static_path() is not None
    assert config_module.DEFAULT_RETRIEVER == ("hybrid" if ships else "bm25")
    assert (config_module.DEFAULT_MODEL == STATIC_MODEL) == ships


def _build_without_static(tmp_path: Path) -> Path:
    """A copy of the localizer package whose models/ holds no static embedder: a build without it."""
    import localizer

    source = Path(localizer.__file__).parent
    root = tmp_path / "build"
    shutil.copytree(source, root / "localizer", ignore=shutil.ignore_patterns("__pycache__", "models"))
    (root / "localizer" / "models").mkdir()
    if (source / "models" / "cornstack").is_dir():
        (root / "localizer" / "models" / "cornstack").symlink_to(source / "models" / "cornstack")
    return root


def _run_cli(build: Path, repo: Path, index_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    """``localize`` run from ``build``'s copy of the package. An editable install maps ``localizer``
    to the checkout through a meta-path finder that outranks ``sys.path``, so the script drops that
    finder and puts the copy first, with the installed tree after it for ``indexer``."""
    import localizer

    installed = Path(localizer.__file__).parents[1]
    issue = index_dir.parent / "issue.md"
    issue.write_text("the cart total is wrong when a coupon is applied")
    script = (
        "import importlib, sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
        f"sys.path[:0] = [{str(build)!r}, {str(installed)!r}]\n"
        "m = importlib.import_module('localizer.cli.main')\n"
        f"assert m.__file__.startswith({str(build)!r}), m.__file__\n"
        "sys.argv[0] = 'localize'\n"
        "m.main()\n"
    )
    return subprocess.run([sys.executable, "-c", script, "--repo", str(repo), "--issue", str(issue),
                           "--index-dir", str(index_dir), "--format", "json", *extra],
                          capture_output=True, text=True, timeout=120)


def test_without_a_static_model_the_cli_falls_back_to_bm25_with_one_note(sample_repo, index_dir, tmp_path):
    build = _build_without_static(tmp_path)
    result = _run_cli(build, sample_repo, index_dir)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "note:" in line]
    assert len(notes) == 1 and "default retriever is bm25" in notes[0]
    assert '"files"' in result.stdout
    # an explicit retriever, or --quiet, says nothing
    for extra in (["--retriever", "bm25"], ["-q"]):
        again = _run_cli(build, sample_repo, index_dir, *extra)
        assert again.returncode == 0 and "note:" not in again.stderr, again.stderr
