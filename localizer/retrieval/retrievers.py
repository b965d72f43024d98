"""BM25, dense and hybrid scoring over one repository snapshot.

Each retriever scores function/method chunks (the function ranking) and files
(the file ranking). BM25 ranks files by their whole text; dense ranks a file by
its best chunk, since a file's embedding sees only its first few hundred tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from indexer.index import RepoIndex
from indexer.reuse import carried_rows

from localizer.retrieval.bm25 import IncrementalBM25

from localizer.retrieval.query import IssueQuery
from localizer.retrieval.faiss_index import flat_ip_index, search
from localizer.retrieval.ranking import order, reciprocal_rank_fusion

RETRIEVERS = ("bm25", "dense", "hybrid")


@dataclass
class Scores:
    functions: dict[int, float]  # chunk index into the snapshot -> score
    files: dict[str, float]


class Retriever(Protocol):
    name: str

    def score(self, query: IssueQuery) -> Scores: ...


def _function_rows(index: RepoIndex) -> list[int]:
    return [i for i, c in enumerate(index.chunks) if c.is_function]


class BM25Retriever:
    """BM25 over identifier sub-words: functions as units, and whole files as units.

    With ``previous`` (an earlier snapshot of the same repository and its retriever, as a warm
    server has) only the documents of changed files are indexed; the rest is carried over
    (:mod:`localizer.retrieval.bm25`). The scores are the same either way.
    """

    name = "bm25"

    def __init__(self, index: RepoIndex, previous: tuple[RepoIndex, "BM25Retriever"] | None = None) -> None:
        self._function_rows = _function_rows(index)
        self._file_rows = [i for i, c in enumerate(index.chunks) if c.kind == "file"]
        self._paths = [index.chunks[i].path for i in self._file_rows]
        if previous is None or previous[0].root != index.root or not index.spans:
            self._functions = IncrementalBM25([index.terms[i] for i in self._function_rows])
            self._files = IncrementalBM25([index.terms[i] for i in self._file_rows])
            return
        old_index, old = previous
        mapping = carried_rows(old_index.spans, index.spans, len(old_index.chunks))
        self._functions = _carry(old._functions, old._function_rows, self._function_rows, mapping, index.terms)
        self._files = _carry(old._files, old._file_rows, self._file_rows, mapping, index.terms)

    def score(self, query: IssueQuery) -> Scores:
        functions: dict[int, float] = {}
        files: dict[str, float] = {}
        if self._function_rows and query.terms:
            values = self._functions.scores(query.terms)
            functions = dict(zip(self._function_rows, values.tolist()))
        if self._file_rows and query.terms:
            values = self._files.scores(query.terms)
            files = dict(zip(self._paths, values.tolist()))
        return Scores(functions, files)


def _carry(bm25: IncrementalBM25, old_rows: list[int], new_rows: list[int], mapping: np.ndarray,
           terms: list[list[str]]) -> IncrementalBM25:
    """``bm25`` (whose slots are ``old_rows``) updated to slots ``new_rows`` of the new snapshot."""
    slot_of_row = np.full(len(terms), -1, dtype=np.int64)
    slot_of_row[new_rows] = np.arange(len(new_rows))
    moved = mapping[np.asarray(old_rows, dtype=np.int64)]
    carried = np.where(moved >= 0, slot_of_row[np.maximum(moved, 0)], -1)
    added = np.setdiff1d(np.arange(len(new_rows)), carried[carried >= 0], assume_unique=True)
    return bm25.updated(carried, added.tolist(), [terms[row] for row in new_rows])


class DenseRetriever:
    """FAISS inner product over normalized embeddings (cosine similarity)."""

    name = "dense"

    def __init__(self, index: RepoIndex, embedder) -> None:
        if index.embeddings is None:
            raise ValueError("the dense retriever needs a snapshot built with an encoder")
        self._index = index
        self._embedder = embedder
        self._faiss = flat_ip_index(index.embeddings)
        self._is_function = np.array([c.is_function for c in index.chunks], dtype=bool)

    def score(self, query: IssueQuery) -> Scores:
        n = self._faiss.ntotal
        if n == 0:
            return Scores({}, {})
        vector = self._embedder.encode_query(query.dense_text).reshape(1, -1).astype(np.float32)
        values, rows = search(self._faiss, vector, n)
        functions: dict[int, float] = {}
        files: dict[str, float] = {}
        chunks = self._index.chunks
        for value, row in zip(values[0].tolist(), rows[0].tolist()):
            if row < 0:
                continue
            if self._is_function[row]:
                functions[row] = value
            path = chunks[row].path
            if path not in files:  # results arrive best first: the first hit is the file's max
                files[path] = value
        return Scores(functions, files)


class HybridRetriever:
    """Reciprocal rank fusion of BM25 and dense, per level."""

    name = "hybrid"

    def __init__(self, bm25: BM25Retriever, dense: DenseRetriever, k: int = 60) -> None:
        self.bm25 = bm25
        self._dense = dense
        self._k = k

    def score(self, query: IssueQuery) -> Scores:
        sparse = self.bm25.score(query)
        dense = self._dense.score(query)
        return Scores(
            functions=reciprocal_rank_fusion([order(sparse.functions), order(dense.functions)], self._k),
            files=reciprocal_rank_fusion([order(sparse.files), order(dense.files)], self._k),
        )


def bm25_part(retriever: Retriever) -> BM25Retriever | None:
    """The BM25 index inside a retriever (itself, or hybrid's sparse half); None for dense."""
    if isinstance(retriever, BM25Retriever):
        return retriever
    return getattr(retriever, "bm25", None)
