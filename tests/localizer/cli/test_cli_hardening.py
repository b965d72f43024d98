"""The CLI edge against an unwritable file system and odd issue encodings (issue #26, cases 6 and 9)."""

from __future__ import annotations

import json

import pytest

from localizer.api import Localizer

from tests.cli_helpers import assert_one_line_error, run
from tests.localizer.test_localize import CART_ISSUE


@pytest.fixture
def issue_file(tmp_path):
    path = tmp_path / "issue.md"
    path.write_text(CART_ISSUE)
    return path


@pytest.fixture
def blocker(tmp_path):
    """A regular file where a directory should be: unwritable even for root, unlike a chmod."""
    path = tmp_path / "not-a-dir"
    path.write_text("")
    return path


def _triage(repo, index_dir, *args, input=None):
    return run("triage", "--repo", repo, "--retriever", "bm25", "--index-dir", index_dir, "-q", *args, input=input)


def test_triage_output_to_an_unwritable_path_is_one_line(sample_repo, index_dir, issue_file, blocker):
    result = _triage(sample_repo, index_dir, "--issue", issue_file, "--output", blocker / "report.md")
    assert_one_line_error(result, f"cannot write the report to {blocker / 'report.md'}")


def test_triage_unwritable_out_dir_is_one_line(sample_repo, index_dir, tmp_path, blocker):
    issues = tmp_path / "issues"
    issues.mkdir()
    (issues / "0001-cart.md").write_text(CART_ISSUE)
    result = _triage(sample_repo, index_dir, "--issues-dir", issues, "--out-dir", blocker / "reports")
    assert_one_line_error(result, f"cannot write reports to {blocker / 'reports'}")


def test_any_os_error_below_the_cli_is_one_line(sample_repo, index_dir, issue_file, monkeypatch):
    def full_disk(self):
        raise OSError(28, "No space left on device", str(index_dir / "store.sqlite"))

    monkeypatch.setattr(Localizer, "index", full_disk)
    result = run("--repo", sample_repo, "--issue", issue_file, "--retriever", "bm25", "--index-dir", index_dir)
    assert_one_line_error(result, f"{index_dir / 'store.sqlite'}: No space left on device")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "utf-16-be", "utf-32"])
def test_an_issue_file_with_a_byte_order_mark_is_read(sample_repo, index_dir, tmp_path, encoding):
    """A UTF-16 issue (Windows editors) used to be refused as binary; a UTF-8 one kept its BOM in the title."""
    path = tmp_path / "issue.md"
    data = CART_ISSUE.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    path.write_bytes(data)
    result = run("--repo", sample_repo, "--issue", path, "--retriever", "bm25", "--index-dir", index_dir,
                 "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["functions"][0]["name"] == "Cart.total"
    stdin = run("--repo", sample_repo, "--issue", "-", "--retriever", "bm25", "--index-dir", index_dir,
                "--format", "json", input=data)
    assert stdin.exit_code == 0, stdin.stderr
    assert json.loads(stdin.stdout) == json.loads(result.stdout)
