"""Commit-message pairs: a commit's message is the query, the functions it changed are the positives.

A commit message is the closest thing in a repository to an issue paired with
its fix: prose about a behaviour, attached to the code that had to change. The
positives are the functions *as they were before the commit* (in the first
parent), because at localization time the model sees the unfixed code. Which
functions a diff touches is decided exactly as SWE-bench gold functions are
(:func:`indexer.git.diff.functions_touched`): removed lines credit the
function holding them, insertions the function they land in.

Commits that make poor queries are skipped: merges, huge commits (the message
cannot describe each of dozens of files), commits touching many functions,
commits by bots (dependabot, renovate, pre-commit-ci: generated messages about
dependencies, not behaviour) and messages that are only a version bump,
release, revert, merge, typo or formatting change.

Of the commits left, those whose message says what was wrong ("Fix crash
when...", "wrong offset in...") come first, because they read like the issues
the model will be asked about; then ``max_pairs`` caps the pairs one repository
gives, so a project with a long history cannot fill the corpus with its style.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

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
    max_pairs: int = 300  # commit pairs kept per repository, fault-describing commits first (0: no cap)


@dataclass(frozen=True)
class CommitPair:
    commit: str
    query: str
    path: str
    name: str
    language: str
    positive: str


@dataclass(frozen=True)
class UsableCommit:
    """A commit that passed every rule, with its pairs; ``describes_fault`` orders it before the rest."""

    sha: str
    describes_fault: bool
    pairs: tuple[CommitPair, ...]


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


# Words by which a message says what was wrong. Narrower than localizer.history.view.FIX_WORDS on
# purpose: that signal also counts "#123", "issue" and "closes", which mark references, and on
# projects that merge through GitHub nearly every commit has one, so they would order nothing.
FAULT_WORDS = re.compile(
    r"\b(fix(e[sd]|ing)?|bug(s|fix\w*)?|hotfix|errors?|erroneous\w*|crash(es|ed|ing)?|wrong\w*|"
    r"fail(s|ed|ing|ures?)?|regressions?|regressed|incorrect\w*|broken|mistake\w*)\b", re.I)

# Bot authors, by name or email (a superset of localizer.triage.owners.is_bot, which also needs
# pre-commit-ci and greenkeeper; importing it would pull the whole localizer API into mining).
_BOT = re.compile(
    r"\[bot\]|\b(dependabot(-preview)?|renovate(-bot)?|github-actions|pre-commit-ci|greenkeeper(io)?|"
    r"snyk-bot|pyup-bot|imgbot|allcontributors|mergify|deepsource-autofix|codecov-io)\b", re.I)


def is_bot_author(name: str, email: str) -> bool:
    """Whether a commit was authored by a bot: ``dependabot[bot]``, ``renovate-bot``, ``pre-commit-ci``..."""
    local = email.split("@", 1)[0]
    return bool(_BOT.search(name) or _BOT.search(local))


def describes_fault(message: str) -> bool:
    """Whether a (cleaned) message names something that was wrong: a fix, bug, error, crash, failure..."""
    return bool(FAULT_WORDS.search(message))


def commit_skip_reason(commit: RawCommit, config: CommitConfig) -> str | None:
    """Why a commit cannot be a query, before its patch is read: ``too_large``, ``bot`` or a message reason."""
    if commit.files > config.max_files or commit.changed_lines > config.max_changed_lines:
        return "too_large"
    if is_bot_author(commit.author, commit.email):
        return "bot"
    return skip_reason_for_message(commit.message)


def select_commits(usable: Sequence[UsableCommit], max_pairs: int) -> tuple[list[UsableCommit], int]:
    """Fault-describing commits first (newest first within each group), whole commits up to ``max_pairs``.

    A commit whose pairs would overflow the cap is left out and a smaller later one may still fit,
    so the cap is filled without splitting a commit's functions (its message describes them all).
    Returns the chosen commits and how many were left out.
    """
    ordered = sorted(usable, key=lambda c: not c.describes_fault)  # stable: keeps git's newest-first order
    if max_pairs <= 0:
        return ordered, 0
    chosen: list[UsableCommit] = []
    total = 0
    for c in ordered:
        if total + len(c.pairs) <= max_pairs:
            chosen.append(c)
            total += len(c.pairs)
    return chosen, len(ordered) - len(chosen)


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
    repo: Path, config: CommitConfig, file_filter: FileFilter | None = None, stats: dict[str, int] | None = None,
    check: Callable[[CommitPair], str | None] | None = None,
) -> Iterator[CommitPair]:
    """Pairs of (cleaned message, pre-commit function) for the commits of ``repo``, fault-describing commits first.

    ``check`` (optional) says why a pair is unusable (the quality rules); such pairs are dropped
    before the cap, so the cap counts pairs that will be kept. ``stats`` (optional) counts commits
    by outcome: ``commits_used``, ``commits_used_fault`` (of them, those whose message describes a
    fault), one ``commit_skipped_<reason>`` per skip reason and ``dropped_commit_<issue>`` per pair.
    The whole window is read before the first pair comes out, since the order needs all of it.
    """
    file_filter = file_filter or FileFilter()
    counts = stats if stats is not None else {}

    def bump(key: str, n: int = 1) -> None:
        counts[key] = counts.get(key, 0) + n

    usable: list[UsableCommit] = []
    reader = GitBlobReader(repo)
    try:
        for commit in iter_commits(repo, config):
            reason = commit_skip_reason(commit, config)
            if reason:
                bump(f"commit_skipped_{reason}")
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
                bump("commit_skipped_no_function")
                continue
            if len(found) > config.max_functions:
                bump("commit_skipped_too_many_functions")
                continue
            if check is not None:
                kept = []
                for pair in found:
                    issue = check(pair)
                    if issue:
                        bump(f"dropped_commit_{issue}")
                    else:
                        kept.append(pair)
                if not kept:
                    bump("commit_skipped_no_clean_pair")
                    continue
                found = kept
            usable.append(UsableCommit(commit.sha, describes_fault(message), tuple(found)))
    finally:
        reader.close()
    chosen, capped = select_commits(usable, config.max_pairs)
    if capped:
        bump("commit_skipped_pair_cap", capped)
    for c in chosen:
        bump("commits_used")
        if c.describes_fault:
            bump("commits_used_fault")
        yield from c.pairs
