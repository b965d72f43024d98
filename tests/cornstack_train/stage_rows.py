"""Tiny ``negatives`` stages for the reranker tests: each row's negatives are the other rows of its repository."""

from __future__ import annotations

from typing import Any, Callable, Sequence


def negatives_rows(repos: Sequence[str], per_repo: int, fields: Callable[[str, int], dict[str, Any]],
                   score: Callable[[int, int], float]) -> list[dict[str, Any]]:
    """``per_repo`` rows per repository: id ``owner_name-k``, ``fields(repo, k)`` (query, positive, kind,
    path, name...), and negatives = the repository's other rows, the j-th scored ``score(k, j)``."""
    rows = []
    for repo in repos:
        ids = [f"{repo.replace('/', '_')}-{k}" for k in range(per_repo)]
        for k, rid in enumerate(ids):
            others = [o for o in ids if o != rid]
            rows.append({"id": rid, "language": "python", "repo": repo, "source": "git:0", **fields(repo, k),
                         "negative_ids": others, "negative_scores": [score(k, j) for j in range(len(others))]})
    return rows
