"""Pure ranking arithmetic: fusion, normalization and boosts for what the issue names."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Hashable, Iterable, Mapping, Sequence, TypeVar

from localizer.retrieval.query import IssueQuery

if TYPE_CHECKING:
    from indexer.chunking.chunk import Chunk

    from localizer.retrieval.retrievers import Scores

K = TypeVar("K", bound=Hashable)


def order(scores: Mapping[K, float]) -> list[K]:
    """Best first; ties broken by key so rankings are reproducible."""
    return sorted(scores, key=lambda k: (-scores[k], str(k)))


def reciprocal_rank_fusion(rankings: Iterable[list[K]], k: int = 60) -> dict[K, float]:
    """RRF: robust to the incomparable scales of BM25 and cosine scores."""
    fused: dict[K, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, 1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (k + rank)
    return fused


def min_max(scores: Mapping[K, float]) -> dict[K, float]:
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    if high - low < 1e-12:
        return {key: (1.0 if high > 0 else 0.0) for key in scores}
    return {key: (value - low) / (high - low) for key, value in scores.items()}


def _suffix_match(mentioned: str, path: str) -> bool:
    """``/usr/lib/site-packages/pkg/mod.py`` and ``pkg/mod.py`` both name ``src/pkg/mod.py``."""
    m_parts = PurePosixPath(mentioned.replace("\\", "/")).parts
    p_parts = PurePosixPath(path).parts
    common = 0
    while common < min(len(m_parts), len(p_parts)) and m_parts[-1 - common] == p_parts[-1 - common]:
        common += 1
    # A bare file name only counts when it is distinctive (not __init__.py and the like).
    if common == 0:
        return False
    if common == 1:
        return len(m_parts) == 1 and not p_parts[-1].startswith("__")
    return True


def _module_paths(symbols: Iterable[str]) -> set[str]:
    """``django.db.models.query`` may be how an issue names ``django/db/models/query.py``."""
    out = set()
    for symbol in symbols:
        if symbol.count(".") >= 1:
            parts = symbol.split(".")
            for cut in range(len(parts), 1, -1):
                out.add("/".join(parts[:cut]) + ".py")
    return out


def mentioned_files(query: IssueQuery, paths: Iterable[str]) -> dict[str, float]:
    """Files the issue names, weighted 1.0 for paths and frames, 0.5 for dotted module names."""
    weights: dict[str, float] = {}
    modules = _module_paths(query.mentioned_symbols)
    for path in paths:
        if any(_suffix_match(m, path) for m in query.mentioned_paths):
            weights[path] = 1.0
        elif any(path.endswith(m) and (len(path) == len(m) or path[-len(m) - 1] == "/") for m in modules if m.count("/") >= 1):
            weights[path] = 0.5
    return weights


def mentioned_function(query: IssueQuery, path: str, name: str) -> float:
    """1.0 when a traceback frame names this function in this file, 0.5 for a named symbol."""
    short = name.rsplit(".", 1)[-1]
    for frame in query.frames:
        if frame.function == short and _suffix_match(frame.path, path):
            return 1.0
    if name in query.mentioned_symbols or any(s.endswith("." + name) for s in query.mentioned_symbols):
        return 0.5
    if len(short) >= 4 and not short.startswith("__") and short in query.mentioned_symbols:
        return 0.25
    return 0.0


def final_scores(
    query: IssueQuery, scores: "Scores", chunks: Sequence["Chunk"], mention_boost: float = 1.0
) -> tuple[dict[str, float], dict[int, float]]:
    """Retriever scores scaled to 0-1, plus boosts for files and functions the issue names.

    Returns (file path -> score, chunk row -> score) for every scored item, so
    callers can take a top k or find the rank of any item.
    """
    file_scores = min_max(scores.files)
    function_scores = min_max(scores.functions)
    if mention_boost:
        file_boost = mentioned_files(query, file_scores)
        for path, weight in file_boost.items():
            file_scores[path] += 0.5 * mention_boost * weight
        for row in function_scores:
            chunk = chunks[row]
            bonus = mentioned_function(query, chunk.path, chunk.name) + 0.25 * file_boost.get(chunk.path, 0.0)
            if bonus:
                function_scores[row] += 0.5 * mention_boost * bonus
    return file_scores, function_scores
