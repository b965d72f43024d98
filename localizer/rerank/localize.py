"""Where reranking meets the localizer: the candidates it reads and the file order that follows it.

:class:`localizer.pipeline.RankingPipeline` reorders the top functions with these pieces.

Functions are reranked, files are derived, at no second set of model calls (file texts are
also far longer than any window budget). Two ways (``RerankConfig.files``):

* ``promote``: the files of the reranked top functions come first, in order of their first
  appearance, then every other file in the retriever's order: the paper's protocol (files
  ranked by first appearance in the function ranking).
* ``rrf``: the files of the *model's own* function order (before function-level fusion, which would
  count the first stage twice), fused by reciprocal rank with the file ranker's own order. Why:
  the pipeline ranks files with a learned file-level ranker, which is better at file@1 than
  the files of its own function ranking (Lite-140: 55.7 against 50.7, ``file@1 (via fn)``), so
  promoting alone starts a reranker five points behind on files.
Scores are handed out by position from the sorted original scores, so they stay on the
retriever's 0-1 scale and decrease down each list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from localizer.rerank.fusion import RRF_K
from localizer.rerank.types import Candidate
from localizer.retrieval.ranking import reciprocal_rank_fusion

if TYPE_CHECKING:
    from indexer.chunking.chunk import Chunk


def function_candidates(rows: Sequence[int], chunks: Sequence["Chunk"], scores: dict[int, float]) -> list[Candidate]:
    return [
        Candidate(docid=str(row), title=f"{chunks[row].path}::{chunks[row].name}", text=chunks[row].text,
                  score=scores[row], meta={"row": row})
        for row in rows
    ]


def promote_files(function_paths: Sequence[str], file_order: Sequence[str]) -> list[str]:
    """Files of the (reranked) top functions first, by first appearance, then the rest in retriever order."""
    promoted = list(dict.fromkeys(function_paths))
    seen = set(promoted)
    return promoted + [p for p in file_order if p not in seen]


FILE_ORDERS = ("promote", "rrf")


def reranked_files(policy: str, function_paths: Sequence[str], file_order: Sequence[str], k: int = RRF_K) -> list[str]:
    """The file order after reranking (see the module docstring); ``function_paths`` are the paths of the
    reranked functions, best first, ``file_order`` the retriever's files, best first."""
    promoted = promote_files(function_paths, file_order)
    if policy == "promote":
        return promoted
    if policy != "rrf":
        raise ValueError(f"unknown reranked file order {policy!r}; choose one of {', '.join(FILE_ORDERS)}")
    if k < 1:
        raise ValueError("the RRF constant k must be at least 1")
    fused = reciprocal_rank_fusion([promoted, list(dict.fromkeys(file_order))], k)
    place = {path: i for i, path in enumerate(promoted)}
    return sorted(promoted, key=lambda path: (-fused[path], place[path]))


def rescore_by_position(new_order: Sequence[str], scores: dict[str, float]) -> dict[str, float]:
    """Give the i-th item of ``new_order`` the i-th best original score (monotone, same scale)."""
    values = sorted((scores.get(k, 0.0) for k in new_order), reverse=True)
    return dict(zip(new_order, values))
