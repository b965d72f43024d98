"""Queries a repository's history gives the learned ranker: commit messages, and what they changed.

A commit message is an issue written after the fact: prose about a behaviour, attached to the files
and functions that had to change. For a repository we take a few snapshots S back along its
history and, for each, the commits that came *after* S as queries:

* the index and the history are those of S: the query commit is never in its own history, and
  no feature reads anything S did not have (the same ancestors-only rule as ``localize``);
* labels are the files the commit changed and the functions it changed (decided at its parent with
  the gold rule, :func:`indexer.history.build.commit_record`) that exist in S's index;
* messages that are only bookkeeping (releases, merges, typos, formatting) are skipped, as in the
  embedder's commit pairs, and commits that say they fix something come first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from indexer.git.blobs import GitBlobReader
from indexer.git.log import LogLimits, RawCommit, iter_commits
from indexer.git.runner import GitError, run_git
from indexer.history.build import HistoryConfig, commit_record
from indexer.history.records import CommitRecord

from localizer.history.view import FIX_WORDS

from cornstack_train.data.commits import clean_message, skip_reason_for_message

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MiningConfig:
    """``offsets``: how far back (in first-parent commits from HEAD) each snapshot sits; far enough
    apart that their query commits differ. ``queries``: at most this many per snapshot, out of the
    ``lookahead`` commits that follow it."""

    offsets: tuple[int, ...] = (150, 600, 1500)
    queries: int = 30
    lookahead: int = 200
    max_files: int = 5
    min_words: int = 3


@dataclass(frozen=True)
class Query:
    """One commit as a localization query at a snapshot."""

    repo: str
    snapshot: str
    commit: str
    text: str
    files: tuple[str, ...]
    functions: tuple[tuple[str, str], ...]
    is_fix: bool


def snapshots(repo: Path, offsets: tuple[int, ...], head: str = "HEAD") -> list[str]:
    """The first-parent commits ``offsets`` back from ``head`` (those the history is long enough for)."""
    shas = run_git(["rev-list", "--first-parent", f"--max-count={max(offsets) + 1}", head, "--"], repo=repo,
                   text=True).stdout.split()
    return [shas[o] for o in offsets if o < len(shas)]


def queries_after(repo: Path, snapshot: str, config: MiningConfig, history: HistoryConfig,
                  head: str = "HEAD") -> list[Query]:
    """The usable commits after ``snapshot`` up to ``head`` (descendants of the snapshot only), fixes first."""
    after = run_git(["rev-list", "--no-merges", "--reverse", "--ancestry-path", f"{snapshot}..{head}", "--"],
                    repo=repo, text=True).stdout.split()[: config.lookahead]
    if not after:
        return []
    found: list[Query] = []
    with GitBlobReader(repo) as reader:
        for raw in _readable_commits(repo, after, LogLimits(history.bulk_files, history.max_changed_lines)):
            if skip_reason_for_message(raw.message):
                continue
            text = clean_message(raw.message)
            if len(text.split()) < config.min_words:
                continue
            record: CommitRecord = commit_record(raw, reader, history)
            if record.bulk or not record.files or len(record.files) > config.max_files:
                continue
            found.append(Query(repo.name, snapshot, raw.sha, text, record.files, record.functions,
                               bool(FIX_WORDS.search(text))))
    order = {sha: i for i, sha in enumerate(after)}
    found.sort(key=lambda q: (not q.is_fix, order[q.commit]))
    return found[: config.queries]


def _readable_commits(repo: Path, shas: list[str], limits: LogLimits) -> list[RawCommit]:
    """The commits git can diff: a partial mirror (large blobs left out) fails some of them, and those
    are left out as queries rather than losing the repository."""
    for renames in (True, False):
        commits: list[RawCommit] = []
        try:
            commits.extend(iter_commits(repo, only=shas, limits=limits, renames=renames))
            return commits
        except GitError as exc:
            log.warning("%s: %s", repo.name, exc)
    return commits
