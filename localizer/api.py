"""The library API that the ``localize`` CLI is a thin layer over.

    from localizer import Localizer, LocalizeConfig
    result = Localizer("path/to/repo", LocalizeConfig(retriever="bm25")).localize(issue_text)
    for hit in result.functions[:5]:
        print(hit.path, hit.name, hit.start_line, hit.score)

The ranking itself is :class:`localizer.pipeline.RankingPipeline`'s, the same code the
benchmark harness measures; this module indexes once and turns rankings into hits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexer.errors import RepositoryError
from indexer.index import Progress, RepoIndex

from localizer.config import DEFAULT_RETRIEVER, LEVELS, LocalizeConfig
from localizer.history.signals import SimilarCommit
from localizer.issue_input import decode_issue, read_issue, validate_issue_text
from localizer.pipeline import Ranking, RankingPipeline

if TYPE_CHECKING:
    from localizer.embedding.embedder import Embedder
    from localizer.rerank.reranker import ListwiseReranker

__all__ = ["DEFAULT_RETRIEVER", "LEVELS", "FileHit", "FunctionHit", "LocalizationResult", "LocalizeConfig",
           "Localizer", "decode_issue", "read_issue", "validate_issue_text"]


@dataclass(frozen=True)
class FileHit:
    path: str
    score: float
    evidence: tuple[SimilarCommit, ...] = ()  # similar past commits that changed this file


@dataclass(frozen=True)
class FunctionHit:
    path: str
    name: str
    kind: str
    start_line: int
    end_line: int
    score: float
    evidence: tuple[SimilarCommit, ...] = ()  # similar past commits that changed this function


def _with_evidence(item: dict[str, Any], evidence: tuple[SimilarCommit, ...]) -> dict[str, Any]:
    """The optional ``evidence`` field: present only when a similar past commit supports the item."""
    if evidence:
        item["evidence"] = [commit.to_json_dict() for commit in evidence]
    return item


@dataclass
class LocalizationResult:
    files: list[FileHit]
    functions: list[FunctionHit]
    retriever: str
    repo: str
    commit: str | None
    seconds: float
    notes: list[str] = field(default_factory=list)  # e.g. why the run had no history

    def to_json_dict(self, level: str = "both") -> dict[str, Any]:
        """The documented JSON contract: ``files`` and ``functions``, both always present; an item may
        add ``evidence``, the similar past commits that changed it (sha, date, subject)."""
        return {
            "files": [] if level == "function" else [
                _with_evidence({"path": f.path, "score": round(f.score, 6)}, f.evidence) for f in self.files],
            "functions": []
            if level == "file"
            else [
                _with_evidence({"path": f.path, "name": f.name, "start_line": f.start_line, "end_line": f.end_line,
                                "score": round(f.score, 6)}, f.evidence)
                for f in self.functions
            ],
        }

    @classmethod
    def from_ranking(cls, ranking: Ranking, top_k: int, retriever: str, seconds: float,
                     notes: list[str] | None = None) -> "LocalizationResult":
        """The top ``top_k`` of each level of a full ranking."""
        chunks = ranking.index.chunks
        signals = ranking.history
        return cls(
            files=[FileHit(path, ranking.file_scores[path], signals.evidence(path) if signals else ())
                   for path in ranking.files[:top_k]],
            functions=[
                FunctionHit(chunks[row].path, chunks[row].name, chunks[row].kind, chunks[row].start_line,
                            chunks[row].end_line, ranking.function_scores[row],
                            signals.evidence(chunks[row].path, chunks[row].name) if signals else ())
                for row in ranking.functions[:top_k]
            ],
            retriever=retriever,
            repo=str(ranking.index.root),
            commit=ranking.index.commit,
            seconds=seconds,
            notes=list(notes or []),
        )


class Localizer:
    """Indexes a repository once, then ranks suspect files and functions for any number of issues.

    ``embedder`` and ``reranker`` inject already loaded models (shared, or fakes in tests).
    """

    def __init__(self, repo: str | Path, config: LocalizeConfig | None = None, progress: Progress | None = None, *,
                 embedder: "Embedder | None" = None, reranker: "ListwiseReranker | None" = None) -> None:
        self.repo = Path(repo)
        self.config = config or LocalizeConfig()
        self.pipeline = RankingPipeline(self.config, embedder=embedder, reranker=reranker)
        self._progress = progress
        self._index: RepoIndex | None = None

    @property
    def embedder(self) -> "Embedder | None":
        return self.pipeline.embedder

    @property
    def reranker(self) -> "ListwiseReranker | None":
        return self.pipeline.reranker

    def index(self, previous: RepoIndex | None = None) -> RepoIndex:
        """Build (or refresh from the cache) the snapshot; later calls reuse it in memory.

        ``previous``, an earlier snapshot of the same repository, lends its unchanged files.
        """
        if self._index is None:
            index = self.pipeline.build_index(self.repo, progress=self._progress, previous=previous)
            if not index.chunks:
                raise RepositoryError(f"no indexable source files in {index.description}")
            self._index = index
        return self._index

    def rank(self, issue_text: str) -> Ranking:
        """Every scored file and function, best first (what ``localize`` takes its top k from)."""
        return self.pipeline.rank(self.index(), issue_text)

    def localize(self, issue_text: str, top_k: int | None = None) -> LocalizationResult:
        started = time.perf_counter()
        ranking = self.rank(issue_text)
        notes = [note for note in (self.pipeline.history_note, self.pipeline.rerank_note) if note]
        return LocalizationResult.from_ranking(ranking, top_k or self.config.top_k, self.config.retriever,
                                               time.perf_counter() - started, notes)
