"""The listwise reranker: retriever candidates in, a better order of the top ``depth`` out.

It ties the pure parts together (prompt budgeting, sliding windows, permutation parsing)
around a scorer that holds the model. Only the top ``depth`` candidates are reordered; the
rest keep their place below them. Scores are handed out by position from the original
sorted scores, as rank_llm does, so they stay on the retriever's scale and decrease down the
list; each candidate keeps its own retriever score in ``meta["retriever_score"]``. With
``fusion="rrf"`` (the default) the model's order is fused with the first stage's (``fusion.py``)
before that; ``Result.model_order`` keeps the model's own order either way.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Sequence

from localizer.rerank.fusion import FUSIONS, RRF_K, apply_fusion
from localizer.rerank.localize import FILE_ORDERS
from localizer.rerank.models import DEFAULT_RERANKER, LoadedModel, load_reranker_model
from localizer.rerank.prompt import SYSTEM_MESSAGE, PromptBudget, build_prompt
from localizer.rerank.scorers import MODES, WindowScorer, make_scorer
from localizer.rerank.types import Candidate, Query, Result, WindowCall
from localizer.rerank.window import WindowTask, sliding_rerank_batch

log = logging.getLogger(__name__)

ANSWER_ROOM = 128  # tokens kept free after the prompt for the answer


@dataclass(frozen=True)
class RerankConfig:
    """Every knob of reranking; the CLI's ``--rerank-*`` flags map onto it."""

    model: str | None = DEFAULT_RERANKER  # packaged name, HF id, local dir or .gguf file
    adapter: str | None = None  # peft LoRA adapter directory
    # A top 20 in two windows, 8-20 then 0-12 (four candidates carried up), rather than rank_llm's 10/5 in
    # three: on the held-out lists at 1,000 steps, fused MRR@10 0.5243 vs 0.5258, Recall@1 0.445 vs 0.435,
    # file@1 0.665 vs 0.660, in 35% less model time (a fresh `localize` 1 s faster, against a 10 s budget).
    window: int = 12
    stride: int = 8
    depth: int = 20
    mode: str = "first-token"
    issue_tokens: int = 192
    candidate_tokens: int = 64
    min_candidate_tokens: int = 24
    footer_issue_tokens: int = 64  # the footer repeats the issue's opening only (see prompt.py)
    max_prompt_tokens: int | None = None  # None: the model's context minus room for the answer
    device: str = "auto"
    dtype: str = "auto"  # auto: bf16 where the hardware has it natively, else fp32
    batch_size: int = 4
    system_message: str | None = SYSTEM_MESSAGE
    # rrf: fuse the model's order with the first stage's (fusion.py); measured better than the model's
    # order alone on SWE-bench, zero-shot and trained (benchmarks/RESULTS.md). none: the model's order.
    fusion: str = "rrf"
    fusion_k: int = RRF_K
    # How files follow the reranked functions (localize.py): promote, the paper's protocol, puts their
    # files first; rrf fuses the model's order with the file ranker's. rrf measured better for every
    # checkpoint and function order on the held-out lists (file@1 0.830 vs the pipeline's 0.765 at 700 steps,
    # promote 0.778; benchmarks/RESULTS.md, "How files follow the reranked functions").
    files: str = "rrf"
    # False when reranking is on because the package ships an adapter, not because the user asked:
    # a model that cannot load is then a note and the ranking goes on without it (shipped.py).
    required: bool = True

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown rerank fusion {self.fusion!r}; choose one of {', '.join(FUSIONS)}")
        if self.fusion_k < 1:
            raise ValueError("the rerank fusion constant must be at least 1")
        if self.files not in FILE_ORDERS:
            raise ValueError(f"unknown reranked file order {self.files!r}; choose one of {', '.join(FILE_ORDERS)}")
        if self.mode not in MODES:
            raise ValueError(f"unknown rerank mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.window < 2 or not 0 < self.stride <= self.window:
            raise ValueError("rerank window must be >= 2 and 0 < stride <= window")
        if self.depth < 1 or self.batch_size < 1:
            raise ValueError("rerank depth and batch size must be at least 1")

    def budget(self, context_size: int) -> PromptBudget:
        limit = context_size - ANSWER_ROOM
        if self.max_prompt_tokens is not None:
            limit = min(limit, self.max_prompt_tokens)
        return PromptBudget(max_prompt_tokens=limit, issue_tokens=self.issue_tokens,
                            candidate_tokens=self.candidate_tokens, min_candidate_tokens=self.min_candidate_tokens,
                            footer_issue_tokens=self.footer_issue_tokens)


def candidate_text(candidate: Candidate) -> str:
    """What the model reads for a candidate: its name line, then its code."""
    return f"{candidate.title}\n{candidate.text}" if candidate.title else candidate.text


class ListwiseReranker:
    """Loads the model on first use; ``loaded`` injects one (tests, or sharing across configs)."""

    def __init__(self, config: RerankConfig | None = None, loaded: LoadedModel | None = None) -> None:
        self.config = config or RerankConfig()
        self._loaded = loaded
        self._scorer: WindowScorer | None = None

    @property
    def loaded(self) -> LoadedModel:
        if self._loaded is None:
            c = self.config
            started = time.perf_counter()
            # first-token scoring only runs forward passes: the plain-torch Qwen2 can serve it
            self._loaded = load_reranker_model(c.model, c.adapter, c.device, c.dtype, scoring_only=c.mode == "first-token")
            log.info("loaded reranker %s on %s (%s) in %.1f s", self._loaded.name, self._loaded.device,
                     self._loaded.dtype, time.perf_counter() - started)
        return self._loaded

    @property
    def scorer(self) -> WindowScorer:
        if self._scorer is None:
            lm = self.loaded
            self._scorer = make_scorer(self.config.mode, lm.model, lm.tokenizer, lm.device, self.config.batch_size)
        return self._scorer

    def rerank(self, query: str | Query, candidates: Sequence[Candidate]) -> Result:
        return self.rerank_batch([query], [candidates])[0]

    def rerank_batch(self, queries: Sequence[str | Query], candidate_lists: Sequence[Sequence[Candidate]]) -> list[Result]:
        """Rerank several queries; the same window step of different queries shares a model batch."""
        if len(queries) != len(candidate_lists):
            raise ValueError("one candidate list per query")
        budget = self.config.budget(self.loaded.context_size)  # loads the model: not part of the timing
        scorer = self.scorer
        started = time.perf_counter()
        qs = [q if isinstance(q, Query) else Query(q) for q in queries]
        heads = [[copy.deepcopy(c) for c in cands[: self.config.depth]] for cands in candidate_lists]
        tails = [[copy.deepcopy(c) for c in cands[self.config.depth:]] for cands in candidate_lists]
        calls: list[list[WindowCall]] = [[] for _ in qs]

        def rank_windows(tasks: list[WindowTask[Candidate]]) -> list[list[int]]:
            prompts = [
                build_prompt(self.loaded.tokenizer, qs[t.owner].text, [candidate_text(c) for c in t.items], budget,
                             self.config.system_message)
                for t in tasks
            ]
            answers = scorer.rank(prompts)
            for task, prompt, answer in zip(tasks, prompts, answers):
                calls[task.owner].append(
                    WindowCall(task.span[0], task.span[1], prompt.tokens, answer.response, tuple(answer.order), answer.seconds)
                )
            return [a.order for a in answers]

        reranked, _ = sliding_rerank_batch(heads, self.config.window, self.config.stride, rank_windows)
        results = []
        model_orders = []
        for i, head in enumerate(reranked):
            position = {id(c): p for p, c in enumerate(heads[i])}
            model_orders.append([position[id(c)] for c in head])
            reranked[i] = [heads[i][p] for p in apply_fusion(self.config.fusion, model_orders[i], self.config.fusion_k)]
        for q, head, tail, original, record, model_order in zip(qs, reranked, tails, candidate_lists, calls,
                                                                 model_orders):
            ordered_scores = sorted((c.score for c in original[: len(head)]), reverse=True)
            for cand, score in zip(head, ordered_scores):
                cand.meta.setdefault("retriever_score", cand.score)
                cand.score = score
            results.append(Result(q, head + tail, record, time.perf_counter() - started, model_order))
        log.info("reranked %d list(s), %d window(s), in %.1f s (%s mode)", len(results),
                 sum(len(r.invocations) for r in results), time.perf_counter() - started, self.config.mode)
        return results
