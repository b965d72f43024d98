"""When not to trust a ranking: a one-line warning for flat scores.

Scores are the learned ranker's (or, with ``--ranker boosts``, each retriever's
scores scaled to 0-1 over the repository plus boosts for what the issue names);
tied evidence gives tied learned scores, since tied items share their rank
features (:func:`localizer.learned.features.tied_ranks`). When the top suspects sit within a hair of
each other, the order among them is noise, and a triager should read the list
as candidates rather than an answer. The signal: the top ``k`` scores lie
within ``abs_gap`` of each other on the 0-1 scale, that is within 5% of the
distance between the best and the worst item in the repository.

A top suspect that stands out (say, a file the issue names, which gets a
boost) makes the ranking not flat even when the ones after it are tied.
Hybrid rank fusion comes out flat when BM25 and the embedder disagree, which
is exactly when the warning is useful. The threshold is a heuristic, kept
here in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

TOP_K = 5
ABS_GAP = 0.05


@dataclass(frozen=True)
class Flatness:
    flat: bool
    top: float
    kth: float
    k: int


@dataclass(frozen=True)
class Confidence:
    flat: bool
    note: str | None
    files: Flatness | None
    functions: Flatness | None


def flatness(scores: Sequence[float], k: int = TOP_K, abs_gap: float = ABS_GAP) -> Flatness | None:
    """None with fewer than two scores: one candidate cannot be flat."""
    ranked = sorted(scores, reverse=True)
    if len(ranked) < 2:
        return None
    k = min(k, len(ranked))
    top, kth = ranked[0], ranked[k - 1]
    return Flatness(top - kth < abs_gap, top, kth, k)


def assess(file_scores: Sequence[float], function_scores: Sequence[float], k: int = TOP_K) -> Confidence:
    files = flatness(file_scores, k)
    functions = flatness(function_scores, k)
    flat_levels = [(name, f) for name, f in (("function", functions), ("file", files)) if f is not None and f.flat]
    if not flat_levels:
        return Confidence(False, None, files, functions)
    detail = "; ".join(f"{name}s {f.top:.3f} → {f.kth:.3f} over the top {f.k}" for name, f in flat_levels)
    levels = " and ".join(f"{name}" for name, _ in flat_levels)
    note = (f"Low confidence: the top {levels} scores are nearly flat ({detail}), so the ranking barely separates "
            "them; read these as candidates, not an answer.")
    return Confidence(True, note, files, functions)
