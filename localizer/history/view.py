"""A history, arranged once for fast queries: current names, per-file counts, and a BM25 over messages.

The history index keeps each commit as it was (:class:`indexer.history.records.CommitRecord`). Ranking
needs it arranged by *today's* files and functions: a file renamed three years ago keeps the fixes it
had under its old name, counts of changes and fixes are per file and per function, and similar past
commits are found by BM25 over their messages. All of that depends on the history alone, so a
:class:`HistoryView` is built once per snapshot and serves every issue asked of it.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from indexer.history.build import History
from indexer.history.records import CommitRecord

# A commit whose message says it fixes something: the classic fix-proneness signal (Ye et al.,
# FSE 2014) counts these apart from all changes.
FIX_WORDS = re.compile(r"\b(fix(e[sd])?|bug\w*|crash\w*|error\w*|fail\w*|regression|wrong|incorrect|broken|"
                       r"issue|resolve[sd]?|closes?|ticket)\b|#\d+", re.I)


@dataclass
class ItemStats:
    """What the window says about one file or function, whatever the issue."""

    changes: int = 0
    fixes: int = 0
    last_time: int = 0
    commits: list[int] = field(default_factory=list)  # positions in HistoryView.records, newest first


class HistoryView:
    """``records`` newest first with their files under today's names; stats per file and function."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.records: list[CommitRecord] = [r for r in history.records if r.files and not r.bulk]
        self.files_of: list[tuple[str, ...]] = []
        self.functions_of: list[tuple[tuple[str, str], ...]] = []
        self.file_stats: dict[str, ItemStats] = defaultdict(ItemStats)
        self.function_stats: dict[tuple[str, str], ItemStats] = defaultdict(ItemStats)
        self._arrange()
        self._bm25 = None

    @property
    def time(self) -> int | None:
        return self.history.time

    def _arrange(self) -> None:
        """Walk newest to oldest, carrying renames backwards, so older names map to today's."""
        alias: dict[str, str] = {}
        name = lambda path: alias.get(path, path)  # noqa: E731
        current = {r.sha for r in self.records}
        for record in self.history.records:
            if record.sha in current:
                position = len(self.files_of)
                is_fix = bool(FIX_WORDS.search(record.message))
                files = tuple(dict.fromkeys(name(p) for p in record.files))
                functions = tuple(dict.fromkeys((name(p), n) for p, n in record.functions))
                self.files_of.append(files)
                self.functions_of.append(functions)
                for key, stats in [(f, self.file_stats) for f in files] + [(f, self.function_stats) for f in functions]:
                    item = stats[key]
                    item.changes += 1
                    item.fixes += is_fix
                    item.last_time = max(item.last_time, record.time)
                    item.commits.append(position)
            for old, new in record.renames:
                alias[old] = alias.get(new, new)

    def similar(self, terms: list[str], top: int) -> list[tuple[int, float]]:
        """(position in ``records``, BM25 score) of the ``top`` commits whose messages best match ``terms``."""
        if not self.records or not terms:
            return []
        if self._bm25 is None:
            self._bm25 = MessageBM25([list(r.terms) or ["\x00"] for r in self.records])
        scores = self._bm25.scores(terms)
        top = min(top, len(scores))
        best = np.argsort(-scores, kind="stable")[:top]
        return [(int(i), float(scores[i])) for i in best if scores[i] > 0]


class MessageBM25:
    """BM25 over commit messages, scored exactly as ``bm25s`` (Lucene variant, k1 1.5, b 0.75) scores.

    Why not bm25s itself: building its index over a 3,000-commit window took half of the history's
    per-query overhead, and one sparse matrix product does the same work. Query terms count as often
    as they occur, unknown terms add nothing, as in ``bm25s.BM25.get_scores``; a test checks the two
    agree.
    """

    def __init__(self, documents: list[list[str]], k1: float = 1.5, b: float = 0.75) -> None:
        from scipy.sparse import csr_matrix

        self.vocabulary: dict[str, int] = {}
        rows, columns, counts = [], [], []
        lengths = np.zeros(len(documents), dtype=np.float32)
        for row, terms in enumerate(documents):
            lengths[row] = len(terms)
            for term, count in Counter(terms).items():
                rows.append(row)
                columns.append(self.vocabulary.setdefault(term, len(self.vocabulary)))
                counts.append(count)
        tf = np.asarray(counts, dtype=np.float32)
        rows_array = np.asarray(rows, dtype=np.int64)
        columns_array = np.asarray(columns, dtype=np.int64)
        df = np.bincount(columns_array, minlength=len(self.vocabulary)).astype(np.float32)
        n = np.float32(len(documents))
        idf = np.log(1 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
        norm = k1 * (1 - b + b * lengths / max(float(lengths.mean()), 1e-9))
        weights = (idf[columns_array] * (tf / (norm[rows_array] + tf))).astype(np.float32)
        # terms x documents, so a query is a sum of rows
        self._matrix = csr_matrix((weights, (columns_array, rows_array)), shape=(len(self.vocabulary), len(documents)))

    def scores(self, terms: list[str]) -> np.ndarray:
        ids = [self.vocabulary[t] for t in terms if t in self.vocabulary]
        if not ids:
            return np.zeros(self._matrix.shape[1], dtype=np.float32)
        counts = np.bincount(ids, minlength=self._matrix.shape[0]).astype(np.float32)
        return np.asarray(self._matrix.T @ counts, dtype=np.float32).ravel()
