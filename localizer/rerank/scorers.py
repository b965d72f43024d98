"""Turning prompts into window orders with a causal LM: two ways.

``first-token`` (SweRank): one forward pass over the prompt plus the answer's opening ``[``,
then the model's next-token distribution says which candidate it would name first; ordering
the candidates by it gives the whole window's order without generating. Candidate ids that
are not single tokens (Qwen and Llama spell ``10`` as ``1`` ``0``) are handled exactly: the ids
form a trie of tokens, and where it branches (``[1]`` vs ``[10]``) the few extra positions are
scored by feeding those tokens on top of the cached prompt, never by re-reading the prompt.

``generate``: greedy decoding of the full answer ``[3] > [1] > ...``, parsed robustly. Slower
(one token at a time, ~6 tokens/s for the 0.5B model on 2 cores), but what a listwise model
trained on full permutations was optimized for.

Prompts of the same window size are batched (left-padded, positions from the attention mask).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from localizer.rerank.parse import parse_permutation
from localizer.rerank.prompt import Prompt, answer_text, render_chat

MODES = ("first-token", "generate")
ANSWER_PREFIX = "["


@dataclass(frozen=True)
class WindowAnswer:
    order: list[int]  # 0-based window positions, best first
    response: str
    seconds: float


class WindowScorer(Protocol):
    def rank(self, prompts: Sequence[Prompt]) -> list[WindowAnswer]: ...


# ----------------------------------------------------------------------------- id trie (pure)


@dataclass
class IdTrie:
    """Token sequences of the ids ``1..n`` (each as written after ``[``, closing ``]`` included).

    ``branches`` maps every token prefix where the ids part ways to the tokens that may follow
    there; the root ``()`` is the first answer token.
    """

    sequences: list[tuple[int, ...]]
    branches: dict[tuple[int, ...], list[int]] = field(default_factory=dict)

    @classmethod
    def build(cls, sequences: Sequence[Sequence[int]]) -> "IdTrie":
        seqs = [tuple(s) for s in sequences]
        if len(set(seqs)) != len(seqs) or any(not s for s in seqs):
            raise ValueError("candidate ids must tokenize to distinct, non-empty sequences")
        children: dict[tuple[int, ...], list[int]] = {}
        for seq in seqs:
            for depth in range(len(seq)):
                nxt = children.setdefault(seq[:depth], [])
                if seq[depth] not in nxt:
                    nxt.append(seq[depth])
        return cls(seqs, {prefix: toks for prefix, toks in children.items() if len(toks) > 1})

    def deep_branches(self) -> list[tuple[int, ...]]:
        """Branching prefixes below the root: each needs a short continuation pass."""
        return sorted((p for p in self.branches if p), key=lambda p: (len(p), p))

    def scores(self, branch_logprobs: dict[tuple[int, ...], dict[int, float]]) -> list[float]:
        """log P(id) for each id: the sum, over the branch points on its path, of the log-probability
        of its next token renormalized over the tokens that continue some id there."""
        out = []
        for seq in self.sequences:
            total = 0.0
            for depth in range(len(seq)):
                prefix = seq[:depth]
                if prefix in self.branches:
                    total += branch_logprobs[prefix][seq[depth]]
            out.append(total)
        return out


def id_sequences(tokenizer, n: int) -> list[tuple[int, ...]]:
    """How the model's tokenizer writes ``1]``..``n]`` right after the answer's opening ``[``.

    Measured in the real context (the end of a chat turn plus ``[``) because BPE merges depend
    on what precedes.
    """
    context = render_chat(tokenizer, [{"role": "user", "content": "x"}]) + ANSWER_PREFIX
    base = tokenizer.encode(context, add_special_tokens=False)
    seqs = []
    for k in range(1, n + 1):
        full = tokenizer.encode(context + f"{k}]", add_special_tokens=False)
        if full[: len(base)] == base:
            seqs.append(tuple(full[len(base):]))
        else:  # the id merged with the prefix: fall back to the id on its own
            seqs.append(tuple(tokenizer.encode(f"{k}]", add_special_tokens=False)))
    return seqs


def order_by_scores(scores: Sequence[float]) -> list[int]:
    """Best first; ties keep the retriever's order."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


# ----------------------------------------------------------------------------- model plumbing


def _encode_batch(tokenizer, texts: Sequence[str], device: str):
    import torch

    rows = [tokenizer.encode(t, add_special_tokens=False) for t in texts]
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):  # left padding: every row's last token is at -1
        ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row):] = 1
    return ids.to(device), mask.to(device)


