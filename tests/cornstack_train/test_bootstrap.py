"""Bootstrap intervals for the ablation: pure functions, checked against cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from cornstack_train.embedder.bootstrap import (
    bootstrap_mean,
    hits_from_gold_ranks,
    paired_difference,
    reciprocal_ranks,
    seed_mean,
)


def test_a_constant_has_a_zero_width_interval():
    span = bootstrap_mean([0.5] * 40)
    assert (span.mean, span.low, span.high) == (0.5, 0.5, 0.5)


def test_interval_covers_the_mean_and_narrows_with_more_items():
    rng = np.random.default_rng(1)
    small = bootstrap_mean(rng.random(30))
    large = bootstrap_mean(rng.random(3000))
    assert small.low <= small.mean <= small.high
    assert (large.high - large.low) < (small.high - small.low) / 5


def test_paired_difference_sees_a_consistent_small_gain_that_separate_intervals_would_miss():
    rng = np.random.default_rng(2)
    base = rng.random(200)
    better = base + 0.02  # every item up by 0.02: noisy between items, certain within pairs
    delta = paired_difference(better, base)
    assert delta.excludes_zero() and delta.mean == pytest.approx(0.02)
    assert not bootstrap_mean(better).low > bootstrap_mean(base).high  # the unpaired intervals overlap
    with pytest.raises(ValueError, match="same items"):
        paired_difference([1.0, 2.0], [1.0])


def test_item_scores_average_over_seeds():
    np.testing.assert_allclose(seed_mean([[1, 0, 1], [0, 0, 1]]), [0.5, 0, 1])
    with pytest.raises(ValueError):
        seed_mean([[]])


def test_reciprocal_ranks_and_instance_hits():
    np.testing.assert_allclose(reciprocal_ranks([1, 2, 0, 11, 10]), [1, 0.5, 0, 0, 0.1])
    ranks = {"files": {"a.py": 1, "b.py": 4}, "functions": {"a.py/f": 3}}
    assert hits_from_gold_ranks(ranks, "files", 3) == 0.0  # every gold file must be in the top k
    assert hits_from_gold_ranks(ranks, "files", 5) == 1.0
    assert hits_from_gold_ranks({"files": {"a.py": None}}, "files", 10) == 0.0
    assert hits_from_gold_ranks({"functions": {}}, "functions", 10) is None
