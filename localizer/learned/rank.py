"""Order both levels with the learned ranker: the head by the model, the rest by the retriever.

Scores come out so that ``order()`` reproduces the ranking: head items keep the model's score,
and every item below the head scores under the lowest of them, in the retriever's order. So the
harness finds any gold item's rank in the same lists ``localize`` takes its top k from.
"""

from __future__ import annotations

from typing import Hashable, Sequence, TypeVar

import numpy as np

from localizer.learned.features import FILE_FEATURES, FUNCTION_FEATURES, Candidates
from localizer.learned.model import RankerModel

K = TypeVar("K", bound=Hashable)


def learned_order(candidates: Candidates, model: RankerModel) -> tuple[dict[str, float], dict[int, float]]:
    """(file path -> score, chunk row -> score) for every item the retriever scored."""
    files = _level(candidates.files.items, model.levels["file"].score(candidates.files.matrix, FILE_FEATURES),
                   candidates.file_order)
    functions = _level(candidates.functions.items,
                       model.levels["function"].score(candidates.functions.matrix, FUNCTION_FEATURES),
                       candidates.function_order)
    return files, functions


def _level(head: Sequence[K], head_scores: np.ndarray, retriever_order: Sequence[K]) -> dict[K, float]:
    # The head arrives in the retriever's order; a nudge far below the model's resolution breaks its
    # ties that way (order() would otherwise break them by name).
    scores = {item: float(score) - i * 1e-9 for i, (item, score) in enumerate(zip(head, head_scores))}
    floor = min(scores.values(), default=0.0) - 1.0
    rest = [item for item in retriever_order if item not in scores]
    step = 1.0 / (len(rest) + 1)
    for position, item in enumerate(rest):  # below the head, in the retriever's order
        scores[item] = floor - position * step
    return scores