def _positions(mask):
    return (mask.cumsum(-1) - 1).clamp(min=0)


def _cache_kwarg(model) -> str:
    """transformers 5 renamed ``past_key_values`` to ``cache``; accept either."""
    import inspect

    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _last_logits(model, cache=None, **inputs):
    """Logits at the last position only (full logits over a 150k vocabulary would cost GBs), and the KV cache."""
    if cache is not None:
        inputs[_cache_kwarg(model)] = cache
    try:
        out = model(**inputs, logits_to_keep=1, use_cache=True)
    except TypeError:
        out = model(**inputs, use_cache=True)
    cache = getattr(out, "cache", None)
    if cache is None:
        cache = getattr(out, "past_key_values", None)
    return out.logits[:, -1, :].float(), cache


def _groups(prompts: Sequence[Prompt], batch_size: int) -> list[list[int]]:
    """Indices of prompts batched together: same window size (same id trie), at most ``batch_size``."""
    by_n: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_n.setdefault(p.n, []).append(i)
    groups = []
    for idx in by_n.values():
        groups.extend(idx[j:j + batch_size] for j in range(0, len(idx), batch_size))
    return groups


class FirstTokenScorer:
    """Orders a window by the model's distribution over the first candidate id it would write."""

    mode = "first-token"

    MIN_REUSE = 16  # shorter shared prefixes are not worth a cache crop

    def __init__(self, model, tokenizer, device: str = "cpu", batch_size: int = 4, reuse_prefix: bool = True) -> None:
        self.model, self.tokenizer, self.device, self.batch_size = model, tokenizer, device, batch_size
        self.reuse_prefix = reuse_prefix
        self._tries: dict[int, IdTrie] = {}
        self._last: tuple[list[int], object] | None = None  # token ids and KV cache of the last lone prompt
        self.reused_tokens = 0  # prompt tokens served from the cache instead of recomputed

    def trie(self, n: int) -> IdTrie:
        if n not in self._tries:
            self._tries[n] = IdTrie.build(id_sequences(self.tokenizer, n))
        return self._tries[n]

    def rank(self, prompts: Sequence[Prompt]) -> list[WindowAnswer]:
        answers: list[WindowAnswer | None] = [None] * len(prompts)
        for group in _groups(prompts, self.batch_size):
            started = time.perf_counter()
            scores = self._score_group([prompts[i] for i in group])
            seconds = (time.perf_counter() - started) / len(group)
            for i, row in zip(group, scores):
                order = order_by_scores(row)
                answers[i] = WindowAnswer(order, answer_text(order), seconds)
        return answers  # type: ignore[return-value]

    def _score_group(self, prompts: Sequence[Prompt]) -> list[list[float]]:
        import torch

        trie = self.trie(prompts[0].n)
        ids, mask = _encode_batch(self.tokenizer, [p.text + ANSWER_PREFIX for p in prompts], self.device)
        positions = _positions(mask)
        with torch.inference_mode():
            logits, cache = self._prompt_forward(ids, mask, positions)
            per_row: list[dict[tuple[int, ...], dict[int, float]]] = [{} for _ in prompts]
            self._record(per_row, (), logits, trie)
            for prefix in trie.deep_branches():
                if cache is None or not hasattr(cache, "crop"):
                    raise RuntimeError("first-token scoring of multi-token ids needs a croppable KV cache")
                extra = torch.tensor([prefix] * len(prompts), dtype=torch.long, device=self.device)
                ext_mask = torch.cat([mask, torch.ones_like(extra)], dim=1)
                ext_pos = positions[:, -1:] + 1 + torch.arange(len(prefix), device=self.device)
                logits, cache = _last_logits(self.model, input_ids=extra, attention_mask=ext_mask,
                                             position_ids=ext_pos, cache=cache)
                cache.crop(-len(prefix))  # back to the prompt (negative: tokens to drop, in every version)
                self._record(per_row, prefix, logits, trie)
        if len(prompts) == 1 and self.reuse_prefix:
            self._last = (ids[0].tolist(), cache)
        return [trie.scores(row) for row in per_row]

    def _prompt_forward(self, ids, mask, positions):
        """The forward pass over the prompts. A lone prompt (the CLI's case: one query, one window
        at a time) reuses the KV cache of the token prefix it shares with the previous prompt:
        every window of a query repeats the system message, the instructions and the issue."""
        last, self._last = self._last, None  # a failure below must not leave a half-updated cache
        if last is not None and ids.shape[0] == 1:
            last_ids, cache = last
            row = ids[0].tolist()
            common = 0
            for a, b in zip(last_ids, row):
                if a != b:
                    break
                common += 1
            common = min(common, len(row) - 1)  # feed at least one token to get its logits
            if common >= self.MIN_REUSE and hasattr(cache, "crop"):
                if len(last_ids) > common:
                    cache.crop(-(len(last_ids) - common))
                self.reused_tokens += common
                return _last_logits(self.model, input_ids=ids[:, common:], attention_mask=mask,
                                    position_ids=positions[:, common:], cache=cache)
        return _last_logits(self.model, input_ids=ids, attention_mask=mask, position_ids=positions)

    @staticmethod
    def _record(per_row, prefix, logits, trie: IdTrie) -> None:
        import torch

        allowed = trie.branches.get(prefix)
        if not allowed:
            return
        restricted = torch.log_softmax(logits[:, allowed], dim=-1).tolist()
        for row, values in zip(per_row, restricted):
            row[prefix] = dict(zip(allowed, values))


