"""Bootstrap confidence intervals for the ablation table: pure functions over per-item scores.

An ablation row is a mean over items (held-out queries, SWE-bench instances) and over seeds.
Resampling items with replacement, with each item's score averaged over the seeds first, gives
an interval that covers both sources of noise the table is read against: which items happened
to be in the set, and which seed trained the model. A variant's difference from the full
recipe is resampled *paired* (the same items for both), which is far tighter than comparing two
separate intervals: the question is whether a step helps on the same queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

DEFAULT_RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def format(self, scale: float = 1.0, digits: int = 1) -> str:
        return f"{self.mean * scale:.{digits}f} [{self.low * scale:.{digits}f}, {self.high * scale:.{digits}f}]"


def seed_mean(per_seed: Sequence[Sequence[float]]) -> np.ndarray:
    """Item scores averaged over seeds: ``per_seed[s][i]`` -> ``[i]``; every seed must score the same items."""
    matrix = np.asarray(per_seed, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError(f"expected seeds x items scores, got shape {matrix.shape}")
    return matrix.mean(axis=0)


def bootstrap_mean(values: Sequence[float], resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                   level: float = 0.95) -> Interval:
    """The mean of ``values`` with a percentile bootstrap interval over items."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        raise ValueError("no items to bootstrap")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return Interval(float(data.mean()), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail)))


def paired_difference(values: Sequence[float], reference: Sequence[float], resamples: int = DEFAULT_RESAMPLES,
                      seed: int = 0, level: float = 0.95) -> Interval:
    """``mean(values - reference)`` over the same items, with a paired bootstrap interval."""
    a, b = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired scores must cover the same items: {a.shape} vs {b.shape}")
    return bootstrap_mean(a - b, resamples, seed, level)


def reciprocal_ranks(ranks: Sequence[int], k: int = 10) -> np.ndarray:
    """1/rank for ranks 1..k, 0 for a miss (rank 0) or a rank past k: the per-query terms of MRR@k."""
    r = np.asarray(ranks, dtype=np.float64)
    return np.where((r >= 1) & (r <= k), 1.0 / np.maximum(r, 1), 0.0)


def hits_from_gold_ranks(gold_ranks: dict, level: str, k: int) -> float | None:
    """Acc@k of one SWE-bench instance from the harness's ``diagnostics.jsonl`` ``gold_ranks``:
    1 when every gold item ranks within k, 0 otherwise; None when the level has no gold items."""
    ranks = list((gold_ranks.get(level) or {}).values())
    if not ranks:
        return None
    return float(all(r is not None and r <= k for r in ranks))


__all__ = ["DEFAULT_RESAMPLES", "Interval", "bootstrap_mean", "hits_from_gold_ranks", "paired_difference",
           "reciprocal_ranks", "seed_mean"]
