"""Online sampling of hard negatives (CoRNStack, section 3.3).

Mining keeps a pool of candidate negatives per query with their similarity
scores. Always training on the top-scored candidates over-weights false
negatives (near-duplicates of the positive); drawing uniformly wastes the
pool. CoRNStack samples k candidates *without replacement* with
p_i ∝ exp(s_i / τ), re-drawn every time the query is visited, and lowers τ
over training (see ``curriculum``) so that the model first sees easy
negatives, then the hardest ones.

Sampling without replacement from a softmax is done with the Gumbel top-k
trick: add i.i.d. Gumbel(0, 1) noise to the logits s_i / τ and keep the k
largest. For k = 1 this is exactly a draw from the softmax; for k > 1 it is
the Plackett-Luce draw of an ordered sample without replacement, which is
what "sample k distinct candidates, each next one in proportion to its
probability among those left" means.

Everything here is a pure function of (scores, τ, k, rng), so it is tested
statistically without a model.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

MODES = ("none", "random", "top", "softmax")


def softmax_probabilities(scores: Sequence[float], tau: float) -> np.ndarray:
    """The exact single-draw probabilities p_i ∝ exp(s_i / τ), computed stably."""
    if tau <= 0:
        raise ValueError(f"temperature must be positive, got {tau}")
    logits = np.asarray(scores, dtype=np.float64) / tau
    if logits.size == 0:
        return logits
    logits = logits - logits.max()
    weights = np.exp(logits)
    return weights / weights.sum()


def gumbel_top_k(scores: Sequence[float], k: int, tau: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of k distinct candidates drawn with p_i ∝ exp(s_i / τ), in draw order."""
    if tau <= 0:
        raise ValueError(f"temperature must be positive, got {tau}")
    logits = np.asarray(scores, dtype=np.float64) / tau
    k = min(k, logits.size)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    perturbed = logits + rng.gumbel(size=logits.size)
    chosen = np.argpartition(-perturbed, k - 1)[:k]
    return chosen[np.argsort(-perturbed[chosen], kind="stable")].astype(np.int64)


def sample_negatives(
    scores: Sequence[float],
    k: int,
    mode: str,
    tau: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Indices into ``scores`` of the negatives to train on for one query visit.

    - ``none``: no hard negatives (in-batch negatives only).
    - ``random``: k distinct candidates uniformly (the ablation without scores).
    - ``top``: the k highest-scored candidates, every time (classic static mining).
    - ``softmax``: Gumbel top-k at temperature τ (CoRNStack).

    Fewer than k candidates returns all of them (``draw_batch_negatives`` fills the rest).
    """
    n = len(scores)
    if mode == "none" or k <= 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    if mode == "random":
        return rng.choice(n, size=min(k, n), replace=False).astype(np.int64)
    if mode == "top":
        return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:k].astype(np.int64)
    if mode == "softmax":
        return gumbel_top_k(scores, k, tau, rng)
    raise ValueError(f"unknown negative sampling mode {mode!r} (one of {', '.join(MODES)})")


def draw_batch_negatives(
    batch_rows: Sequence[int],
    candidates: Sequence[np.ndarray],
    candidate_scores: Sequence[np.ndarray],
    text_keys: np.ndarray,
    k: int,
    mode: str,
    tau: float,
    rng: np.random.Generator,
    query_keys: np.ndarray | None = None,
) -> np.ndarray:
    """Row indices (len(batch_rows), k) of the negatives for one training batch.

    ``candidates[r]`` are the pool rows whose ``positive`` is a mined hard
    negative for row r's query, ``candidate_scores[r]`` their similarities, and
    ``text_keys`` a hash of every row's ``positive`` text (``query_keys``, if
    given, of its ``query``: a candidate row asked by the very same query is
    another right answer, not a negative, and is skipped). A candidate whose text
    equals any positive in the batch is dropped first: it would be a false
    negative for that other query (the in-batch positives are negatives for
    everyone, so a duplicate column would teach the model to push a query away
    from its own answer). This is what ``NO_DUPLICATES`` guarantees for the
    anchor/positive columns, extended to the negatives drawn here.

    ``random`` ignores the mined pool and draws uniformly from the whole corpus
    (the classic random-negative baseline; it works on unmined data). Slots the
    pool cannot fill (too few candidates after the exclusion) are filled the
    same way, so every row has exactly k negatives.
    """
    n_rows = len(text_keys)
    out = np.zeros((len(batch_rows), max(k, 0)), dtype=np.int64)
    if mode == "none" or k <= 0:
        return out[:, :0]
    batch_keys = set(text_keys[np.asarray(batch_rows, dtype=np.int64)].tolist())
    for i, row in enumerate(batch_rows):
        chosen: list[int] = []
        if mode != "random":
            pool = np.asarray(candidates[row], dtype=np.int64)
            scores = np.asarray(candidate_scores[row], dtype=np.float64)
            if pool.size:
                keep = np.fromiter((key not in batch_keys for key in text_keys[pool].tolist()), dtype=bool, count=pool.size)
                if query_keys is not None:
                    keep &= query_keys[pool] != query_keys[row]
                pool, scores = pool[keep], scores[keep]
                chosen = pool[sample_negatives(scores, k, mode, tau, rng)].tolist()
        chosen_keys = {int(text_keys[c]) for c in chosen}
        attempts = 0
        while len(chosen) < k and attempts < 50 * k:
            attempts += 1
            candidate = int(rng.integers(n_rows))
            key = int(text_keys[candidate])
            if key in batch_keys or key in chosen_keys or (query_keys is not None and query_keys[candidate] == query_keys[row]):
                continue
            chosen.append(candidate)
            chosen_keys.add(key)
        while len(chosen) < k:  # a corpus with almost no distinct texts: repeat rather than fail
            chosen.append(chosen[-1] if chosen else int(rng.integers(n_rows)))
        out[i] = chosen
    return out
