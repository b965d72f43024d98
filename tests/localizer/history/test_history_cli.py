"""History as a user meets it: evidence in the JSON, past fixes in triage, a note without git history."""

from __future__ import annotations

import json

from tests.cli_helpers import run
from tests.conftest import write_files
from tests.localizer.history.test_history_ranking import FILES, ISSUE, _repo


def test_json_items_carry_the_similar_past_fixes_that_changed_them(tmp_path):
    repo = _repo(tmp_path / "repo")
    issue = tmp_path / "issue.md"
    issue.write_text(ISSUE)
    result = run("--repo", repo, "--issue", issue, "--format", "json", "--index-dir", tmp_path / "index",
                 "--ranker", "boosts")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    cache = next(item for item in payload["files"] if item["path"] == "pkg/cache.py")
    assert cache["evidence"][0]["subject"] == "Fix stale entries served after the timeout expires"
    assert len(cache["evidence"][0]["sha"]) == 12 and cache["evidence"][0]["date"].count("-") == 2
    util = next(item for item in payload["files"] if item["path"] == "pkg/util.py")
    assert "evidence" not in util  # optional: absent when no similar fix changed the item
    assert set(payload["functions"][0]) >= {"path", "name", "start_line", "end_line", "score"}


def test_no_history_drops_the_evidence(tmp_path):
    repo = _repo(tmp_path / "repo")
    issue = tmp_path / "issue.md"
    issue.write_text(ISSUE)
    result = run("--repo", repo, "--issue", issue, "--format", "json", "--index-dir", tmp_path / "index",
                 "--ranker", "boosts", "--no-history")
    assert result.exit_code == 0
    assert all("evidence" not in item for item in json.loads(result.stdout)["files"])


def test_triage_shows_the_past_fixes_behind_a_suspect(tmp_path):
    repo = _repo(tmp_path / "repo")
    issue = tmp_path / "issue.md"
    issue.write_text(ISSUE)
    result = run("triage", "--repo", repo, "--issue", issue, "--index-dir", tmp_path / "index", "--ranker", "boosts")
    assert result.exit_code == 0, result.stderr
    assert "### Similar past fixes" in result.stdout
    assert "Fix stale entries served after the timeout expires" in result.stdout


def test_a_plain_directory_ranks_with_a_one_line_note(tmp_path):
    plain = tmp_path / "plain"
    write_files(plain, FILES)
    issue = tmp_path / "issue.md"
    issue.write_text(ISSUE)
    result = run("--repo", plain, "--issue", issue, "--format", "json", "--index-dir", tmp_path / "index")
    assert result.exit_code == 0
    assert "localize: note:" in result.stderr and "not a git repository" in result.stderr
    assert json.loads(result.stdout)["files"]
