"""Localization metrics, CoRNStack / SweRank style. Pure functions, no I/O.

An instance is a hit at ``k`` only when *all* its gold items (files or
functions) are among the top ``k`` ranked ones; accuracy@k is the percentage
of instances that are hits. Instances without gold items are not scored by
default (a hit needs at least one gold item).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional, Sequence

from indexer.chunking.languages import language_for_path

__all__ = ["hit_at_k", "accuracy_at_k", "files_from_functions", "file_of", "gold_ranks"]


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def hit_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> bool:
    """True when every gold item is in ``ranked[:k]``; False for an empty gold set."""
    _check_k(k)
    wanted = set(gold)
    if not wanted:
        return False
    return wanted.issubset(ranked[:k])


def accuracy_at_k(
    rankings: Mapping[str, Sequence[str]],
    golds: Mapping[str, Iterable[str]],
    k: int,
    ids: Optional[Iterable[str]] = None,
) -> float:
    """Percentage (0-100) of instances whose gold items are all in their top ``k``.

    ``ids`` are the instances to score (e.g. the 274 with gold functions);
    by default every instance of ``golds`` with a non-empty gold set. An
    instance without a ranking, or without gold items, is a miss. Returns
    0.0 when there is nothing to score.
    """
    _check_k(k)
    gold_sets = {key: set(value) for key, value in golds.items()}
    if ids is None:
        scored = [key for key, value in gold_sets.items() if value]
    else:
        scored = list(dict.fromkeys(ids))
    if not scored:
        return 0.0
    hits = sum(hit_at_k(rankings.get(key, ()), gold_sets.get(key, ()), k) for key in scored)
    return 100.0 * hits / len(scored)


def file_of(function_id: str) -> str:
    """The file part of ``a/b.py/Class/method``: up to the component with a source extension.

    Qualified-name dots become slashes in ids, so no component after the file
    has a dot: the *last* component with a source extension is the file (a
    directory such as ``node.js/`` cannot fool it). Extension-less source
    files (``Rakefile``) are found as the first such component. An id with no
    source component at all (a file in an unsupported language) is returned
    whole.
    """
    parts = function_id.split("/")
    for i in range(len(parts) - 1, -1, -1):
        if "." in parts[i] and language_for_path(parts[i]) is not None:
            return "/".join(parts[: i + 1])
    for i, part in enumerate(parts):
        if language_for_path(part) is not None:
            return "/".join(parts[: i + 1])
    return function_id


def files_from_functions(function_ids: Sequence[str]) -> list[str]:
    """Files of a function ranking, each once, in order of first appearance."""
    return list(dict.fromkeys(file_of(fid) for fid in function_ids))


def gold_ranks(ranked: Sequence[str], gold: Iterable[str]) -> dict[str, Optional[int]]:
    """1-based rank of each gold item in ``ranked`` (its first occurrence), None if absent."""
    first: dict[str, int] = {}
    for position, item in enumerate(ranked, start=1):
        first.setdefault(item, position)
    return {item: first.get(item) for item in dict.fromkeys(gold)}
