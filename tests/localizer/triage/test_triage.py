"""Pre-triage reports: pure scoring and rendering, then the command on small repositories."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from indexer.errors import IssueError
from indexer.index import IndexConfig, repo_state_dir
from localizer.api import LocalizeConfig
from localizer.triage.batch import triage_directory
from localizer.triage.confidence import assess, flatness
from localizer.hooks.install import install_hooks
from localizer.triage.owners import (
    UNCOMMITTED,
    BlameLine,
    CommitInfo,
    LOG_FORMAT,
    Owner,
    combine_owners,
    merge_spans,
    parse_blame_porcelain,
    parse_log,
    score_owners,
)
from localizer.hooks.refresh import HookConfig, read_hook_state
from localizer.triage.triager import Excerpt, IssueText, Suspect, TriageConfig, TriageReport, Triager, make_excerpt
from localizer.triage.render import md_code, md_text, render_json, render_markdown, report_fingerprint

from tests.cli_helpers import assert_one_line_error, run
from tests.conftest import commit_all, git, make_git_repo, write_files
from tests.sample_repo import SAMPLE_FILES
from tests.localizer.test_localize import CART_ISSUE

NOW = 1_700_000_000
DAY = 86400




# --------------------------------------------------------------------------- pure: confidence


def test_flat_scores_are_flagged_and_peaked_ones_are_not():
    assert flatness([1.0, 0.99, 0.98, 0.975, 0.97, 0.5, 0.2]).flat
    assert not flatness([1.0, 0.7, 0.6, 0.55, 0.5, 0.3, 0.1]).flat
    # A top suspect that stands out (a boosted file the issue names) is not flat, even over a tie.
    assert not flatness([1.5, 1.0, 0.99, 0.99, 0.99]).flat
    assert flatness([0.9, 0.9]).flat and flatness([0.9, 0.9]).k == 2
    assert flatness([1.0]) is None and flatness([]) is None
    confidence = assess([1.0, 0.99, 0.985], [1.0, 0.5, 0.2])
    assert confidence.flat and "file" in confidence.note and "function" not in confidence.note.split("(")[0]
    assert "candidates, not an answer" in confidence.note
    assert assess([1.0, 0.4], [1.0, 0.3]).note is None


# --------------------------------------------------------------------------- pure: owners


def _line(author, days_ago, sha="a" * 40, email=None):
    return BlameLine(sha, author, email or f"{author.lower()}@x.org", NOW - days_ago * DAY, 1)


def _commit(author, days_ago, email=None, sha="c" * 40, paths=("f.py",)):
    return CommitInfo(sha, author, email or f"{author.lower()}@x.org", NOW - days_ago * DAY, "msg", paths)


def test_owners_rank_recent_and_frequent_authors_first():
    blame = [_line("Old", 3000)] * 6 + [_line("New", 10)] * 4
    commits = [_commit("New", 5), _commit("New", 40), _commit("Old", 3000)]
    owners = score_owners(blame, commits, NOW)
    assert [o.name for o in owners] == ["New", "Old"]
    assert owners[0].lines == 4 and owners[0].commits == 2 and owners[1].lines == 6
    assert abs(sum(o.score for o in owners) - 1.0) < 1e-3


def test_owners_merge_by_email_and_skip_bots_and_uncommitted_lines():
    blame = [_line("Ann", 1, email="ann@x.org"), _line("Ann Smith", 0, email="ANN@x.org"),
             _line("me", 0, sha=UNCOMMITTED), _line("dependabot[bot]", 0)]
    commits = [_commit("github-actions[bot]", 0, email="41898282+github-actions[bot]@users.noreply.github.com")]
    owners = score_owners(blame, commits, NOW)
    assert len(owners) == 1 and owners[0].name == "Ann Smith" and owners[0].lines == 2 and owners[0].score == 1.0
    assert score_owners([], [], NOW) == []
    only_log = score_owners([], [_commit("Bo", 1), _commit("Cy", 2), _commit("Bo", 3)], NOW, limit=1)
    assert [o.name for o in only_log] == ["Bo"]


def test_reviewers_start_with_the_top_owner_of_each_file_in_rank_order():
    a, b, c = (Owner(n, f"{n.lower()}@x", 0.5, 3, 1, NOW) for n in "ABC")
    # B owns more suspects, but A wrote the top one.
    assert [o.name for o in combine_owners([[a, b], [b], [b, c]])] == ["A", "B", "C"]
    assert [o.name for o in combine_owners([[b, a], [b, c]], limit=2)] == ["B", "A"]
    assert combine_owners([[], []]) == []


def test_parse_git_output():
    log_text = (f"\x1e{'1' * 40}\x1fAnn\x1fann@x.org\x1f{NOW}\x1fFix #3 -- a | b\n\nsrc/a.py\nsrc/b.py\n"
                f"\x1e{'2' * 40}\x1fBo\x1fbo@x.org\x1f{NOW - 5}\x1fInitial\n\nsrc/a.py\n")
    commits = parse_log(log_text)
    assert [c.author for c in commits] == ["Ann", "Bo"]
    assert commits[0].paths == ("src/a.py", "src/b.py") and commits[0].summary == "Fix #3 -- a | b"
    assert LOG_FORMAT.startswith("--format=")
    porcelain = (
        f"{'a' * 40} 3 10 1\nauthor Ann\nauthor-mail <ann@x.org>\nauthor-time {NOW}\nauthor-tz +0000\n"
        f"summary s\nfilename f.py\n\tcode line\n"
        f"{UNCOMMITTED} 4 11\nauthor Not Committed Yet\nauthor-mail <not.committed.yet>\nauthor-time {NOW}\n"
        f"filename f.py\n\t    other line\n"
    )
    lines = parse_blame_porcelain(porcelain)
    assert [(line.author, line.email, line.line) for line in lines] == [
        ("Ann", "ann@x.org", 10), ("Not Committed Yet", "not.committed.yet", 11)]
    assert merge_spans([(10, 20), (1, 3), (15, 30), (4, 5), (40, 41)]) == [(1, 5), (10, 30), (40, 41)]


# --------------------------------------------------------------------------- pure: issue text, excerpts, rendering


def test_issue_text_parsing_and_bad_input():
    issue = IssueText.parse("\n# Crash on save\n\nTraceback ...\n", "x.md")
    assert issue.title == "Crash on save" and issue.body == "Traceback ..."
    assert IssueText.from_parts("Title only", None).text == "Title only"
    with pytest.raises(IssueError, match="empty"):
        IssueText.parse(" \n\t\n", "x.md")
    with pytest.raises(IssueError, match="binary"):
        IssueText.parse("PNG\0\0", "x.md")
    with pytest.raises(IssueError, match="empty"):
        IssueText.from_parts("", "  ")


def test_excerpt_is_dedented_short_and_marked_truncated():
    lines = ["class A:", "    def f(self):", "        x = 1", "        return x", "", "    def g(self):"]
    excerpt = make_excerpt(lines, 2, 5, 2, "python")
    assert excerpt.text == "def f(self):\n    x = 1" and excerpt.truncated and excerpt.start_line == 2
    whole = make_excerpt(lines, 2, 5, 10, "python")
    assert whole.text.endswith("return x") and not whole.truncated
    assert make_excerpt(None, 1, 2, 5, None) is None and make_excerpt(lines, 99, 100, 5, None) is None


def _report(**overrides) -> TriageReport:
    owner = Owner("Ann @dev | lead", "ann@example.org", 0.8, 4, 2, NOW)
    base = dict(
        issue=IssueText("Total is wrong", "body", "issue.md"),
        repo="/r",
        head="main @ 0123456789ab",
        commit="0123456789ab" + "0" * 28,
        retriever="bm25",
        files=[Suspect(1, "file", "src/cart.py", "", 1, 40, 1.0, Excerpt(10, "def total():\n    pass", "python", False),
                       "Cart.total", (owner,))],
        functions=[Suspect(1, "method", "src/cart.py", "Cart.total", 10, 20, 0.9,
                           Excerpt(10, "x = '```'\nreturn x", "python", True))],
        reviewers=[owner],
        recent_commits=[CommitInfo("f" * 40, "Bo", "bo@example.org", NOW, "Fix @someone's bug", ("src/cart.py",))],
        confidence=assess([1.0, 0.4], [1.0, 0.3]),
        notes=["shallow clone: blame is unavailable"],
        generator="localizer 0.1.0",
    )
    base.update(overrides)
    return TriageReport(**base)


def test_markdown_report_escapes_mentions_and_hides_emails():
    text = render_markdown(_report())
    assert "`src/cart.py:10-20`" in text and "`Cart.total`" in text and "0.900" in text
    assert "`src/cart.py:1-40`" in text and "| 1.000 |" in text
    assert not re.search(r"@\w", text)  # no accidental @mentions (or emails)
    assert "ann@example.org" not in text and "bo@example.org" not in text
    assert "Ann &#64;dev \\| lead" in text
    assert "````python\nx = '```'\nreturn x\n…\n````" in text  # fence longer than the code's backticks
    assert "shallow clone" in text and "Low confidence" not in text
    assert text.count("<details>") == 1  # the file's focus excerpt is the function's, shown once
    with_emails = render_markdown(_report(), show_emails=True)
    assert "ann@example.org" in with_emails and "bo@example.org" in with_emails


def test_an_author_without_a_name_never_shows_their_email_unasked():
    """An empty author name used to fall back to the email, leaking it without --show-emails (#26, case 4)."""
    nameless = Owner("", "dee@example.org", 0.5, 2, 1, NOW)
    report = _report(reviewers=[nameless],
                     files=[Suspect(1, "file", "src/cart.py", "", 1, 40, 1.0, None, "", (nameless,))],
                     recent_commits=[CommitInfo("e" * 40, " ", "dee@example.org", NOW, "Tweak", ("src/cart.py",))])
    text = render_markdown(report)
    assert "dee@example.org" not in text
    assert "**Suggested reviewers:** (unnamed author)" in text
    assert text.count("(unnamed author)") == 3  # reviewer, file owner, commit author
    assert "dee@example.org" in render_markdown(report, show_emails=True)


def test_flat_report_says_so_and_fingerprint_round_trips():
    flat = assess([1.0, 0.99, 0.98], [1.0, 0.995, 0.99])
    report = _report(confidence=flat, fingerprint="abc123")
    text = render_markdown(report)
    assert "Low confidence" in text and report_fingerprint(text) == "abc123"
    payload = json.loads(render_json(report))
    assert payload["confidence"]["flat"] and report_fingerprint(render_json(report)) == "abc123"
    assert payload["files"][0]["owners"][0]["email"] is None
    assert json.loads(render_json(report, show_emails=True))["files"][0]["owners"][0]["email"] == "ann@example.org"
    assert md_code("a`b|c") == "``a`b\\|c``" and md_text("x|y") == "x\\|y"


# --------------------------------------------------------------------------- the command on a real repository


@pytest.fixture
def history_repo(tmp_path):
    """The sample shop with a little history: two authors, and the cart last touched by Bea."""
    repo = make_git_repo(tmp_path / "shop", SAMPLE_FILES)
    cart = repo / "shop/cart.py"
    text = cart.read_text()
    body = text[text.index('        """Total price after the coupon discount."""'):]
    cart.write_text(text.replace(body, '''        """Total price after the coupon discount, in cents."""
        subtotal = sum(qty * price for _, qty, price in self.items)
        discounted = apply_coupon(subtotal, self.coupon)
        if self.coupon:  # once more
            discounted = apply_coupon(discounted, self.coupon)
        return round(discounted, 2)  # cents
'''))
    env = {**os.environ, "GIT_AUTHOR_NAME": "Bea Coder", "GIT_AUTHOR_EMAIL": "bea@example.org",
           "GIT_COMMITTER_NAME": "Bea Coder", "GIT_COMMITTER_EMAIL": "bea@example.org"}
    subprocess.run(["git", "-C", str(repo), "commit", "-qam", "Round the cart total to cents"], check=True, env=env)
    return repo


@pytest.fixture
def issue_file(tmp_path):
    path = tmp_path / "issue.md"
    path.write_text(CART_ISSUE)
    return path


def _triage(repo, index_dir, *args, input=None):
    return run("triage", "--repo", repo, "--retriever", "bm25", "--index-dir", index_dir, "-q", *args, input=input)


def test_triage_markdown_names_suspects_owners_and_commits(history_repo, index_dir, issue_file):
    result = _triage(history_repo, index_dir, "--issue", issue_file)
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert text.startswith("## Pre-triage")
    assert "`shop/cart.py:22-28`" in text and "`Cart.total`" in text
    assert "def total(self):" in text and "```python" in text
    # Blame over the suspect spans in cart.py (total, __init__, remove_item): Bea rewrote 4 of their 12 lines.
    assert "Test Author (8 lines, 1 commit" in text and "Bea Coder (4 lines, 1 commit" in text
    assert "**Suggested reviewers:** Test Author, Bea Coder" in text
    assert "Round the cart total to cents" in text
    assert "bea@example.org" not in text and "author@example.com" not in text
    shown = _triage(history_repo, index_dir, "--issue", issue_file, "--show-emails").stdout
    assert "bea@example.org" in shown


def test_triage_json_carries_the_same_data(history_repo, index_dir, issue_file):
    markdown = _triage(history_repo, index_dir, "--issue", issue_file).stdout
    result = _triage(history_repo, index_dir, "--issue", issue_file, "--format", "json", "--top-k", "3")
    payload = json.loads(result.stdout)
    assert {"issue", "files", "functions", "reviewers", "recent_commits", "confidence", "notes", "head"} <= set(payload)
    assert payload["functions"][0]["name"] == "Cart.total" and payload["functions"][0]["start_line"] == 22
    assert len(payload["functions"]) == 3 and len(payload["files"]) == 3
    assert payload["functions"][0]["excerpt"]["text"].startswith("def total(self):")
    cart = payload["files"][0]
    assert cart["path"] == "shop/cart.py" and [o["name"] for o in cart["owners"]] == ["Test Author", "Bea Coder"]
    assert cart["owners"][1]["lines"] == 4 and cart["owners"][1]["commits"] == 1
    assert cart["owners"][0]["email"] is None and cart["focus"] == "Cart.total"
    assert payload["recent_commits"][0]["summary"] == "Round the cart total to cents"
    assert payload["issue"]["title"] == "Cart total applies the coupon discount twice"
    assert payload["issue"]["title"] in CART_ISSUE and "Cart.total" in markdown


def test_triage_from_title_and_body_and_stdin(history_repo, index_dir, tmp_path):
    result = _triage(history_repo, index_dir, "--title", "Cart total applies the coupon twice",
                     "--body", "A 10% coupon takes 19% off the cart total.")
    assert result.exit_code == 0 and "`Cart.total`" in result.stdout
    piped = _triage(history_repo, index_dir, "--issue", "-", input=CART_ISSUE)
    assert "`Cart.total`" in piped.stdout
    body = _triage(history_repo, index_dir, "--title", "Coupon", "--body", "-", input="applied twice to total\n")
    assert body.exit_code == 0
    out = tmp_path / "report.md"
    written = _triage(history_repo, index_dir, "--issue", "-", "--output", out, input=CART_ISSUE)
    assert written.exit_code == 0 and written.stdout == "" and out.read_text().startswith("## Pre-triage")


def test_triage_bad_issue_input_gets_one_line_errors(history_repo, index_dir, tmp_path):
    empty = tmp_path / "empty.md"
    empty.write_text("\n  \n")
    binary = tmp_path / "shot.md"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    assert_one_line_error(_triage(history_repo, index_dir, "--issue", empty), "issue is empty")
    assert_one_line_error(_triage(history_repo, index_dir, "--issue", binary), "looks binary")
    assert_one_line_error(_triage(history_repo, index_dir, "--issue", tmp_path / "nope.md"), "does not exist")
    assert_one_line_error(_triage(history_repo, index_dir, "--issue", "-", input="\0\0binary"), "binary")
    assert_one_line_error(_triage(history_repo, index_dir, "--title", " ", "--body", ""), "issue is empty")
    usage = _triage(history_repo, index_dir, "--issue", empty, "--issues-dir", tmp_path)
    assert usage.exit_code == 2 and "exactly one of" in usage.stderr
    assert _triage(history_repo, index_dir).exit_code == 2


def test_shallow_clone_still_ranks_and_says_blame_is_unavailable(history_repo, index_dir, tmp_path, issue_file):
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{history_repo}", str(shallow)], check=True)
    result = _triage(shallow, index_dir, "--issue", issue_file, "--format", "json")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["functions"][0]["name"] == "Cart.total"
    assert any("shallow clone: blame is unavailable" in note for note in payload["notes"])
    # The one commit present is the graft point, which "adds" every file: it is no evidence of ownership.
    assert all(not f["owners"] for f in payload["files"]) and payload["recent_commits"] == []


def test_repository_without_commits_ranks_staged_files(tmp_path, index_dir, issue_file):
    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write_files(repo, {k: v for k, v in SAMPLE_FILES.items() if k.startswith("shop/")})
    git(repo, "add", "-A")
    result = _triage(repo, index_dir, "--issue", issue_file)
    assert result.exit_code == 0, result.stderr
    assert "`Cart.total`" in result.stdout and "no commits yet" in result.stdout
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    git(nothing, "init", "-q")
    assert_one_line_error(_triage(nothing, index_dir, "--issue", issue_file), "no indexable source files")


def test_detached_head_and_rebase_in_progress_are_noted(history_repo, index_dir, issue_file):
    git(history_repo, "checkout", "-q", "--detach", "HEAD~1")
    result = _triage(history_repo, index_dir, "--issue", issue_file)
    assert "HEAD is detached at" in result.stdout and "`Cart.total`" in result.stdout
    assert "Round the cart total to cents" not in result.stdout  # history is read from the detached commit
    (history_repo / ".git/rebase-merge").mkdir()
    assert "a rebase is in progress" in _triage(history_repo, index_dir, "--issue", issue_file).stdout


def test_plain_directory_ranks_without_owners(tmp_path, index_dir, issue_file):
    plain = tmp_path / "plain"
    write_files(plain, {k: v for k, v in SAMPLE_FILES.items() if k.startswith("shop/")})
    result = _triage(plain, index_dir, "--issue", issue_file)
    assert result.exit_code == 0 and "not a git repository" in result.stdout and "`Cart.total`" in result.stdout


def test_flat_ranking_gets_a_confidence_note(tmp_path, index_dir):
    files = {f"pkg/mod{i}.py": "def handle(request):\n    return request\n" for i in range(8)}
    repo = make_git_repo(tmp_path / "flat", files)
    result = _triage(repo, index_dir, "--title", "handle request is broken", "--body", "it fails")
    assert result.exit_code == 0 and "Low confidence" in result.stdout


def test_rev_option_reads_history_and_code_at_that_commit(history_repo, index_dir, issue_file):
    result = _triage(history_repo, index_dir, "--issue", issue_file, "--rev", "HEAD~1", "--format", "json")
    payload = json.loads(result.stdout)
    assert payload["head"].startswith("HEAD~1 @ ")
    assert all(c["summary"] != "Round the cart total to cents" for c in payload["recent_commits"])
    assert "# cents" not in json.dumps(payload["functions"][0]["excerpt"])


# --------------------------------------------------------------------------- a directory of issues


def test_issues_dir_writes_one_report_each_and_skips_up_to_date(history_repo, index_dir, tmp_path):
    issues = tmp_path / "issues"
    issues.mkdir()
    (issues / "0001-cart.md").write_text(CART_ISSUE)
    (issues / "0002-queue.txt").write_text("Popping an empty job queue panics\n\nQueue.Pop index out of range\n")
    (issues / "0003-empty.md").write_text("   \n")
    (issues / "0004-shot.md").write_bytes(b"\x89PNG\0\0\0")
    (issues / "notes.json").write_text("{}")  # not an issue file
    first = _triage(history_repo, index_dir, "--issues-dir", issues)
    assert first.exit_code == 1  # two bad issue files, reported, the rest still done
    assert "skipped" in first.stderr and "0003-empty.md: the issue is empty" in first.stderr
    assert "0004-shot.md" in first.stderr and "looks binary" in first.stderr
    assert "2 written, 0 up to date, 2 failed" in first.stderr
    cart, queue = issues / "reports/0001-cart.triage.md", issues / "reports/0002-queue.triage.md"
    assert "`Cart.total`" in cart.read_text() and "`Queue.Pop`" in queue.read_text()
    stamps = {p: p.stat().st_mtime_ns for p in (cart, queue)}

    (issues / "0003-empty.md").unlink()
    (issues / "0004-shot.md").unlink()
    again = _triage(history_repo, index_dir, "--issues-dir", issues)
    assert again.exit_code == 0 and "0 written, 2 up to date" in again.stderr
    assert stamps == {p: p.stat().st_mtime_ns for p in (cart, queue)}

    (issues / "0002-queue.txt").write_text("Popping an empty queue panics\n\nPop on an empty Queue\n")
    edited = _triage(history_repo, index_dir, "--issues-dir", issues)
    assert "1 written, 1 up to date" in edited.stderr and stamps[cart] == cart.stat().st_mtime_ns

    (history_repo / "shop/payment.py").write_text("def charge_card(card, amount):\n    return amount\n")
    commit_all(history_repo, "Simplify payments")
    moved = _triage(history_repo, index_dir, "--issues-dir", issues)
    assert "2 written, 0 up to date" in moved.stderr  # the code changed: every report is stale
    forced = _triage(history_repo, index_dir, "--issues-dir", issues, "--force", "--format", "json",
                     "--out-dir", tmp_path / "json")
    assert "2 written" in forced.stderr and json.loads((tmp_path / "json/0001-cart.triage.json").read_text())
    missing = _triage(history_repo, index_dir, "--issues-dir", tmp_path / "nope")
    assert_one_line_error(missing, "issues directory does not exist")


def test_library_batch_and_triager_reuse_one_index(history_repo, index_dir, tmp_path):
    issues = tmp_path / "issues"
    issues.mkdir()
    (issues / "a.md").write_text(CART_ISSUE)
    (issues / "a.txt").write_text(CART_ISSUE)  # same stem: reports keep full names
    config = TriageConfig(localize=LocalizeConfig(retriever="bm25", index=IndexConfig(index_dir=index_dir)))
    triager = Triager(history_repo, config)
    result = triage_directory(history_repo, issues, config, triager=triager)
    assert sorted(p.name for p in result.written) == ["a.md.triage.md", "a.txt.triage.md"]
    assert result.summary()["written"] == 2


def test_hook_keeps_issue_reports_fresh(history_repo, tmp_path):
    index_dir = tmp_path / "idx"
    issues = history_repo / "issues"
    issues.mkdir()
    (issues / "cart.md").write_text(CART_ISSUE)
    install_hooks(history_repo, HookConfig(retriever="bm25", index_dir=str(index_dir), issues_dir="issues"))
    (history_repo / "shop/inventory.py").write_text("def reserve_stock(sku, quantity):\n    return quantity\n")
    commit = commit_all(history_repo, "Simplify inventory")
    state_dir = repo_state_dir(index_dir, history_repo.resolve())
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        success = (read_hook_state(state_dir) or {}).get("last_success") or {}
        if success.get("commit") == commit:
            break
        time.sleep(0.1)
    assert success.get("commit") == commit, read_hook_state(state_dir)
    assert success["triage"]["written"] == 1
    assert "`Cart.total`" in (issues / "reports/cart.triage.md").read_text()
