"""Where reranking meets the localizer: the candidates it reads and the file order that follows it.

:class:`localizer.pipeline.RankingPipeline` reorders the top functions with these pieces.

Functions are reranked, files are derived: the files of the reranked top functions come
first, in order of their first appearance, then every other file in the retriever's order.
This follows the paper's protocol (files ranked by first appearance in the function ranking)
and costs no second set of model calls; file texts are also far longer than any window budget.
Scores are handed out by position from the sorted original scores, so they stay on the
retriever's 0-1 scale and decrease down each list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from localizer.rerank.types import Candidate

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


def rescore_by_position(new_order: Sequence[str], scores: dict[str, float]) -> dict[str, float]:
    """Give the i-th item of ``new_order`` the i-th best original score (monotone, same scale)."""
    values = sorted((scores.get(k, 0.0) for k in new_order), reverse=True)
    return dict(zip(new_order, values))
