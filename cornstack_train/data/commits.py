"""Commit-message pairs: a commit's message is the query, the functions it changed are the positives.

A commit message is the closest thing in a repository to an issue paired with
its fix: prose about a behaviour, attached to the code that had to change. The
positives are the functions *as they were before the commit* (in the first
parent), because at localization time the model sees the unfixed code. Which
functions a diff touches is decided exactly as SWE-bench gold functions are
(:func:`indexer.git.diff.functions_touched`): removed lines credit the
function holding them, insertions the function they land in.

Commits that make poor queries are skipped: merges, huge commits (the message
cannot describe each of dozens of files), commits touching many functions, and
messages that are only a version bump, release, revert, merge, typo or
formatting change.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from indexer.filters import FileFilter
from indexer.git.blobs import GitBlobReader
from indexer.git.diff import parse_patch
from indexer.git.log import LogLimits, RawCommit
from indexer.git.log import iter_commits as read_commits
from indexer.git.runner import GitError
from indexer.chunking.languages import language_for_path
from indexer.history.changes import touched_definitions

from cornstack_train.data.docstrings import function_code

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommitConfig:
    """Which commits become pairs. ``max_commits`` bounds the newest non-merge commits examined."""

    rev: str = "HEAD"
    max_commits: int = 500
    max_files: int = 10
    max_changed_lines: int = 500
    max_functions: int = 5


@dataclass(frozen=True)
class CommitPair:
    commit: str
    query: str
    path: str
    name: str
    language: str
    positive: str


# ------------------------------------------------------------ messages

_TRAILER = re.compile(
    r"^\s*(signed-off-by|co-authored-by|reviewed-by|acked-by|tested-by|reported-by|suggested-by|"
    r"change-id|cc|pr-url|reviewed-on|bug|fixes|closes|resolves|see-also|git-svn-id)\s*:.*$",
    re.I | re.M,
)
_URL = re.compile(r"(https?://|www\.)\S+", re.I)
_PR_REF = re.compile(r"\s*\((?:#|gh-|GH-)\d+\)")
_SKIP_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("merge", re.compile(r"^\s*merge\b", re.I)),
    ("revert", re.compile(r"^\s*revert\b", re.I)),
    ("version", re.compile(
        r"^\s*(\[?release\]?|releasing|prepare (for )?release|preparing release|bump(ed|s)?|version|tag(ged)?|"
        r"publish(ed)?|changelog|update changelog|v?\d+(\.\d+)+\b)|"
        r"\bbump(ed|s)? (the )?(version|deps|dependencies|\S+ from)\b|\bversion bump\b|"
        r"^\s*(chore|build)(\(deps?\))?: (bump|release|update dependencies)", re.I)),
    ("typo", re.compile(r"\b(typos?|spelling|misspell\w*)\b", re.I)),
    ("formatting", re.compile(
        r"^\s*(style:|lint\b|linting\b|format(ting)?\b|reformat\w*|run (black|prettier|gofmt)|"
        r"(apply|applied|run) (black|prettier|gofmt|rubocop|php-cs-fixer)|whitespace|trailing whitespace|"
        r"fix (lint|flake8|pylint|eslint|rubocop|style)\b|code style|cs fix|wip\b)", re.I)),
)


def clean_message(message: str) -> str:
    """Subject and body without trailers, URLs and ``(#123)`` PR references."""
    text = _TRAILER.sub("", message)
    text = _URL.sub("", text)
    text = _PR_REF.sub("", text)
    lines = [line.rstrip() for line in text.strip().split("\n")]
    out: list[str] = []
    for line in lines:
        if not line and out and not out[-1]:
            continue
        out.append(line)
    return "\n".join(out).strip()


def skip_reason_for_message(message: str) -> str | None:
    """Why a message is only bookkeeping (``version``, ``typo``...), or None when it describes a change.

    Typo and formatting words only disqualify short messages (at most 8
    words), so "Fix crash in parser; also fix a typo" survives.
    """
    subject = message.strip().split("\n", 1)[0]
    words = len(message.split())
    for reason, pattern in _SKIP_PATTERNS:
        if reason in ("typo", "formatting") and words > 8:
            continue
        target = message if reason in ("typo",) else subject
        if pattern.search(target):
            return reason
    return None


# ----------------------------------------------------------------- git

def iter_commits(repo: Path, config: CommitConfig) -> Iterator[RawCommit]:
    """The newest ``max_commits`` non-merge commits reachable from ``rev``, each with a zero-context patch.

    A commit over the size limits keeps its counts but not its patch text, so a
    vendoring commit of 100 MB costs nothing but the read. A failing ``git log``
    (a broken mirror) ends the stream instead of the whole mining run.
    """
    limits = LogLimits(config.max_files, config.max_changed_lines)
    try:
        yield from read_commits(repo, (config.rev,), limits=limits, max_count=config.max_commits)
    except GitError as exc:
        log.warning("%s", exc)


# --------------------------------------------------------------- pairs


def commit_pairs(
    repo: Path, config: CommitConfig, file_filter: FileFilter | None = None, stats: dict[str, int] | None = None
) -> Iterator[CommitPair]:
    """Pairs of (cleaned message, pre-commit function) for the commits of ``repo``.

    ``stats`` (optional) counts commits by outcome: ``commits_used`` and one
    ``commit_skipped_<reason>`` per skip reason.
    """
    file_filter = file_filter or FileFilter()
    counts = stats if stats is not None else {}

    def skip(reason: str) -> None:
        counts[f"commit_skipped_{reason}"] = counts.get(f"commit_skipped_{reason}", 0) + 1

    reader = GitBlobReader(repo)
    try:
        for commit in iter_commits(repo, config):
            if commit.files > config.max_files or commit.changed_lines > config.max_changed_lines:
                skip("too_large")
                continue
            reason = skip_reason_for_message(commit.message)
            if reason:
                skip(reason)
                continue
            message = clean_message(commit.message)
            found: list[CommitPair] = []
            for fp in parse_patch(commit.patch):
                path = fp.old_path
                if path is None or fp.new_path is None:  # created or deleted file
                    continue
                language = language_for_path(path)
                if language is None or file_filter.skip_reason_for_path(path) is not None:
                    continue
                source = reader(commit.parents[0], path)
                if source is None:
                    continue
                touched, rows = touched_definitions(fp, source, language)
                for d in touched:
                    found.append(CommitPair(commit.sha, message, path, d.name, language,
                                            function_code(d, rows, drop_doc=False)))
            if not found:
                skip("no_function")
                continue
            if len(found) > config.max_functions:
                skip("too_many_functions")
                continue
            counts["commits_used"] = counts.get("commits_used", 0) + 1
            yield from found
    finally:
        reader.close()
