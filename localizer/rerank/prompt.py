"""The listwise prompt for GitHub issues (CoRNStack / SweRank) and its token budget.

The wording follows the CoRNStack reranker and SweRank: numbered candidates ``[1]..[n]``
between a header and a footer that both carry the issue, and the answer ``[4] > [2] > ...``.
One departure: each candidate is also *closed* by its id (``(end of [3])``, see
:func:`candidate_block`), because the small model binds an answer id to the text before it.
Training (``cornstack_train``) must build prompts with :func:`build_messages` and targets with
:func:`answer_text` so that the fine-tuned model sees at inference exactly what it learned on.

Budgets are in tokens of the model's own tokenizer. Each candidate is cut to
``candidate_tokens`` and the issue to ``issue_tokens`` in the header; the footer repeats
only its first ``footer_issue_tokens`` (the title and opening lines: on a CPU every token
counts, and the full text is already in the header). When the whole prompt would still
exceed ``max_prompt_tokens`` (the model's context minus room for the answer), candidates
shrink first down to ``min_candidate_tokens``, then the issue, until it fits. The final
prompt is measured after the chat template is applied, so the guarantee holds for what the
model actually reads.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Protocol, Sequence

SYSTEM_MESSAGE = (
    "You are CodeRankLLM, an intelligent assistant that can rank code functions based on their "
    "relevance to contain the faults causing a GitHub issue."
)


class Tokenizer(Protocol):
    """What budgeting needs; a Hugging Face tokenizer qualifies."""

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = ...) -> str: ...


@dataclass(frozen=True)
class PromptBudget:
    """Token budgets. The defaults suit a CPU (about 1,250 tokens for a window of 10); raise
    ``candidate_tokens`` on a GPU, where the model can read whole functions."""

    max_prompt_tokens: int = 4096
    issue_tokens: int = 192
    candidate_tokens: int = 64
    min_candidate_tokens: int = 24
    footer_issue_tokens: int = 64

    def __post_init__(self) -> None:
        if min(self.max_prompt_tokens, self.issue_tokens, self.candidate_tokens) < 1 or min(
                self.min_candidate_tokens, self.footer_issue_tokens) < 0:
            raise ValueError("token budgets must be positive")


@dataclass(frozen=True)
class Prompt:
    text: str  # chat template applied, ending where the assistant's answer starts
    n: int
    tokens: int
    issue_tokens: int  # budget the issue was cut to
    candidate_tokens: int  # budget each candidate was cut to


_ID_IN_TEXT = re.compile(r"\[(\d+)\]")


def neutralize_ids(text: str) -> str:
    """``x[1]`` in code would read as a candidate id: render it ``x(1)`` as rank_llm does."""
    return _ID_IN_TEXT.sub(r"(\1)", text)


def header_text(issue: str, n: int) -> str:
    return (
        f"I will provide you with {n} code functions, each indicated by a numerical identifier []. "
        f"Rank the code functions based on their relevance to contain the faults causing the GitHub issue: {issue}.\n"
    )


def footer_text(issue: str, n: int) -> str:
    example = "[2] > [1]" if n < 4 else "[4] > [2]"
    return (
        f"GitHub Issue: {issue}. \nRank the {n} code functions above based on their relevance to contain the "
        f"faults causing the GitHub issue. All the code functions should be included and listed using identifiers, "
        f"in descending order of relevance. The output format should be [] > [], e.g., {example}. "
        f"Only respond with the ranking results, do not say any word or explain."
    )


# The prompt layout's version: an adapter learns one layout, so train-reranker records it and
# ship-reranker refuses an adapter trained on another. 2: candidates closed by their id.
PROMPT_FORMAT = 2
LEGACY_PROMPT_FORMAT = 1  # what a training record without ``prompt_format`` was trained on


def recorded_prompt_format(training: dict) -> int:
    """The layout a ``train-reranker`` record (``training.json``) says its adapter learned."""
    return training.get("prompt_format", LEGACY_PROMPT_FORMAT)


def candidate_block(i: int, text: str) -> str:
    """Candidate ``i`` opened *and closed* by its id: ``[i] text`` then ``(end of [i])``.

    rank_llm and the paper only open each passage with ``[i]``. Measured on the packaged
    Qwen2.5-Coder-0.5B (2026-12-08, dev-2c-bf16): asked which of ten one-line functions has a
    given name, it answered with the *next* candidate's id in 6 of 10 lists (the id that follows
    the matching text) and right in 2; with the closing id, right in 8. Trained with LoRA
    (first-token loss, lr 2e-4, 32-token candidates, queries naming the positive function, the same
    seed and batches), the loss left chance (ln 10 / 2 = 1.15) by step 70 with the closing id (10-step
    means 0.72 at steps 61-70, 0.09 at 91-100, 0.01 at 111-120) and stayed between 1.05 and 1.67
    through step 120 without it. The cost is about 6 tokens per candidate.
    """
    return f"[{i}] {neutralize_ids(text)}\n(end of [{i}])\n"


def user_text(issue: str, candidates: Sequence[str], footer_issue: str | None = None) -> str:
    n = len(candidates)
    body = "".join(candidate_block(i, text) for i, text in enumerate(candidates, 1))
    return f"{header_text(issue, n)}\n{body}{footer_text(issue if footer_issue is None else footer_issue, n)}"


def build_messages(issue: str, candidates: Sequence[str], system_message: str | None = SYSTEM_MESSAGE,
                   footer_issue: str | None = None) -> list[dict]:
    """Chat messages for one window (already-truncated texts); the footer repeats ``footer_issue``
    (default: the whole issue, as in the paper)."""
    messages = [{"role": "system", "content": system_message}] if system_message else []
    return messages + [{"role": "user", "content": user_text(issue, candidates, footer_issue)}]


def answer_text(order: Sequence[int]) -> str:
    """The target answer for a best-first order of 0-based window positions: ``[3] > [1] > [2]``."""
    return " > ".join(f"[{i + 1}]" for i in order)


def render_chat(tokenizer, messages: list[dict]) -> str:
    """The model's chat template when it has one; a plain transcript otherwise (base models)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in messages) + "Assistant: "


