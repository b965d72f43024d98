"""HistoryReader against real git: owners from blame and log, and each blame failure told apart."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from localizer.triage.gitinfo import read_repo_state
from localizer.triage.owners import HistoryReader

from tests.conftest import commit_all, make_git_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_git_repo(tmp_path / "repo", {"a.py": "def f():\n    return 1\n"})
    (root / "a.py").write_text("def f():\n    return 2\n")
    commit_all(root, "Return two")
    return root


def test_owners_and_commits_from_blame_and_log(repo: Path) -> None:
    history = HistoryReader(read_repo_state(repo)).read({"a.py": [(1, 2)]})
    file = history.files["a.py"]
    assert [c.summary for c in file.commits] == ["Return two", "initial"]
    assert file.blamed_lines == 2 and file.note is None
    assert [o.name for o in file.owners] == ["Test Author"]


def test_blame_failures_become_notes_not_errors(repo: Path) -> None:
    (repo / "new.py").write_text("def g():\n    pass\n")
    reader = HistoryReader(read_repo_state(repo))
    history = reader.read({"new.py": [(1, 2)], "a.py": [(5, 8)]})  # a.py has 2 lines
    assert history.files["new.py"].note == "not committed yet"
    assert history.files["a.py"].note == "blame failed: line numbers out of date"
    reader.close()


def test_a_bad_revision_logs_one_line_and_reads_no_history(repo: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="localizer.triage.owners"):
        history = HistoryReader(read_repo_state(repo), rev="no-such-rev", blame=False).read({"a.py": []})
    assert history.recent == [] and history.files["a.py"].note == "no commits touch this file"
    [record] = caplog.records
    assert record.getMessage().startswith("git log failed: fatal:") and "\n" not in record.getMessage()


def test_history_of_non_ascii_and_quoted_paths_is_kept(tmp_path: Path) -> None:
    """git C-quotes such names without -z, and a quoted name never matched its suspect (#26, case 8)."""
    names = ["naïve.py", 'q"uote.py', "tab\tname.py"]
    root = make_git_repo(tmp_path / "odd", {name: "def f():\n    return 1\n" for name in names})
    (root / names[0]).write_text("def f():\n    return 2\n")
    commit_all(root, "Change the naive one")
    history = HistoryReader(read_repo_state(root), blame=False).read({name: [] for name in names})
    assert [c.summary for c in history.files["naïve.py"].commits] == ["Change the naive one", "initial"]
    for name in names[1:]:
        assert [c.summary for c in history.files[name].commits] == ["initial"], name
        assert history.files[name].note is None
