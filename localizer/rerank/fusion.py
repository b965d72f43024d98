"""Fusing the LLM's order with the first stage's, pure and model-free.

The reranker is trained on shuffled candidates (so it cannot learn position), which also means it
ignores the retriever's order, and that order is informative: measured on held-out lists, the
trained model lifts many positives the retriever ranked low but drops some it already had first.
Reciprocal-rank fusion of the two orders keeps what each is good at without comparing their
scores, whose scales have nothing in common. Ties go to the LLM's order.
"""

from __future__ import annotations

from typing import Sequence

from localizer.retrieval.ranking import reciprocal_rank_fusion

FUSIONS = ("none", "rrf")
RRF_K = 60  # the usual RRF constant, as the hybrid retriever uses


def fuse_with_first_stage(llm_order: Sequence[int], k: int = RRF_K) -> list[int]:
    """Positions of a first-stage list (0 is its best) in the RRF order of the LLM and the first stage.

    ``llm_order`` is the LLM's best-first order of those positions, a permutation of ``range(n)``.
    """
    if sorted(llm_order) != list(range(len(llm_order))):
        raise ValueError(f"{list(llm_order)} is not a permutation of 0..{len(llm_order) - 1}")
    if k < 1:
        raise ValueError("the RRF constant k must be at least 1")
    fused = reciprocal_rank_fusion([list(llm_order), list(range(len(llm_order)))], k)
    llm_rank = {position: rank for rank, position in enumerate(llm_order)}
    return sorted(llm_order, key=lambda position: (-fused[position], llm_rank[position]))


def apply_fusion(fusion: str, llm_order: Sequence[int], k: int = RRF_K) -> list[int]:
    """``llm_order`` itself for ``none``; its fusion with the first stage for ``rrf``."""
    if fusion == "none":
        return list(llm_order)
    if fusion == "rrf":
        return fuse_with_first_stage(llm_order, k)
    raise ValueError(f"unknown fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")