def truncate_tokens(tokenizer: Tokenizer, text: str, budget: int) -> str:
    """``text`` cut to at most ``budget`` tokens, checked by re-encoding (a cut can split a character)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) <= budget:
        return text
    keep = budget
    while keep > 0:
        cut = tokenizer.decode(ids[:keep], skip_special_tokens=True)
        if len(tokenizer.encode(cut, add_special_tokens=False)) <= budget:
            return cut
        keep -= 1
    return ""


def count_tokens(tokenizer: Tokenizer, text: str) -> int:
    # The rendered chat text already carries its special tokens; adding BOS again would miscount.
    return len(tokenizer.encode(text, add_special_tokens=False))


def build_prompt(tokenizer, issue: str, candidates: Sequence[str], budget: PromptBudget,
                 system_message: str | None = SYSTEM_MESSAGE) -> Prompt:
    """The window's prompt within ``budget``; raises ValueError if not even empty texts fit."""
    n = len(candidates)
    issue_budget, cand_budget = budget.issue_tokens, budget.candidate_tokens
    while True:
        issue_cut = truncate_tokens(tokenizer, issue.strip(), issue_budget)
        footer_cut = truncate_tokens(tokenizer, issue_cut, min(issue_budget, budget.footer_issue_tokens))
        cands_cut = [truncate_tokens(tokenizer, c, cand_budget) for c in candidates]
        text = render_chat(tokenizer, build_messages(issue_cut, cands_cut, system_message, footer_cut))
        tokens = count_tokens(tokenizer, text)
        overflow = tokens - budget.max_prompt_tokens
        if overflow <= 0:
            return Prompt(text, n, tokens, issue_budget, cand_budget)
        floor = min(budget.min_candidate_tokens, cand_budget)
        if n and cand_budget > floor:
            cand_budget = max(floor, cand_budget - max(1, math.ceil(overflow / n)))
        elif issue_budget > 0:
            issue_budget = max(0, issue_budget - max(1, math.ceil(overflow / 2)))  # it may appear twice
        elif cand_budget > 0:
            cand_budget = max(0, cand_budget - max(1, math.ceil(overflow / max(n, 1))))
        else:
            raise ValueError(
                f"a window of {n} candidates needs {tokens} tokens even with empty texts, "
                f"over the prompt limit of {budget.max_prompt_tokens}: use a smaller window"
            )
