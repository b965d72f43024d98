"""The history index: ancestors only, incremental equals cold, renames, shallow clones, no git."""

from __future__ import annotations

import subprocess
from pathlib import Path


from indexer.history.build import HistoryConfig, build_history
from indexer.storage.store import MemoryStore, SQLiteStore
from tests.conftest import commit_all, git, make_git_repo, write_files

PARSER = '''def parse_header(line):
    return line.split(":")


def render_footer(text):
    return text.strip()
'''


def _history_repo(root: Path) -> Path:
    make_git_repo(root, {"pkg/parser.py": PARSER, "pkg/render.py": "def render(x):\n    return x\n"})
    write_files(root, {"pkg/parser.py": PARSER.replace('split(":")', 'split(":", 1)')})
    commit_all(root, "Fix parse_header splitting values that contain a colon")
    write_files(root, {"pkg/render.py": "def render(x):\n    return str(x)\n"})
    commit_all(root, "Render numbers as text")
    return root


def test_records_hold_files_functions_and_messages(tmp_path):
    repo = _history_repo(tmp_path / "repo")
    history = build_history(repo, None, MemoryStore())
    assert history.note is None
    assert [r.subject for r in history.records] == ["Render numbers as text",
                                                    "Fix parse_header splitting values that contain a colon", "initial"]
    assert history.records[2].files == ()  # a root commit: everything looks added, it credits nothing
    fix = history.records[1]
    assert fix.files == ("pkg/parser.py",)
    assert fix.functions == (("pkg/parser.py", "parse_header"),)  # decided at the parent, gold rule
    assert "colon" in fix.terms


def test_only_ancestors_of_the_indexed_commit_are_used(tmp_path):
    """Later commits and other branches name the bug; a snapshot before them must never see them."""
    repo = _history_repo(tmp_path / "repo")
    base = git(repo, "rev-parse", "HEAD").strip()
    write_files(repo, {"pkg/render.py": "def render(x):\n    return repr(x)\n"})
    commit_all(repo, "Fix the FUTURE-BUG in render")
    git(repo, "checkout", "-q", "-b", "other", base)
    write_files(repo, {"pkg/parser.py": PARSER + "\n# branch\n"})
    commit_all(repo, "Branch-only fix of the FUTURE-BUG")
    git(repo, "checkout", "-q", "main")

    history = build_history(repo, base, MemoryStore())
    assert history.commit == base
    assert all("FUTURE-BUG" not in r.message for r in history.records)
    assert len(history.records) == 3
    # and the newest record is the base itself: the snapshot's own commit is its past
    assert history.records[0].sha == base


def test_an_incremental_build_equals_a_cold_one(tmp_path):
    repo = _history_repo(tmp_path / "repo")
    store = SQLiteStore(tmp_path / "index")
    try:
        first = build_history(repo, None, store)
        current = (repo / "pkg/parser.py").read_text()
        write_files(repo, {"pkg/parser.py": current.replace("strip()", "rstrip()")})
        commit_all(repo, "Keep leading spaces in render_footer")
        warm = build_history(repo, None, store)
        assert warm.computed == 1 and first.computed == 3
    finally:
        store.close()
    cold = build_history(repo, None, MemoryStore())
    assert warm.records == cold.records
    assert warm.records[0].functions == (("pkg/parser.py", "render_footer"),)


def test_a_renamed_file_keeps_its_record_of_the_rename(tmp_path):
    repo = _history_repo(tmp_path / "repo")
    git(repo, "mv", "pkg/parser.py", "pkg/headers.py")
    commit_all(repo, "Move the parser to headers")
    history = build_history(repo, None, MemoryStore())
    assert history.records[0].renames == (("pkg/parser.py", "pkg/headers.py"),)


def test_the_window_is_capped(tmp_path):
    repo = _history_repo(tmp_path / "repo")
    history = build_history(repo, None, MemoryStore(), HistoryConfig(max_commits=1))
    assert [r.subject for r in history.records] == ["Render numbers as text"]


def test_a_plain_directory_and_an_empty_repository_have_no_history(tmp_path):
    plain = tmp_path / "plain"
    write_files(plain, {"a.py": "def f():\n    pass\n"})
    history = build_history(plain, None, MemoryStore())
    assert history.records == [] and "not a git repository" in history.note
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    history = build_history(empty, None, MemoryStore())
    assert history.records == [] and "no commits" in history.note


def test_a_shallow_clone_keeps_what_it_has_and_says_so(tmp_path):
    repo = _history_repo(tmp_path / "repo")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "2", f"file://{repo}", str(clone)], check=True)
    history = build_history(clone, None, MemoryStore())
    assert "shallow" in history.note
    # the boundary commit looks like a root (everything added): it credits nothing
    assert [r.subject for r in history.records if r.files] == ["Render numbers as text"]
