"""Who knows the suspect code: owners from git blame and git log, weighted by recency.

The people to ask about a bug are those who last wrote the suspect lines and
those who keep changing the file; someone active last month knows the code
better than someone whose lines from 2012 survive. So blame lines and commits
are both counted, each weighted by ``0.5 ** (age / half_life)``, and an
owner's score is their share of that evidence (0 to 1 per file).

The core (parsing git's output, scoring) is pure and tested without git; the
:class:`HistoryReader` at the edge runs ``git log`` and ``git blame`` through
:func:`indexer.git.runner.run_git`, with git's messages in English because a
blame failure is told apart by its wording.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable, Sequence

from indexer.git.runner import C_LOCALE, GitError, last_line, run_git

from localizer.triage.gitinfo import RepoState, shallow_boundary

log = logging.getLogger(__name__)

UNCOMMITTED = "0" * 40
_RS, _US = "\x1e", "\x1f"
LOG_FORMAT = f"--format={_RS}%H{_US}%aN{_US}%aE{_US}%at{_US}%s"


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    author: str
    email: str
    timestamp: int  # author time, Unix seconds
    summary: str
    paths: tuple[str, ...] = ()  # which of the asked-about files it touched

    @property
    def short(self) -> str:
        return self.sha[:10]

    @property
    def date(self) -> str:
        return datetime.fromtimestamp(self.timestamp, timezone.utc).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class BlameLine:
    sha: str
    author: str
    email: str
    timestamp: int
    line: int


@dataclass(frozen=True)
class Owner:
    name: str
    email: str
    score: float  # share of the recency-weighted evidence, 0-1
    lines: int  # suspect lines they last changed (blame)
    commits: int  # commits of theirs to the file among those read
    last_touched: int  # Unix seconds

    @property
    def last_date(self) -> str:
        return datetime.fromtimestamp(self.last_touched, timezone.utc).strftime("%Y-%m-%d") if self.last_touched else ""


@dataclass(frozen=True)
class FileHistory:
    """Owners and recent commits of one file; ``note`` says why some evidence is missing."""

    path: str
    owners: tuple[Owner, ...] = ()
    commits: tuple[CommitInfo, ...] = ()
    blamed_lines: int = 0
    note: str | None = None


@dataclass
class History:
    files: dict[str, FileHistory] = field(default_factory=dict)
    recent: list[CommitInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- pure


def parse_log(text: str) -> list[CommitInfo]:
    """Parse ``git log`` run with :data:`LOG_FORMAT` and ``--name-only``, with or without ``-z``.

    The reader passes ``-z``: without it git C-quotes a path with non-ASCII bytes, quotes or tabs
    (``"na\\303\\257ve.py"``), and a quoted path never matches the suspect it belongs to, so its
    history was lost (issue #26, case 8). With ``-z`` the header ends in NUL + newline and every
    path in NUL.
    """
    commits = []
    for record in text.split(_RS):
        if not record.strip("\0\n "):
            continue
        header, nul, names = record.partition("\0\n")
        if not nul:
            header, _, names = record.partition("\n")
        fields = header.split(_US)
        if len(fields) < 5:
            continue
        sha, author, email, stamp, summary = fields[0], fields[1], fields[2], fields[3], _US.join(fields[4:])
        try:
            timestamp = int(stamp)
        except ValueError:
            continue
        paths = tuple(name for name in (names.split("\0") if nul else names.splitlines()) if name.strip())
        commits.append(CommitInfo(sha, author, email, timestamp, summary, paths))
    return commits


def parse_blame_porcelain(text: str) -> list[BlameLine]:
    """Parse ``git blame --line-porcelain``: a header per line, then the line itself after a tab."""
    lines: list[BlameLine] = []
    sha = author = email = ""
    final_line = 0
    timestamp = 0
    expect_header = True
    for raw in text.split("\n"):
        if expect_header:
            parts = raw.split(" ")
            if len(parts) >= 3 and len(parts[0]) == 40:
                sha, final_line = parts[0], int(parts[2])
                author = email = ""
                timestamp = 0
                expect_header = False
            continue
        if raw.startswith("\t"):
            lines.append(BlameLine(sha, author, email, timestamp, final_line))
            expect_header = True
        elif raw.startswith("author "):
            author = raw[len("author "):]
        elif raw.startswith("author-mail "):
            email = raw[len("author-mail "):].strip().strip("<>")
        elif raw.startswith("author-time "):
            try:
                timestamp = int(raw[len("author-time "):])
            except ValueError:
                timestamp = 0
    return lines


def merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping line ranges (git blame wants each line once)."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted((min(a, b), max(a, b)) for a, b in spans if a >= 1 and b >= 1):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def is_bot(name: str, email: str) -> bool:
    lowered = f"{name} {email}".lower()
    return "[bot]" in lowered or lowered.startswith(("dependabot", "renovate", "github-actions"))


def recency_weight(timestamp: int, now: float, half_life_days: float) -> float:
    age_days = max(0.0, now - timestamp) / 86400.0
    return 0.5 ** (age_days / half_life_days) if half_life_days > 0 else 1.0


def score_owners(
    blame: Sequence[BlameLine],
    commits: Sequence[CommitInfo],
    now: float,
    *,
    half_life_days: float = 365.0,
    blame_share: float = 0.6,
    limit: int = 3,
) -> list[Owner]:
    """Rank people by their recency-weighted share of the suspect lines and of the file's commits.

    Blame counts for ``blame_share`` of the score and commits for the rest;
    when one kind of evidence is missing (a shallow clone, blame turned off)
    the other counts fully. One person is one email (case-insensitive), named
    as in their newest evidence. Bots are left out.
    """
    people: dict[str, dict] = {}

    def person(name: str, email: str, timestamp: int) -> dict:
        key = (email or name).strip().lower()
        entry = people.setdefault(key, {"name": name, "email": email, "line_w": 0.0, "commit_w": 0.0,
                                        "lines": 0, "commits": 0, "last": 0})
        if timestamp >= entry["last"]:
            entry["name"], entry["email"], entry["last"] = name or entry["name"], email or entry["email"], timestamp
        return entry

    total_line_w = total_commit_w = 0.0
    for line in blame:
        if line.sha == UNCOMMITTED or is_bot(line.author, line.email):
            continue
        weight = recency_weight(line.timestamp, now, half_life_days)
        entry = person(line.author, line.email, line.timestamp)
        entry["line_w"] += weight
        entry["lines"] += 1
        total_line_w += weight
    for commit in commits:
        if is_bot(commit.author, commit.email):
            continue
        weight = recency_weight(commit.timestamp, now, half_life_days)
        entry = person(commit.author, commit.email, commit.timestamp)
        entry["commit_w"] += weight
        entry["commits"] += 1
        total_commit_w += weight
    if total_line_w <= 0 and total_commit_w <= 0:
        return []
    share = blame_share if total_line_w > 0 and total_commit_w > 0 else (1.0 if total_line_w > 0 else 0.0)
    owners = []
    for entry in people.values():
        score = (share * entry["line_w"] / total_line_w if total_line_w else 0.0) + (
            (1 - share) * entry["commit_w"] / total_commit_w if total_commit_w else 0.0
        )
        owners.append(Owner(entry["name"], entry["email"], round(score, 4), entry["lines"], entry["commits"], entry["last"]))
    owners.sort(key=lambda o: (-o.score, -o.last_touched, o.name))
    return owners[:limit]


def combine_owners(per_file: Sequence[Sequence[Owner]], limit: int = 3) -> list[Owner]:
    """Suggested reviewers: each suspect file's top owner, best file first, then the runners-up.

    Why not sum shares over files: someone who owns many weak suspects would
    outrank the person who wrote the top suspect, who is the one to ask.
    """
    chosen: dict[str, Owner] = {}
    depth = max((len(owners) for owners in per_file), default=0)
    for level in range(depth):
        for owners in per_file:
            if level < len(owners) and len(chosen) < limit:
                owner = owners[level]
                chosen.setdefault((owner.email or owner.name).lower(), owner)
    return list(chosen.values())


# --------------------------------------------------------------------------- I/O


class HistoryReader:
    """Reads owners and recent commits for suspect files with ``git log`` and ``git blame``, once per file.

    ``rev`` None reads the work tree (blame then matches the indexed line
    numbers, and uncommitted lines are left out); otherwise that commit.
    """

    def __init__(self, state: RepoState, rev: str | None = None, *, blame: bool = True, depth: int = 300,
                 half_life_days: float = 365.0, owners_per_file: int = 3, now: float | None = None) -> None:
        self.state = state
        self.rev = rev
        self.depth = depth
        self.half_life_days = half_life_days
        self.owners_per_file = owners_per_file
        self.now = now if now is not None else time.time()
        self._boundary = shallow_boundary(state) if state.shallow else set()
        self.blame = blame and not state.shallow and not state.unborn
        self._ignore_revs = (state.root / ".git-blame-ignore-revs") if not state.bare else None

    def close(self) -> None:
        """Nothing to release (each git command is its own process); kept for callers that close readers."""

    def _git(self, *args: str) -> str:
        return run_git(args, repo=self.state.root, text=True, env={**os.environ, **C_LOCALE}).stdout

    def read(self, spans: dict[str, list[tuple[int, int]]]) -> History:
        """``spans``: suspect file -> the line ranges worth blaming (empty: log only)."""
        history = History()
        if self.state.unborn:
            history.notes.append("the repository has no commits yet: there are no owners or history to show")
            for path in spans:
                history.files[path] = FileHistory(path, note="no commits yet")
            return history
        if self.state.shallow:
            history.notes.append("shallow clone: blame is unavailable (history is cut off), so owners come only from "
                                 "the commits present; `git fetch --unshallow` gives full owners")
        commits = self._log(list(spans))
        history.recent = commits
        for path, ranges in spans.items():
            file_commits = [c for c in commits if path in c.paths]
            blame: list[BlameLine] = []
            note = None
            if self.blame and ranges:
                blame, note = self._blame(path, ranges)
            elif not file_commits:
                note = "no commits touch this file" if not self.state.shallow else "no history in this shallow clone"
            owners = score_owners(blame, file_commits, self.now, half_life_days=self.half_life_days,
                                  limit=self.owners_per_file)
            history.files[path] = FileHistory(path, tuple(owners), tuple(file_commits), len(blame), note)
        return history

    def _log(self, paths: list[str]) -> list[CommitInfo]:
        if not paths:
            return []
        try:
            out = self._git("log", "--no-merges", "--use-mailmap", f"-n{self.depth}", LOG_FORMAT, "--name-only", "-z",
                            self.rev or "HEAD", "--", *paths)
        except GitError as exc:
            log.warning("git log failed: %s", last_line(exc.stderr))
            return []
        return [c for c in parse_log(out) if c.sha not in self._boundary]

    def _blame(self, path: str, ranges: list[tuple[int, int]]) -> tuple[list[BlameLine], str | None]:
        args = ["--line-porcelain", "-w"]
        for start, end in merge_spans(ranges):
            args += ["-L", f"{start},{end}"]
        if self._ignore_revs is not None and self._ignore_revs.is_file():
            args += ["--ignore-revs-file", str(self._ignore_revs)]
        if self.rev:
            args.append(self.rev)
        try:
            out = self._git("blame", *args, "--", path)
        except GitError as exc:
            last = last_line(exc.stderr)
            if "no such path" in last or "no such ref" in last:
                return [], "not committed yet"
            if "--ignore-revs-file" in args:  # a bad ignore-revs file should not cost the owners
                self._ignore_revs = None
                return self._blame(path, ranges)
            if "has only" in last and "lines" in last:  # ranges past the end (file shrank)
                return [], "blame failed: line numbers out of date"
            return [], f"blame failed: {last}"
        lines = parse_blame_porcelain(out)
        uncommitted = sum(1 for line in lines if line.sha == UNCOMMITTED)
        note = f"{uncommitted} suspect lines not committed yet" if uncommitted else None
        return [line for line in lines if line.sha != UNCOMMITTED and line.sha not in self._boundary], note

