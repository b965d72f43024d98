"""Reranker data, pure: candidate lists from a ``negatives`` stage, shuffling, targets, label masks.

A ``negatives`` row holds a query, its positive and the ids of rows whose positives are its
hard negatives, with their embedder similarities. A reranker instance is one window: the
positive plus the ``depth - 1`` hardest negatives, in **first-stage order** (what the
retriever would hand the reranker), and a **target order** over them (best first).

First-stage order: negatives by ``negative_scores`` descending, the positive in a slot drawn
uniformly for the row, seeded by its id (:func:`positive_slot`). Not by score: the ``negatives``
stage drops every negative scoring within ``margin`` of the positive (false-negative
protection), so by score the positive would always lead and the retriever would look perfect.
Not at the ``filter`` stage's ``filter_rank`` either: an unfiltered stage has no such column
(nor the positive's score), and the lists must be the same whether or not the filter ran, for
training (the teacher ranks them in this order) and for evaluation (every system reorders them).
The positive's score is set to its upper neighbour's (the top negative's in the first slot), so
the scores stay in list order.

Training shows the candidates in a fresh random order per instance and per epoch
(:func:`shuffle_window`), so the model cannot learn "the answer is usually [1]". The loss
covers only the answer (:func:`encode_example` sets prompt labels to -100).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Sequence

from localizer.rerank.prompt import answer_text

IGNORE_INDEX = -100
LOSSES = ("first-token", "full")
INSTANCE_COLUMNS = ("id", "query", "candidates", "candidate_ids", "first_stage_scores", "target", "positive_index",
                    "kind", "language", "repo", "path", "name", "teacher", "teacher_mode")


@dataclass(frozen=True)
class Window:
    """A query's candidate window in first-stage order; ``positive_index`` points into it.

    ``gold`` lists every right answer's index where there are several (the functions one commit
    changed, ``positive_index`` the first of them); empty means ``positive_index`` alone.
    """

    id: str
    query: str
    candidates: list[str]
    candidate_ids: list[str]
    scores: list[float]
    positive_index: int
    meta: dict[str, Any] = field(default_factory=dict)  # kind, language, repo, path, name
    gold: tuple[int, ...] = ()


@dataclass(frozen=True)
class Instance:
    """One training instance: a window plus the teacher's best-first order over its candidates."""

    window: Window
    target: list[int]
    teacher: str
    teacher_mode: str

    def record(self) -> dict[str, Any]:
        w = self.window
        return {"id": w.id, "query": w.query, "candidates": list(w.candidates), "candidate_ids": list(w.candidate_ids),
                "first_stage_scores": [float(s) for s in w.scores], "target": list(self.target),
                "positive_index": w.positive_index, "kind": w.meta.get("kind", ""),
                "language": w.meta.get("language", ""), "repo": w.meta.get("repo", ""),
                "path": w.meta.get("path", ""), "name": w.meta.get("name", ""),
                "teacher": self.teacher, "teacher_mode": self.teacher_mode}


def candidate_title(path: str, name: str) -> str:
    """The name line a candidate carries, as ``localize`` titles a function chunk: ``path::name``."""
    return f"{path}::{name}" if path and name else path or name


def candidate_text(row: dict[str, Any], with_title: bool = True) -> str:
    """A row's positive as the reranker reads it: its ``path::name`` title line, then the code."""
    title = candidate_title(row.get("path", ""), row.get("name", "")) if with_title else ""
    return f"{title}\n{row['positive']}" if title else row["positive"]


def window_meta(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k, "") for k in ("kind", "language", "repo", "path", "name")}


