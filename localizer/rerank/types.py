"""The reranker's data, shaped like rank_llm's so results can be compared and exchanged.

A :class:`Candidate` is one code unit (a function, or a file) with the retriever's score; a
:class:`Result` is the reordered list plus a record of every window the model saw, so a wrong
order can be traced back to the prompt and the answer that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Query:
    text: str
    qid: str = ""


@dataclass
class Candidate:
    """``title`` names the unit in the prompt (path and qualified name); ``text`` is its code."""

    docid: str
    text: str
    title: str = ""
    score: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WindowCall:
    """One model call: the window it reordered, what the model said, and the order taken from it."""

    start: int
    end: int
    prompt_tokens: int
    response: str
    order: tuple[int, ...]  # 0-based positions within the window, best first
    seconds: float


@dataclass
class Result:
    query: Query
    candidates: list[Candidate]
    invocations: list[WindowCall] = field(default_factory=list)
    seconds: float = 0.0
    # The model's own best-first order of the reranked head, as positions in the input list, before
    # any fusion with the first stage: what a caller needs to fuse differently.
    model_order: list[int] = field(default_factory=list)
