"""BM25, dense and hybrid scoring over one repository snapshot.

Each retriever scores function/method chunks (the function ranking) and files
(the file ranking). BM25 ranks files by their whole text; dense ranks a file by
its best chunk, since a file's embedding sees only its first few hundred tokens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from indexer.index import RepoIndex

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
    """bm25s over identifier sub-words: functions as units, and whole files as units."""

    name = "bm25"

    def __init__(self, index: RepoIndex) -> None:
        import bm25s

        # bm25s sets its own logger to DEBUG on import, which floods stderr.
        logging.getLogger("bm25s").setLevel(logging.WARNING)

        self._function_rows = _function_rows(index)
        self._file_rows = [i for i, c in enumerate(index.chunks) if c.kind == "file"]
        self._paths = [index.chunks[i].path for i in self._file_rows]
        self._functions = bm25s.BM25()
        self._files = bm25s.BM25()
        # bm25s needs a non-empty corpus; an empty list scores nothing anyway.
        if self._function_rows:
            self._functions.index([index.terms[i] for i in self._function_rows], show_progress=False)
        if self._file_rows:
            self._files.index([index.terms[i] for i in self._file_rows], show_progress=False)

    def score(self, query: IssueQuery) -> Scores:
        functions: dict[int, float] = {}
        files: dict[str, float] = {}
        if self._function_rows and query.terms:
            values = self._functions.get_scores(query.terms)
            functions = {row: float(v) for row, v in zip(self._function_rows, values)}
        if self._file_rows and query.terms:
            values = self._files.get_scores(query.terms)
            files = {path: float(v) for path, v in zip(self._paths, values)}
        return Scores(functions, files)


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
        self._bm25 = bm25
        self._dense = dense
        self._k = k

    def score(self, query: IssueQuery) -> Scores:
        sparse = self._bm25.score(query)
        dense = self._dense.score(query)
        return Scores(
            functions=reciprocal_rank_fusion([order(sparse.functions), order(dense.functions)], self._k),
            files=reciprocal_rank_fusion([order(sparse.files), order(dense.files)], self._k),
        )
