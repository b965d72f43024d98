"""indexer.git: the one git runner, the one cat-file reader, and the diff parser's new home."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from indexer.errors import RepositoryError
from indexer.git import FilePatch, GitBlobReader, GitError, functions_touched, parse_patch, run_git
from indexer.git.runner import GIT_NOT_FOUND, last_line

from tests.conftest import commit_all, git, make_git_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_git_repo(tmp_path / "repo", {"a.py": "def f():\n    return 1\n", "docs/b.txt": "bee\n"})


# --------------------------------------------------------------------------- runner


def test_run_git_returns_output_and_turns_failures_into_one_line_errors(repo: Path) -> None:
    assert run_git(["rev-parse", "--is-bare-repository"], repo=repo, text=True).stdout == "false\n"
    assert run_git(["cat-file", "-p", "HEAD:a.py"], repo=repo).stdout == b"def f():\n    return 1\n"
    with pytest.raises(GitError) as caught:
        run_git(["rev-parse", "--verify", "no-such-branch"], repo=repo)
    error = caught.value
    assert isinstance(error, RepositoryError)  # the CLI prints it as one line
    assert "\n" not in str(error)
    assert str(error).startswith(f"git rev-parse --verify failed in {repo}: fatal:")
    assert error.returncode != 0 and "fatal" in error.stderr and error.command[:3] == ("git", "-C", str(repo))


def test_run_git_without_check_leaves_the_exit_status_to_the_caller(repo: Path) -> None:
    result = run_git(["rev-parse", "--verify", "--quiet", "no-such-branch"], repo=repo, check=False)
    assert result.returncode != 0 and result.stdout == b""


def test_run_git_env_replaces_the_environment(repo: Path) -> None:
    env = {"PATH": os.environ["PATH"], "GIT_DIR": str(repo / "nowhere")}
    assert run_git(["rev-parse", "HEAD"], repo=repo, check=False, env=env).returncode != 0
    assert run_git(["rev-parse", "HEAD"], repo=repo, check=False).returncode == 0


def test_missing_git_is_a_repository_error(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(repo / "empty-bin"))
    with pytest.raises(RepositoryError, match=GIT_NOT_FOUND):
        run_git(["status"], repo=repo)
    with pytest.raises(RepositoryError, match=GIT_NOT_FOUND):
        GitBlobReader(repo).get("HEAD:a.py")


def test_last_line_skips_hints_and_blank_lines() -> None:
    assert last_line("hint: try this\n\nfatal: it broke\n\n") == "fatal: it broke"
    assert last_line(b"") == "unknown error"


# --------------------------------------------------------------------------- blobs


def test_blob_reader_reads_by_sha_and_by_commit_path(repo: Path) -> None:
    sha = git(repo, "rev-parse", "HEAD:a.py").strip()
    with GitBlobReader(repo) as reader:
        assert reader.read(sha) == b"def f():\n    return 1\n"
        assert reader.get("HEAD:docs/b.txt") == b"bee\n"
        assert reader("HEAD", "a.py") == reader.read(sha)  # the read_blob(commit, path) of gold labels


def test_blob_reader_missing_objects_none_for_get_error_for_read(repo: Path) -> None:
    with GitBlobReader(repo) as reader:
        assert reader("HEAD", "nope.py") is None
        assert reader.get("0" * 40) is None
        assert reader.get("HEAD:docs") is None  # a tree, not a blob
        assert reader.get("HEAD:a.py\nHEAD:a.py") is None  # would be two requests
        with pytest.raises(RepositoryError, match="missing"):
            reader.read("0" * 40)
        assert reader("HEAD", "a.py") is not None  # still in step after the misses


def test_blob_reader_restarts_after_close_and_sees_new_commits(repo: Path) -> None:
    reader = GitBlobReader(repo)
    first = reader("HEAD", "a.py")
    reader.close()
    reader.close()  # twice is fine
    (repo / "a.py").write_text("def f():\n    return 2\n")
    commit = commit_all(repo, "two")
    assert reader(commit, "a.py") == b"def f():\n    return 2\n" != first
    reader.close()


def test_blob_reader_in_a_bare_repository_and_from_threads(repo: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    results: list[bytes | None] = []
    with GitBlobReader(bare) as reader:
        threads = [threading.Thread(target=lambda: results.append(reader("HEAD", "docs/b.txt"))) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results == [b"bee\n"] * 8


def test_blob_reader_outside_a_repository_fails_clearly(tmp_path: Path) -> None:
    with GitBlobReader(tmp_path / "not-there") as reader:
        with pytest.raises(RepositoryError, match="cat-file stopped"):
            reader.get("HEAD:a.py")


# --------------------------------------------------------------------------- diff


def test_parse_patch_and_functions_touched_from_indexer() -> None:
    [fp] = parse_patch("--- a/m.py\n+++ b/m.py\n@@ -2 +2 @@\n-    return 1\n+    return 2\n")
    assert fp == FilePatch("m.py", "m.py", (2,), (2,), ())
    from indexer.chunking.chunk import Chunk

    chunks = [Chunk("m.py", "f", "function", 1, 2, "python", ""), Chunk("m.py", "g", "function", 4, 5, "python", "")]
    assert functions_touched(fp, chunks, "def f():\n    return 1\n\ndef g():\n    pass\n") == ["f"]
