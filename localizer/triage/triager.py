"""Pre-triage an issue: suspects with code excerpts, likely owners, recent commits, a confidence note.

    from localizer.triage.triager import IssueText, Triager, TriageConfig
    report = Triager("path/to/repo", TriageConfig()).triage(IssueText.parse(text, "issue.md"))
    print(render_markdown(report))            # from localizer.triage.render

The ranking is :class:`localizer.Localizer`'s; this module adds what a
triager wants next to it (who knows the code, what changed lately, whether
the ranking is worth trusting) and gathers it into a :class:`TriageReport`
that renders as a markdown comment or JSON for bots. One :class:`Triager`
indexes once and triages any number of issues.
"""

from __future__ import annotations

import logging
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer.errors import LocalizerError, RepositoryError
from indexer.git.runner import run_git
from indexer.index import Progress

from localizer.api import FunctionHit, LocalizeConfig, Localizer, validate_issue_text
from localizer.history.signals import SimilarCommit
from localizer.triage.confidence import Confidence, assess
from localizer.triage.gitinfo import RepoState, read_repo_state
from localizer.triage.owners import CommitInfo, History, HistoryReader, Owner, combine_owners

log = logging.getLogger(__name__)

MAX_BLAME_SPAN = 300  # lines per suspect range; a huge function's tail says little about its owner


@dataclass(frozen=True)
class IssueText:
    title: str
    body: str
    source: str  # a path, "stdin" or "--title/--body"

    @property
    def text(self) -> str:
        return f"{self.title}\n\n{self.body}".strip()

    @classmethod
    def parse(cls, text: str, source: str) -> "IssueText":
        """The first non-empty line is the title (markdown ``#`` stripped), the rest the body."""
        validate_issue_text(text)
        lines = text.strip("\n").splitlines()
        first = next(i for i, line in enumerate(lines) if line.strip())
        title = lines[first].strip().lstrip("#").strip()
        body = "\n".join(lines[first + 1 :]).strip("\n")
        return cls(title, body, source)

    @classmethod
    def from_parts(cls, title: str | None, body: str | None, source: str = "--title/--body") -> "IssueText":
        title, body = (title or "").strip(), (body or "").strip("\n")
        validate_issue_text(f"{title}\n{body}")
        if not title:
            return cls.parse(body, source)
        return cls(title, body, source)


@dataclass(frozen=True)
class Excerpt:
    start_line: int
    text: str
    language: str | None
    truncated: bool  # the suspect continues past the excerpt


@dataclass(frozen=True)
class Suspect:
    rank: int
    kind: str  # file | function | method
    path: str
    name: str  # qualified name; "" for a file
    start_line: int
    end_line: int
    score: float
    excerpt: Excerpt | None = None
    focus: str | None = None  # for a file: its best-ranked function, where the excerpt comes from
    owners: tuple[Owner, ...] = ()
    owners_note: str | None = None
    past_fixes: tuple[SimilarCommit, ...] = ()  # similar past commits that changed this suspect

    @property
    def location(self) -> str:
        return f"{self.path}:{self.start_line}-{self.end_line}"


@dataclass
class TriageReport:
    issue: IssueText
    repo: str
    head: str
    commit: str | None
    retriever: str
    files: list[Suspect]
    functions: list[Suspect]
    reviewers: list[Owner]
    recent_commits: list[CommitInfo]
    confidence: Confidence
    notes: list[str] = field(default_factory=list)
    generator: str = ""
    fingerprint: str | None = None

    def to_json_dict(self, show_emails: bool = False) -> dict[str, Any]:
        """The same data as the markdown report; emails only with ``show_emails``."""

        def owner(o: Owner) -> dict[str, Any]:
            return {"name": o.name, "email": o.email if show_emails else None, "score": o.score, "lines": o.lines,
                    "commits": o.commits, "last_touched": o.last_date or None}

        def excerpt(e: Excerpt | None) -> dict[str, Any] | None:
            return None if e is None else {"start_line": e.start_line, "text": e.text, "language": e.language,
                                           "truncated": e.truncated}

        return {
            "issue": {"title": self.issue.title, "source": self.issue.source},
            "repo": self.repo,
            "head": self.head,
            "commit": self.commit,
            "retriever": self.retriever,
            "confidence": {
                "flat": self.confidence.flat,
                "note": self.confidence.note,
            },
            "files": [
                {"rank": s.rank, "path": s.path, "start_line": s.start_line, "end_line": s.end_line,
                 "score": round(s.score, 6), "focus": s.focus, "excerpt": excerpt(s.excerpt),
                 "owners": [owner(o) for o in s.owners], "owners_note": s.owners_note,
                 "past_fixes": [c.to_json_dict() for c in s.past_fixes]}
                for s in self.files
            ],
            "functions": [
                {"rank": s.rank, "path": s.path, "name": s.name, "kind": s.kind, "start_line": s.start_line,
                 "end_line": s.end_line, "score": round(s.score, 6), "excerpt": excerpt(s.excerpt),
                 "past_fixes": [c.to_json_dict() for c in s.past_fixes]}
                for s in self.functions
            ],
            "reviewers": [owner(o) for o in self.reviewers],
            "recent_commits": [
                {"sha": c.sha, "date": c.date, "author": c.author, "email": c.email if show_emails else None,
                 "summary": c.summary, "paths": list(c.paths)}
                for c in self.recent_commits
            ],
            "notes": list(self.notes),
            "generator": self.generator,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True)