def first_stage_window(row: dict[str, Any], by_id: dict[str, dict[str, Any]], depth: int,
                       with_titles: bool = True) -> Window | None:
    """The window for ``row``: positive plus its top ``depth - 1`` negatives in first-stage order.

    ``by_id`` maps row ids to rows (for the negatives' code); negatives whose row is missing
    are skipped. Returns None when no negative is left (a window of one teaches nothing).
    """
    pairs = sorted(zip(row["negative_scores"], row["negative_ids"]), key=lambda p: -p[0])
    negatives = [(score, nid) for score, nid in pairs if nid in by_id][: max(depth - 1, 0)]
    if not negatives:
        return None
    texts = [candidate_text(by_id[nid], with_titles) for _, nid in negatives]
    ids = [nid for _, nid in negatives]
    scores = [float(s) for s, _ in negatives]
    pos = positive_slot(row["id"], len(texts) + 1)
    texts.insert(pos, candidate_text(row, with_titles))
    ids.insert(pos, row["id"])
    scores.insert(pos, scores[max(pos - 1, 0)])
    return Window(row["id"], row["query"], texts, ids, scores, pos, window_meta(row))


def positive_slot(row_id: str, size: int) -> int:
    """The positive's 0-based slot in a window of ``size``: uniform, a function of the row id alone.

    Independent of the filter columns (so filtered and unfiltered stages give the same lists),
    of the process and of the run (``random.Random`` seeds a string by its SHA-512), and free of a
    position prior a reranker could learn or a retriever could be flattered by.
    """
    return random.Random(f"positive-slot:{row_id}").randrange(max(size, 1))


# --------------------------------------------------------------------------- target orders (pure)


def embedder_order(scores: Sequence[float]) -> list[int]:
    """Indices by first-stage score, best first; ties keep list order."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def gold_anchored(order: Sequence[int], positive_index: int) -> list[int]:
    """``order`` with the positive moved to the front: the one fact we are sure of goes first, the
    rest keep the ranking's relative order (teacher's or embedder's)."""
    if sorted(order) != list(range(len(order))) or not 0 <= positive_index < len(order):
        raise ValueError(f"order {list(order)} is not a permutation containing {positive_index}")
    return [positive_index] + [i for i in order if i != positive_index]


# --------------------------------------------------------------------------- shuffling (pure)


def instance_rng(seed: int, epoch: int, index: int) -> random.Random:
    """A generator that depends only on (seed, epoch, instance): reruns and resumes see the same shuffles."""
    return random.Random(f"{seed}:{epoch}:{index}")


def shuffle_window(candidates: Sequence[str], target: Sequence[int], rng: random.Random) -> tuple[list[str], list[int]]:
    """Candidates in a random order and the target re-expressed in the new positions.

    ``shown[j] = candidates[perm[j]]``; a target naming original index ``i`` names shown
    position ``perm.index(i)``.
    """
    perm = list(range(len(candidates)))
    rng.shuffle(perm)
    where = {orig: j for j, orig in enumerate(perm)}
    return [candidates[i] for i in perm], [where[i] for i in target]


# --------------------------------------------------------------------------- answers and masks (pure)


def answer_for(order: Sequence[int], loss: str) -> tuple[str, str]:
    """(context suffix, supervised answer) for a best-first order.

    ``full``: the whole permutation ``[3] > [1] > ...`` is supervised. ``first-token``: the
    answer's opening ``[`` joins the (unsupervised) context and only the first id with its
    ``]`` is supervised: exactly the tokens the first-token scorer reads after ``[``.
    """
    if loss == "full":
        return "", answer_text(order)
    if loss == "first-token":
        return "[", f"{order[0] + 1}]"
    raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")


def encode_example(tokenizer, context: str, answer: str, eos: bool) -> tuple[list[int], list[int]]:
    """Token ids of ``context + answer`` and labels that are -100 on the context.

    The context is encoded on its own, as the scorers encode prompts; the answer's ids are
    taken from encoding the whole text (BPE merges across the seam the same way the model
    will see them) when that keeps the context's ids as a prefix, else encoded alone.
    """
    ctx = tokenizer.encode(context, add_special_tokens=False)
    full = tokenizer.encode(context + answer, add_special_tokens=False)
    ans = full[len(ctx):] if full[: len(ctx)] == ctx else tokenizer.encode(answer, add_special_tokens=False)
    if eos and tokenizer.eos_token_id is not None:
        ans = ans + [tokenizer.eos_token_id]
    if not ans:
        raise ValueError("the answer encodes to no tokens")
    return ctx + ans, [IGNORE_INDEX] * len(ctx) + list(ans)
