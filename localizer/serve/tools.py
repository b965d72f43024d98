"""What each MCP tool answers, as plain functions of a :class:`~localizer.serve.state.WarmIndex`.

Kept apart from the MCP wiring so the answers can be tested (and reused) without a protocol in
between. Every function reads the current snapshot once, so one answer comes from one index
state even while a refresh swaps in the next. Failures a caller can act on raise
:class:`~indexer.errors.LocalizerError`; the server turns them into MCP tool errors.
"""

from __future__ import annotations

from typing import Any

from localizer.config import LEVELS
from localizer.history.signals import SIMILAR_COMMITS, history_signals
from localizer.issue_input import validate_issue_text
from localizer.retrieval.query import build_query
from localizer.serve.errors import ServeError
from localizer.serve.state import WarmIndex

# An issue longer than this is cut: past it there is pasted logs or data, not more of the bug, and
# ranking (a reranker prompt above all) would pay for every character. The head holds the title and
# the description, the tail the innermost traceback frames, so both are kept.
MAX_ISSUE_CHARS = 64_000
_TAIL_CHARS = 16_000
MAX_TOP_K = 100


def truncate_issue(text: str, limit: int = MAX_ISSUE_CHARS) -> tuple[str, str | None]:
    """The issue as ranked, and a note when it had to be cut."""
    if len(text) <= limit:
        return text, None
    tail = min(_TAIL_CHARS, limit // 4)
    head = limit - tail
    cut = f"{text[:head]}\n\n[... {len(text) - limit:,} characters cut ...]\n\n{text[-tail:]}"
    return cut, (f"the issue has {len(text):,} characters: ranked its first {head:,} and last {tail:,} "
                 f"(the limit is {limit:,})")


def _check_top_k(top_k: int, most: int = MAX_TOP_K) -> None:
    if not 1 <= top_k <= most:
        raise ServeError(f"top_k must be between 1 and {most}, not {top_k}")


def localize(state: WarmIndex, issue: str, top_k: int = 10, level: str = "both") -> dict[str, Any]:
    """The CLI's ``--format json`` answer (``files``, ``functions``, per-item ``evidence``) plus the
    run's notes and which snapshot answered."""
    if level not in LEVELS:
        raise ServeError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    _check_top_k(top_k)
    text, note = truncate_issue(validate_issue_text(issue))
    state.check_repository()
    snapshot = state.snapshot()
    result = snapshot.localizer.localize(text, top_k)
    answer = result.to_json_dict(level)
    answer["notes"] = ([note] if note else []) + result.notes
    answer["snapshot"] = _snapshot_ref(snapshot)
    return answer


def similar_fixes(state: WarmIndex, text: str, top_k: int = 10) -> dict[str, Any]:
    """The past commits whose messages are most like ``text``, most similar first."""
    _check_top_k(top_k, SIMILAR_COMMITS)
    text, note = truncate_issue(validate_issue_text(text))
    snapshot = state.snapshot()
    notes = [note] if note else []
    view = snapshot.history
    commits: list[dict[str, Any]] = []
    if view is None:
        notes.append("history is off (the server was started with --no-history)")
    elif not view.records:
        notes.append(view.history.note or "the repository has no commits before the indexed one")
    else:
        terms = build_query(text).terms
        with state.rank_lock:
            similar = history_signals(view, terms).similar
        commits = [{**commit.to_json_dict(), "score": round(commit.score, 4)} for commit in similar[:top_k]]
        if view.history.note:
            notes.append(view.history.note)
    return {"commits": commits, "notes": notes, "snapshot": _snapshot_ref(snapshot)}


def index_status(state: WarmIndex) -> dict[str, Any]:
    """The snapshot served, whether a refresh is running or pending, and the last error."""
    return state.status()


def triage(state: WarmIndex, issue: str, top_k: int = 5) -> str:
    """``localize triage``'s markdown report: suspects with code, likely owners, recent commits."""
    from localizer.triage.render import render_markdown
    from localizer.triage.triager import IssueText, TriageConfig, Triager

    _check_top_k(top_k, 50)
    text, note = truncate_issue(validate_issue_text(issue))
    state.check_repository()
    snapshot = state.snapshot()
    config = TriageConfig(localize=state.config, files=top_k, functions=top_k)
    report = Triager(state.root, config, localizer=snapshot.localizer).triage(IssueText.parse(text, "mcp"))
    if note:
        report.notes.append(note)
    return render_markdown(report)


def _snapshot_ref(snapshot) -> dict[str, Any]:
    """Which index state answered: a caller comparing answers across an edit can tell them apart."""
    return {"generation": snapshot.generation, "commit": snapshot.head,
            "indexed_at": round(snapshot.started_at, 3)}
