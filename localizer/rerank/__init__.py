"""LLM listwise reranking of retrieved functions (CoRNStack / SweRank inference side).

    from localizer.rerank import Candidate, ListwiseReranker, RerankConfig
    result = ListwiseReranker(RerankConfig(depth=20)).rerank(issue_text, candidates)

Pure parts (``prompt``, ``window``, ``parse``) need no model; ``models`` and ``scorers`` hold
torch and transformers and are imported only when a reranker runs.
"""

from localizer.rerank.parse import parse_permutation
from localizer.rerank.prompt import SYSTEM_MESSAGE, PromptBudget, answer_text, build_messages, build_prompt
from localizer.rerank.reranker import ListwiseReranker, RerankConfig, candidate_text
from localizer.rerank.types import Candidate, Query, Result, WindowCall
from localizer.rerank.window import sliding_rerank, window_spans

__all__ = [
    "SYSTEM_MESSAGE",
    "Candidate",
    "ListwiseReranker",
    "PromptBudget",
    "Query",
    "RerankConfig",
    "Result",
    "WindowCall",
    "answer_text",
    "build_messages",
    "build_prompt",
    "candidate_text",
    "parse_permutation",
    "sliding_rerank",
    "window_spans",
]
