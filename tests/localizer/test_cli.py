"""The ``localize`` command: JSON contract, stdin, and one-line errors on bad input."""

import json
import subprocess
import sys

import pytest

from indexer.storage.store import SQLiteStore

from tests.cli_helpers import assert_one_line_error, run
from tests.conftest import git, make_git_repo, write_files
from tests.localizer.test_localize import CART_ISSUE


@pytest.fixture
def issue_file(tmp_path):
    path = tmp_path / "issue.md"
    path.write_text(CART_ISSUE)
    return path




def test_json_contract(sample_repo, index_dir, issue_file):
    result = run("--repo", sample_repo, "--issue", issue_file, "--retriever", "bm25", "--index-dir", index_dir,
                 "--format", "json", "--top-k", "4")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload) == {"files", "functions"}
    assert len(payload["files"]) == 4 and len(payload["functions"]) == 4
    for item in payload["files"]:
        assert set(item) == {"path", "score"} and isinstance(item["score"], float)
    for item in payload["functions"]:
        assert set(item) == {"path", "name", "start_line", "end_line", "score"}
        assert isinstance(item["start_line"], int) and item["start_line"] <= item["end_line"]
    assert payload["functions"][0]["name"] == "Cart.total"


def test_level_file_only_and_stdin(sample_repo, index_dir):
    result = run("--repo", sample_repo, "--issue", "-", "--retriever", "bm25", "--index-dir", index_dir,
                 "--format", "json", "--level", "file", input=CART_ISSUE)
    payload = json.loads(result.stdout)
    assert payload["functions"] == [] and payload["files"][0]["path"] == "shop/cart.py"


def test_table_output_names_location(sample_repo, index_dir, issue_file):
    result = run("--repo", sample_repo, "--issue", issue_file, "--retriever", "bm25", "--index-dir", index_dir)
    assert result.exit_code == 0
    assert "shop/cart.py:22-28" in result.stdout and "Cart.total" in result.stdout


def test_help_explains_the_options():
    result = run("--help")
    assert result.exit_code == 0
    for option in ("--repo", "--issue", "--rev", "--retriever", "--model", "--index-dir", "--no-cache", "--device",
                   "--level", "--top-k", "--format"):
        assert option in result.stdout


def test_missing_repo_path(tmp_path, issue_file):
    assert_one_line_error(run("--repo", tmp_path / "nope", "--issue", issue_file, "--retriever", "bm25"), "does not exist")


def test_missing_and_empty_issue(sample_repo, tmp_path, index_dir):
    assert_one_line_error(run("--repo", sample_repo, "--issue", tmp_path / "none.md", "--index-dir", index_dir),
                           "issue file does not exist")
    empty = tmp_path / "empty.md"
    empty.write_text("  \n")
    assert_one_line_error(run("--repo", sample_repo, "--issue", empty, "--index-dir", index_dir), "issue is empty")
    binary = tmp_path / "issue.bin"
    binary.write_bytes(b"\x00\x01\x02")
    assert_one_line_error(run("--repo", sample_repo, "--issue", binary, "--index-dir", index_dir), "binary")
    assert_one_line_error(run("--repo", sample_repo, "--index-dir", index_dir), "missing --issue")


def test_unknown_rev(sample_repo, issue_file, index_dir):
    assert_one_line_error(
        run("--repo", sample_repo, "--issue", issue_file, "--rev", "v9.9", "--retriever", "bm25", "--index-dir", index_dir),
        "unknown revision 'v9.9'",
    )


def test_model_path_that_does_not_load(sample_repo, issue_file, index_dir, tmp_path):
    bogus = tmp_path / "not-a-model"
    bogus.mkdir()
    (bogus / "config.json").write_text("{broken")
    assert_one_line_error(
        run("--repo", sample_repo, "--issue", issue_file, "--model", bogus, "--retriever", "dense", "--index-dir", index_dir),
        "could not load embedding model",
    )
    assert_one_line_error(
        run("--repo", sample_repo, "--issue", issue_file, "--model", tmp_path / "missing-model", "--retriever", "hybrid",
            "--index-dir", index_dir),
        "model path does not exist",
    )


def test_model_with_bm25_is_reported_as_unused(sample_repo, issue_file, index_dir, tmp_path):
    result = run("--repo", sample_repo, "--issue", issue_file, "--retriever", "bm25", "--model",
                 tmp_path / "missing-model", "--index-dir", index_dir)
    assert result.exit_code == 0
    assert "--model is not used by --retriever bm25" in result.stderr


def test_empty_repository(tmp_path, issue_file, index_dir):
    root = tmp_path / "empty"
    root.mkdir()
    git(root, "init", "-q")
    assert_one_line_error(run("--repo", root, "--issue", issue_file, "--retriever", "bm25", "--index-dir", index_dir),
                           "no indexable source files")


def test_non_git_directory_still_works(tmp_path, issue_file, index_dir):
    from tests.sample_repo import SAMPLE_FILES

    write_files(tmp_path / "plain", SAMPLE_FILES)
    result = run("--repo", tmp_path / "plain", "--issue", issue_file, "--retriever", "bm25", "--index-dir", index_dir,
                 "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout)["functions"][0]["name"] == "Cart.total"


def test_corrupt_index_is_rebuilt_not_used(sample_repo, issue_file, index_dir):
    args = ["--repo", sample_repo, "--issue", issue_file, "--retriever", "bm25", "--index-dir", index_dir, "--format", "json"]
    before = json.loads(run(*args).stdout)
    for path in index_dir.glob(SQLiteStore.FILENAME + "*"):
        path.write_bytes(b"\x00garbage" * 64)
    result = run(*args)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == before
    assert "corrupt" in result.stderr


def test_awkward_files_do_not_break_indexing(tmp_path, index_dir):
    repo = make_git_repo(
        tmp_path / "awkward",
        {
            "ok.py": "def parse_header(line):\n    return line.split(':')\n",
            "latin1.py": "# caf\xe9\ndef brew_coffee():\n    return 'caf\xe9'\n".encode("latin-1"),
            "broken.py": "def valid_one():\n    return 1\n\ndef broken(:\n    pass\n  )))\n",
            "blob.py": b"\x00\x01\x02\x03binary",
            "Main.java": "class Main { void run( { }",
        },
    )
    (repo / "link.py").symlink_to("ok.py")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "awkward")
    result = run("--repo", repo, "--issue", "-", "--retriever", "bm25", "--index-dir", index_dir, "--format", "json",
                 input="brew_coffee returns the wrong drink")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["functions"][0]["name"] == "brew_coffee"
    paths = {f["path"] for f in payload["files"]}
    assert "blob.py" not in paths and "link.py" not in paths and {"broken.py", "Main.java"} <= paths
    names = {f["name"] for f in payload["functions"]}
    assert "valid_one" in names


def test_console_script_is_installed_and_prints_version():
    out = subprocess.run([sys.executable, "-m", "localizer.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "localize" in out.stdout


def test_closed_stdin_is_a_one_line_error(sample_repo, index_dir):
    """``--issue -`` with stdin closed used to end in a traceback (issue #26, case 6)."""
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "localizer.cli", "--repo", str(sample_repo), "--issue", "-",
                             "--retriever", "bm25", "--index-dir", str(index_dir)],
                            capture_output=True, text=True, timeout=60, preexec_fn=lambda: os.close(0))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines == ["localize: error: --issue -: stdin is closed; pass the issue on stdin or as a file"], result.stderr