class TriageConfig:
    localize: LocalizeConfig = field(default_factory=LocalizeConfig)
    files: int = 5
    functions: int = 5
    excerpt_lines: int = 8
    owners_per_file: int = 3
    reviewers: int = 3
    commits: int = 8
    history_depth: int = 300  # commits of the suspects' history read for owners
    blame: bool = True
    half_life_days: float = 365.0

    def __post_init__(self) -> None:
        for name in ("files", "functions", "excerpt_lines", "commits", "history_depth"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    def fingerprint_fields(self) -> dict[str, Any]:
        """Everything that changes a report's content (the cache location does not)."""
        loc = self.localize
        return {
            "rev": loc.rev, "retriever": loc.retriever, "model": loc.embedder.model,
            "query_prompt": loc.embedder.query_prompt, "mention_boost": loc.mention_boost,
            "max_file_size": loc.index.max_file_size, "include_tests": loc.index.include_tests,
            "files": self.files, "functions": self.functions, "excerpt_lines": self.excerpt_lines,
            "owners": self.owners_per_file, "reviewers": self.reviewers, "commits": self.commits,
            "history_depth": self.history_depth, "blame": self.blame, "half_life_days": self.half_life_days,
        }


# --------------------------------------------------------------------------- pure helpers


def make_excerpt(lines: list[str] | None, start: int, end: int, max_lines: int, language: str | None) -> Excerpt | None:
    """The first ``max_lines`` of a span, dedented, trailing blank lines dropped."""
    if not lines or max_lines <= 0 or start < 1 or start > len(lines):
        return None
    stop = min(end, len(lines), start + max_lines - 1)
    chunk = [line.rstrip("\r\n") for line in lines[start - 1 : stop]]
    while chunk and not chunk[-1].strip():
        chunk.pop()
    if not chunk:
        return None
    return Excerpt(start, textwrap.dedent("\n".join(chunk).expandtabs(4)), language, stop < min(end, len(lines)))


def blame_spans(path: str, functions: list[FunctionHit], focus: FunctionHit | None) -> list[tuple[int, int]]:
    spans = [(f.start_line, f.end_line) for f in functions if f.path == path]
    if focus is not None:
        spans.append((focus.start_line, focus.end_line))
    return [(start, min(end, start + MAX_BLAME_SPAN - 1)) for start, end in spans]


# --------------------------------------------------------------------------- I/O


class SourceLines:
    """File lines as indexed: from the work tree, or from git objects at the indexed commit."""

    def __init__(self, root: Path, commit: str | None) -> None:
        self.root = root
        self.commit = commit
        self._cache: dict[str, list[str] | None] = {}

    def get(self, path: str) -> list[str] | None:
        if path not in self._cache:
            self._cache[path] = self._read(path)
        return self._cache[path]

    def _read(self, path: str) -> list[str] | None:
        try:
            if self.commit:
                data = run_git(["show", f"{self.commit}:{path}"], repo=self.root).stdout
            else:
                data = (self.root / path).read_bytes()
        except (OSError, LocalizerError):
            return None
        return data.decode("utf-8", errors="replace").splitlines()


class Triager:
    """Indexes a repository once, then pre-triages any number of issues."""

    def __init__(self, repo: str | Path, config: TriageConfig | None = None, progress: Progress | None = None,
                 localizer: Localizer | None = None) -> None:
        self.repo = Path(repo)
        self.config = config or TriageConfig()
        self.localizer = localizer or Localizer(repo, self.config.localize, progress)
        self._history_cache: dict[tuple, History] = {}

    def repo_state(self) -> RepoState | None:
        try:
            return read_repo_state(self.localizer.index().root)
        except RepositoryError:
            return None

    def triage(self, issue: IssueText) -> TriageReport:
        from localizer import __version__

        cfg = self.config
        pool = max(cfg.files, cfg.functions, 50)  # enough to find each file's best function
        result = self.localizer.localize(issue.text, top_k=pool)
        index = self.localizer.index()
        file_chunks = {c.path: c for c in index.chunks if c.kind == "file"}
        languages = {c.path: c.language for c in index.chunks if c.kind == "file"}
        best: dict[str, FunctionHit] = {}
        for hit in result.functions:
            best.setdefault(hit.path, hit)
        top_files = result.files[: cfg.files]
        top_functions = result.functions[: cfg.functions]
        confidence = assess([f.score for f in result.files], [f.score for f in result.functions])

        state = self.repo_state()
        notes = _state_notes(state, cfg.localize.rev) + result.notes
        history = History()
        if state is not None and (top_files or top_functions):
            spans: dict[str, list[tuple[int, int]]] = {}
            for hit in top_files:
                spans[hit.path] = blame_spans(hit.path, top_functions, best.get(hit.path))
            for hit in top_functions:
                spans.setdefault(hit.path, [])
            history = self._history(state, spans)
            notes.extend(history.notes)
            if not cfg.blame:
                notes.append("blame skipped (--no-blame): owners come from git log only")
        elif state is None:
            notes.append("not a git repository: there are no owners or history to show")

        lines = SourceLines(index.root, result.commit)
        functions = [
            Suspect(rank, hit.kind, hit.path, hit.name, hit.start_line, hit.end_line, hit.score,
                    make_excerpt(lines.get(hit.path), hit.start_line, hit.end_line, cfg.excerpt_lines,
                                 languages.get(hit.path)), past_fixes=hit.evidence)
            for rank, hit in enumerate(top_functions, 1)
        ]
        files = []
        for rank, hit in enumerate(top_files, 1):
            chunk = file_chunks.get(hit.path)
            text = lines.get(hit.path)
            start, end = (chunk.start_line, chunk.end_line) if chunk else (1, len(text or []) or 1)
            focus = best.get(hit.path)
            span = (focus.start_line, focus.end_line) if focus else (start, end)
            owned = history.files.get(hit.path)
            files.append(Suspect(rank, "file", hit.path, "", start, end, hit.score,
                                 make_excerpt(text, span[0], span[1], cfg.excerpt_lines, languages.get(hit.path)),
                                 focus.name if focus else None,
                                 owned.owners if owned else (), owned.note if owned else None, hit.evidence))
        reviewers = combine_owners([s.owners for s in files], cfg.reviewers)
        head = state.describe_head() if state else "(not a git repository)"
        if cfg.localize.rev and result.commit:
            head = f"{cfg.localize.rev} @ {result.commit[:12]}"
        return TriageReport(
            issue=issue,
            repo=str(index.root),
            head=head,
            commit=result.commit or (state.head if state else None),
            retriever=result.retriever,
            files=files,
            functions=functions,
            reviewers=reviewers,
            recent_commits=history.recent[: cfg.commits],
            confidence=confidence,
            notes=notes,
            generator=f"localizer {__version__}",
        )

    def _history(self, state: RepoState, spans: dict[str, list[tuple[int, int]]]) -> History:
        key = tuple(sorted((p, tuple(s)) for p, s in spans.items()))
        if key not in self._history_cache:
            cfg = self.config
            rev = cfg.localize.rev or ("HEAD" if state.bare else None)
            reader = HistoryReader(state, rev, blame=cfg.blame, depth=cfg.history_depth,
                                   half_life_days=cfg.half_life_days, owners_per_file=cfg.owners_per_file)
            try:
                self._history_cache[key] = reader.read(spans)
            finally:
                reader.close()
        return self._history_cache[key]


def _state_notes(state: RepoState | None, rev: str | None) -> list[str]:
    notes = []
    if state is None:
        return notes
    if state.detached and not rev:
        notes.append(f"HEAD is detached at {state.head[:12]}: owners and history are read from that commit")
    if state.rebasing:
        notes.append("a rebase is in progress: the ranking, line numbers and owners reflect the half-rebased work tree")
    return notes