class GenerateScorer:
    """Greedy decoding of the whole permutation, parsed with :func:`parse_permutation`."""

    mode = "generate"

    def __init__(self, model, tokenizer, device: str = "cpu", batch_size: int = 4, slack_tokens: int = 4) -> None:
        self.model, self.tokenizer, self.device, self.batch_size = model, tokenizer, device, batch_size
        self.slack_tokens = slack_tokens

    def max_new_tokens(self, n: int) -> int:
        """Room for ``[1] > [2] > ... > [n]`` in this tokenizer, plus a little for an end token."""
        return len(self.tokenizer.encode(answer_text(range(n)), add_special_tokens=False)) + self.slack_tokens

    def rank(self, prompts: Sequence[Prompt]) -> list[WindowAnswer]:
        import torch

        answers: list[WindowAnswer | None] = [None] * len(prompts)
        for group in _groups(prompts, self.batch_size):
            started = time.perf_counter()
            n = prompts[group[0]].n
            ids, mask = _encode_batch(self.tokenizer, [prompts[i].text for i in group], self.device)
            with torch.inference_mode():
                out = self.model.generate(
                    input_ids=ids, attention_mask=mask, max_new_tokens=self.max_new_tokens(n), do_sample=False,
                    pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id,
                )
            seconds = (time.perf_counter() - started) / len(group)
            for i, row in zip(group, out[:, ids.shape[1]:].tolist()):
                text = self.tokenizer.decode(row, skip_special_tokens=True)
                answers[i] = WindowAnswer(parse_permutation(text, n), text, seconds)
        return answers  # type: ignore[return-value]


def make_scorer(mode: str, model, tokenizer, device: str = "cpu", batch_size: int = 4) -> WindowScorer:
    if mode == "first-token":
        return FirstTokenScorer(model, tokenizer, device, batch_size)
    if mode == "generate":
        return GenerateScorer(model, tokenizer, device, batch_size)
    raise ValueError(f"unknown rerank mode {mode!r}; choose one of {', '.join(MODES)}")
