"""The library API that the ``localize`` CLI is a thin layer over.

    from localizer import Localizer, LocalizeConfig
    result = Localizer("path/to/repo", LocalizeConfig(retriever="bm25")).localize(issue_text)
    for hit in result.functions[:5]:
        print(hit.path, hit.name, hit.start_line, hit.score)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer.errors import IssueError, RepositoryError
from indexer.index import IndexConfig, Progress, RepoIndex, build_index

from localizer.embedding.embedder import Embedder, EmbedderConfig
from localizer.retrieval.query import IssueQuery, build_query
from localizer.retrieval.ranking import final_scores, order
from localizer.rerank.reranker import ListwiseReranker, RerankConfig
from localizer.retrieval.retrievers import RETRIEVERS, BM25Retriever, DenseRetriever, HybridRetriever, Retriever, Scores

log = logging.getLogger(__name__)

LEVELS = ("file", "function", "both")
DEFAULT_RETRIEVER = "bm25"  # measured better than hybrid and dense with the default MiniLM (benchmarks/RESULTS.md)


@dataclass(frozen=True)
class LocalizeConfig:
    """One object for every knob of a localization run (CLI flags map onto it one to one)."""

    rev: str | None = None
    retriever: str = DEFAULT_RETRIEVER
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    top_k: int = 10
    mention_boost: float = 1.0  # 0 turns off boosting of files/functions the issue names
    # LLM listwise reranking of the top functions; off until a trained model measurably helps.
    rerank: RerankConfig | None = None

    def __post_init__(self) -> None:
        if self.retriever not in RETRIEVERS:
            raise ValueError(f"unknown retriever {self.retriever!r}; choose one of {', '.join(RETRIEVERS)}")
        if self.top_k < 1:
            raise ValueError("top_k must be at least 1")


@dataclass(frozen=True)
class FileHit:
    path: str
    score: float


@dataclass(frozen=True)
class FunctionHit:
    path: str
    name: str
    kind: str
    start_line: int
    end_line: int
    score: float


@dataclass
class LocalizationResult:
    files: list[FileHit]
    functions: list[FunctionHit]
    retriever: str
    repo: str
    commit: str | None
    seconds: float

    def to_json_dict(self, level: str = "both") -> dict[str, Any]:
        """The documented JSON contract: ``files`` and ``functions``, both always present."""
        return {
            "files": [] if level == "function" else [{"path": f.path, "score": round(f.score, 6)} for f in self.files],
            "functions": []
            if level == "file"
            else [
                {"path": f.path, "name": f.name, "start_line": f.start_line, "end_line": f.end_line, "score": round(f.score, 6)}
                for f in self.functions
            ],
        }


def validate_issue_text(text: str) -> str:
    if "\0" in text:
        raise IssueError("the issue looks like a binary file, not text")
    if not text.strip():
        raise IssueError("the issue is empty: give its title and description")
    return text


def read_issue(path: str | Path) -> str:
    """Read an issue file (``-`` is handled by the CLI); clear errors for missing, binary or empty files."""
    path = Path(path)
    if not path.exists():
        raise IssueError(f"issue file does not exist: {path}")
    if path.is_dir():
        raise IssueError(f"issue path is a directory, not a file: {path}")
    return decode_issue(path.read_bytes(), f"issue file {path}")


def decode_issue(data: bytes, source: str = "the issue") -> str:
    """Issue bytes from a file or stdin as text; binary and empty input are clear errors."""
    if b"\0" in data[:8192]:
        raise IssueError(f"{source} looks binary, not text")
    return validate_issue_text(data.decode("utf-8", errors="replace"))


class Localizer:
    """Indexes a repository once, then ranks suspect files and functions for any number of issues."""

    def __init__(self, repo: str | Path, config: LocalizeConfig | None = None, progress: Progress | None = None) -> None:
        self.repo = Path(repo)
        self.config = config or LocalizeConfig()
        self._progress = progress
        self._embedder: Embedder | None = None
        self._index: RepoIndex | None = None
        self._retriever: Retriever | None = None
        self._ranked_index: RepoIndex | None = None
        self._reranker: ListwiseReranker | None = None

    @property
    def embedder(self) -> Embedder | None:
        if self._embedder is None and self.config.retriever in ("dense", "hybrid"):
            self._embedder = Embedder(self.config.embedder)
        return self._embedder

    def index(self) -> RepoIndex:
        """Build (or refresh from the cache) the snapshot; later calls reuse it in memory."""
        if self._index is None:
            self._index = build_index(
                self.repo, self.config.rev, encoder=self.embedder, config=self.config.index, progress=self._progress
            )
            if not self._index.chunks:
                raise RepositoryError(f"no indexable source files in {self._index.description}")
        return self._index

    def retriever(self) -> Retriever:
        if self._retriever is None:
            index = self.index()
            kind = self.config.retriever
            if kind == "bm25":
                self._retriever = BM25Retriever(index)
            elif kind == "dense":
                self._retriever = DenseRetriever(index, self.embedder)
            else:
                self._retriever = HybridRetriever(BM25Retriever(index), DenseRetriever(index, self.embedder))
            self._ranked_index = index
        return self._retriever

    @property
    def reranker(self) -> ListwiseReranker | None:
        """The listwise reranker when ``config.rerank`` is set; its model loads on first use."""
        if self._reranker is None and self.config.rerank is not None:
            self._reranker = ListwiseReranker(self.config.rerank)
        return self._reranker

    def localize(self, issue_text: str, top_k: int | None = None) -> LocalizationResult:
        started = time.perf_counter()
        query = build_query(validate_issue_text(issue_text))
        retriever = self.retriever()
        scores = retriever.score(query)
        files, functions = self._rank(query, scores, top_k or self.config.top_k, issue_text)
        return LocalizationResult(
            files=files,
            functions=functions,
            retriever=retriever.name,
            repo=str(self.index().root),
            commit=self.index().commit,
            seconds=time.perf_counter() - started,
        )

    def _rank(self, query: IssueQuery, scores: Scores, top_k: int,
              issue_text: str = "") -> tuple[list[FileHit], list[FunctionHit]]:
        assert self._ranked_index is not None
        chunks = self._ranked_index.chunks
        file_scores, function_scores = final_scores(query, scores, chunks, self.config.mention_boost)
        file_order, function_order = order(file_scores), order(function_scores)
        if self.reranker is not None and function_order:
            # Functions are reranked; files follow the reranked functions (localizer/rerank/localize.py).
            from localizer.rerank.localize import promote_files, rerank_function_rows, rescore_by_position

            function_order, function_scores, _ = rerank_function_rows(
                self.reranker, issue_text or query.text, function_order, chunks, function_scores)
            head = function_order[: self.config.rerank.depth]
            file_order = promote_files([chunks[row].path for row in head], file_order)
            file_scores = rescore_by_position(file_order, file_scores)
        files = [FileHit(path, file_scores[path]) for path in file_order[:top_k]]
        functions = []
        for row in function_order[:top_k]:
            chunk = chunks[row]
            functions.append(
                FunctionHit(chunk.path, chunk.name, chunk.kind, chunk.start_line, chunk.end_line, function_scores[row])
            )
        return files, functions
