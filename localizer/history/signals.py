"""Per-issue history signals: the past commits like this issue, and what they changed.

Each signal is a feature for the learned ranker (:mod:`localizer.learned`), never a hand-set boost:

* **similar past changes**: BM25 of the issue against every commit message of the window (the
  BugLocator idea); the top commits credit the files and functions they changed, by similarity
  (``sim_max``: the best similar commit's score relative to the top one; ``sim_sum``: credit split
  across each commit's files; ``sim_rank``: the best similar commit's rank);
* **fix-proneness**: how often an item changed and how often a fix changed it in the window, and
  how long ago it last changed (Ye et al., FSE 2014);
* **co-change**: how often a file changed together with a file the issue names.

Everything here reads the history view and the issue; nothing reads git or a model.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Iterable

from localizer.history.view import HistoryView, ItemStats

# How many similar commits credit their changes. Past the first few dozen, a message's BM25 match
# with an issue is mostly shared vocabulary; the ranker sees the rank and discounts them itself.
SIMILAR_COMMITS = 30
NEVER_DAYS = 36500.0  # the age of something the window never changed: older than anything real
_DAY = 86400.0


@dataclass(frozen=True)
class SimilarCommit:
    """One past commit like the issue: the evidence ``localize triage`` shows for a suspect."""

    sha: str
    time: int
    subject: str
    score: float  # relative to the most similar commit, 0-1
    rank: int  # 0 for the most similar

    @property
    def date(self) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(self.time))

    def to_json_dict(self) -> dict[str, str]:
        """What a reader checks a suspect against: the short sha, the day, and the subject."""
        return {"sha": self.sha[:12], "date": self.date, "subject": self.subject}


@dataclass
class HistorySignals:
    """The signals of one issue; ``file_features`` / ``function_features`` read them by name."""

    view: HistoryView
    similar: list[SimilarCommit]
    file_credit: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # max, sum, best rank
    function_credit: dict[tuple[str, str], tuple[float, float, int]] = field(default_factory=dict)
    cochange: dict[str, int] = field(default_factory=dict)
    file_evidence: dict[str, list[SimilarCommit]] = field(default_factory=dict)
    function_evidence: dict[tuple[str, str], list[SimilarCommit]] = field(default_factory=dict)

    def file_features(self, path: str) -> dict[str, float]:
        credit = self.file_credit.get(path, (0.0, 0.0, -1))
        return {**_credit_features("hist", credit), **_stats_features("hist", self.view.file_stats.get(path), self.view.time),
                "hist_cochange": math.log1p(self.cochange.get(path, 0))}

    def evidence(self, path: str, name: str = "") -> tuple[SimilarCommit, ...]:
        """The similar past commits that changed this file (or, with ``name``, this function)."""
        found = self.function_evidence.get((path, name)) if name else self.file_evidence.get(path)
        return tuple(found or ())

    def function_features(self, path: str, name: str) -> dict[str, float]:
        key = (path, name)
        credit = self.function_credit.get(key, (0.0, 0.0, -1))
        return {**_credit_features("fn_hist", credit),
                **_stats_features("fn_hist", self.view.function_stats.get(key), self.view.time)}


def _credit_features(prefix: str, credit: tuple[float, float, int]) -> dict[str, float]:
    best, total, rank = credit
    return {f"{prefix}_sim_max": best, f"{prefix}_sim_sum": total,
            f"{prefix}_sim_rank": math.log1p(rank) if rank >= 0 else math.log1p(SIMILAR_COMMITS * 4)}


def _stats_features(prefix: str, stats: ItemStats | None, now: int | None) -> dict[str, float]:
    if stats is None or not stats.changes:
        return {f"{prefix}_changes": 0.0, f"{prefix}_fixes": 0.0, f"{prefix}_age": math.log1p(NEVER_DAYS)}
    days = max(0.0, ((now or stats.last_time) - stats.last_time) / _DAY)
    return {f"{prefix}_changes": math.log1p(stats.changes), f"{prefix}_fixes": math.log1p(stats.fixes),
            f"{prefix}_age": math.log1p(days)}


def history_signals(view: HistoryView, terms: list[str], mentioned: dict[str, float] | None = None,
                    evidence_per_item: int = 3) -> HistorySignals:
    """The history signals of an issue with BM25 ``terms`` that names the files ``mentioned``."""
    hits = view.similar(terms, SIMILAR_COMMITS)
    top = hits[0][1] if hits else 1.0
    similar = []
    signals = HistorySignals(view, similar)
    for rank, (position, score) in enumerate(hits):
        record = view.records[position]
        commit = SimilarCommit(record.sha, record.time, record.subject, score / top, rank)
        similar.append(commit)
        files, functions = view.files_of[position], view.functions_of[position]
        _credit(signals.file_credit, signals.file_evidence, files, commit, evidence_per_item)
        _credit(signals.function_credit, signals.function_evidence, functions, commit, evidence_per_item)
    for path in mentioned or ():
        stats = view.file_stats.get(path)
        for position in stats.commits if stats else ():
            for other in view.files_of[position]:
                if other != path:
                    signals.cochange[other] = signals.cochange.get(other, 0) + 1
    return signals


def _credit(credit: dict, evidence: dict, items: tuple, commit: SimilarCommit, keep: int) -> None:
    share = commit.score / max(1, len(items))
    for item in items:
        best, total, rank = credit.get(item, (0.0, 0.0, -1))
        credit[item] = (max(best, commit.score), total + share, commit.rank if rank < 0 else rank)
        shown = evidence.setdefault(item, [])
        if len(shown) < keep:
            shown.append(commit)


def history_only_scores(signals: HistorySignals | None, files: Iterable[str],
                        functions: Iterable[tuple[int, tuple[str, str]]]) -> tuple[dict[str, float], dict[int, float]]:
    """Every retriever-scored item scored by its similar-fix credit alone (0 without any), code ignored."""
    file_credit = signals.file_credit if signals is not None else {}
    function_credit = signals.function_credit if signals is not None else {}
    return ({path: file_credit.get(path, (0.0, 0.0, -1))[1] for path in files},
            {row: function_credit.get(key, (0.0, 0.0, -1))[1] for row, key in functions})
