"""The hard-negative sampler and the temperature curriculum: exact distributions, fixed seeds."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from cornstack_train.embedder.curriculum import SCHEDULES, Curriculum, temperature
from cornstack_train.embedder.sampler import (
    draw_batch_negatives,
    gumbel_top_k,
    sample_negatives,
    softmax_probabilities,
)

SCORES = np.array([0.9, 0.7, 0.65, 0.4, 0.2, -0.1])
# chi-square critical value, 5 degrees of freedom, p = 0.001
CHI2_CRIT_DF5 = 20.515


def chi_square(counts: np.ndarray, probabilities: np.ndarray) -> float:
    expected = probabilities * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def single_draw_counts(tau: float, draws: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    counts = np.zeros(len(SCORES))
    for _ in range(draws):
        counts[gumbel_top_k(SCORES, 1, tau, rng)[0]] += 1
    return counts


def test_softmax_probabilities_match_the_formula():
    probabilities = softmax_probabilities(SCORES, 0.5)
    expected = np.exp(SCORES / 0.5) / np.exp(SCORES / 0.5).sum()
    assert np.allclose(probabilities, expected)
    assert math.isclose(probabilities.sum(), 1.0)
    # stable for huge logits
    assert np.allclose(softmax_probabilities([1000.0, 999.0], 0.001), [1.0, 0.0])
    with pytest.raises(ValueError):
        softmax_probabilities(SCORES, 0.0)


@pytest.mark.parametrize("tau", [0.1, 0.3, 1.0, 5.0])
def test_single_draws_follow_the_softmax(tau):
    counts = single_draw_counts(tau, 20000, seed=1234)
    probabilities = softmax_probabilities(SCORES, tau)
    keep = probabilities * counts.sum() >= 5  # chi-square needs expected counts >= 5
    assert keep.sum() >= 2
    merged_counts = np.append(counts[keep], counts[~keep].sum())
    merged_probs = np.append(probabilities[keep], probabilities[~keep].sum())
    if merged_probs[-1] == 0:
        merged_counts, merged_probs = merged_counts[:-1], merged_probs[:-1]
    statistic = chi_square(merged_counts, merged_probs)
    assert statistic < CHI2_CRIT_DF5, (tau, counts, probabilities * counts.sum())


def test_chi_square_test_detects_a_wrong_temperature():
    """The statistical test has power: draws at τ=0.3 are rejected as draws at τ=1."""
    counts = single_draw_counts(0.3, 20000, seed=99)
    assert chi_square(counts, softmax_probabilities(SCORES, 1.0)) > CHI2_CRIT_DF5


def test_high_temperature_is_near_uniform_and_low_is_argmax():
    counts = single_draw_counts(1000.0, 12000, seed=7)
    assert np.all(np.abs(counts / counts.sum() - 1 / len(SCORES)) < 0.015)
    counts = single_draw_counts(0.001, 2000, seed=7)
    assert counts[0] == 2000


def test_top_k_draws_are_distinct_and_follow_plackett_luce():
    rng = np.random.default_rng(5)
    tau = 0.5
    p = softmax_probabilities(SCORES, tau)
    draws = [tuple(gumbel_top_k(SCORES, 3, tau, rng)) for _ in range(20000)]
    assert all(len(set(d)) == 3 for d in draws)
    first_two = Counter(d[:2] for d in draws)
    for i, j in [(0, 1), (1, 0), (2, 3), (0, 5)]:
        expected = p[i] * p[j] / (1 - p[i])
        observed = first_two[(i, j)] / len(draws)
        assert abs(observed - expected) < 4 * math.sqrt(expected * (1 - expected) / len(draws)) + 1e-4, (i, j)
    assert len(gumbel_top_k(SCORES, 10, tau, rng)) == len(SCORES)  # k > n: all candidates


def test_modes():
    rng = np.random.default_rng(0)
    assert sample_negatives(SCORES, 3, "none", 1.0, rng).size == 0
    assert sample_negatives(SCORES, 3, "top", 1.0, rng).tolist() == [0, 1, 2]
    assert sample_negatives([], 3, "softmax", 1.0, rng).size == 0
    counts = np.zeros(len(SCORES))
    for _ in range(6000):
        chosen = sample_negatives(SCORES, 2, "random", 1.0, rng)
        assert len(set(chosen.tolist())) == 2
        counts[chosen] += 1
    assert np.all(np.abs(counts / counts.sum() - 1 / len(SCORES)) < 0.02)  # uniform, ignores the scores
    with pytest.raises(ValueError):
        sample_negatives(SCORES, 2, "hardest", 1.0, rng)


def test_batch_negatives_never_repeat_a_batch_positive():
    # rows 0..5; row 4's text duplicates row 1's (same code mined twice)
    keys = np.array([10, 11, 12, 13, 11, 15], dtype=np.int64)
    candidates = [np.array([1, 4, 2, 5]), np.array([0, 3]), np.array([], dtype=np.int64)] + [np.array([0])] * 3
    scores = [np.array([0.9, 0.8, 0.1, 0.05]), np.array([0.5, 0.4]), np.array([])] + [np.array([0.3])] * 3
    rng = np.random.default_rng(0)
    for _ in range(200):
        chosen = draw_batch_negatives([0, 1, 2], candidates, scores, keys, 2, "softmax", 0.01, rng)
        assert chosen.shape == (3, 2)
        batch_keys = {10, 11, 12}
        for row in chosen:
            assert not {int(keys[r]) for r in row} & batch_keys
            assert len(set(row.tolist())) == 2
        # row 0: candidates 1 and 4 are (copies of) a batch positive; 2 is one too; only 5 is left, padding fills
        assert 5 in chosen[0].tolist()
    top = draw_batch_negatives([3], candidates, scores, keys, 1, "top", 1.0, rng)
    assert top.tolist() == [[0]]
    assert draw_batch_negatives([0, 1], candidates, scores, keys, 3, "none", 1.0, rng).shape == (2, 0)


@pytest.mark.parametrize("schedule", [s for s in SCHEDULES if s != "constant"])
def test_curriculum_goes_from_start_to_end_monotonically(schedule):
    curriculum = Curriculum(start=2.0, end=0.05, schedule=schedule)
    values = [curriculum.tau(t) for t in np.linspace(0, 1, 101)]
    assert math.isclose(values[0], 2.0) and math.isclose(values[-1], 0.05)
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert values[50] < 2.0 and values[50] > 0.05
    assert curriculum.tau(-1) == values[0] and curriculum.tau(7) == values[-1]  # clamped


def test_curriculum_shapes_differ_as_documented():
    assert math.isclose(temperature(0.5, 1.0, 0.01, "linear"), 0.505)
    assert math.isclose(temperature(0.5, 1.0, 0.01, "exponential"), 0.1)  # geometric mean
    assert math.isclose(temperature(0.5, 1.0, 0.01, "cosine"), 0.505)
    assert temperature(0.1, 1.0, 0.01, "cosine") > temperature(0.1, 1.0, 0.01, "linear")  # slow start
    assert temperature(0.5, 0.7, 0.01, "constant") == 0.7
    with pytest.raises(ValueError):
        Curriculum(1.0, 0.1, "step")
    with pytest.raises(ValueError):
        Curriculum(1.0, 0.0)


def test_batch_negatives_skip_rows_asked_by_the_same_query():
    keys = np.arange(6, dtype=np.int64)
    queries = np.array([7, 7, 8, 9, 9, 9], dtype=np.int64)  # rows 0 and 1 answer the same query
    candidates = [np.array([1, 2])] + [np.array([0])] * 5
    scores = [np.array([0.99, 0.01])] + [np.array([0.5])] * 5
    rng = np.random.default_rng(3)
    for _ in range(100):
        chosen = draw_batch_negatives([0], candidates, scores, keys, 2, "softmax", 0.01, rng, queries)
        assert 1 not in chosen[0].tolist() and 2 in chosen[0].tolist()
    without = {int(draw_batch_negatives([0], candidates, scores, keys, 1, "softmax", 0.01, rng)[0, 0]) for _ in range(20)}
    assert without == {1}  # without query keys the same-query row is taken as the hardest negative
