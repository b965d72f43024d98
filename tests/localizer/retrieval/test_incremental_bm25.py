"""The incremental BM25 scores bit for bit as bm25s, which every quality number was measured with,
before and after refreshes, and a refresh indexes only the changed documents."""

import random

import numpy as np
import pytest

from localizer.retrieval import bm25 as bm25_module
from localizer.retrieval.bm25 import IncrementalBM25

bm25s = pytest.importorskip("bm25s")

WORDS = [f"w{i}" for i in range(60)] + ["parse", "value", "error", "matrix", "solve"]


def _corpus(rng: random.Random, n: int) -> list[list[str]]:
    return [[rng.choice(WORDS) for _ in range(rng.randint(1, 40))] for _ in range(n)]


def _queries(rng: random.Random) -> list[list[str]]:
    queries = [[rng.choice(WORDS) for _ in range(rng.randint(1, 12))] for _ in range(20)]
    queries.append(["parse", "parse", "error", "not-in-any-document"])  # repeats count, unknown terms add nothing
    return queries


def _reference(documents: list[list[str]], query: list[str]) -> np.ndarray:
    index = bm25s.BM25()
    index.index(documents, show_progress=False)
    return index.get_scores(query)


def test_fresh_index_scores_exactly_as_bm25s():
    rng = random.Random(1)
    documents = _corpus(rng, 300)
    ours = IncrementalBM25(documents)
    for query in _queries(rng):
        assert np.array_equal(ours.scores(query), _reference(documents, query))


def test_refreshes_score_exactly_as_a_fresh_bm25s_over_the_new_documents():
    rng = random.Random(2)
    documents = _corpus(rng, 400)
    ours = IncrementalBM25(documents)
    for _ in range(4):  # several refreshes in a row: deltas carry over into the next
        gone = set(rng.sample(range(len(documents)), 15))
        survivors = [d for i, d in enumerate(documents) if i not in gone]
        fresh = _corpus(rng, 10) + [["brand-new-term", "parse"]]
        # the new snapshot puts the new documents in the middle, as a changed file's chunks would be
        new_documents = survivors[:100] + fresh + survivors[100:]
        carried = np.full(len(documents), -1)
        old_survivors = [i for i in range(len(documents)) if i not in gone]
        for position, old in enumerate(old_survivors):
            carried[old] = position if position < 100 else position + len(fresh)
        ours = ours.updated(carried, list(range(100, 100 + len(fresh))), new_documents)
        documents = new_documents
        assert 0 < ours.delta_size < 60
        for query in _queries(rng) + [["brand-new-term"]]:
            assert np.array_equal(ours.scores(query), _reference(documents, query))


def test_a_large_delta_is_folded_into_a_new_base(monkeypatch):
    monkeypatch.setattr(bm25_module, "MIN_COMPACT", 5)
    rng = random.Random(3)
    documents = _corpus(rng, 50)
    ours = IncrementalBM25(documents)
    new_documents = documents[:30] + _corpus(rng, 20)
    carried = np.array([i if i < 30 else -1 for i in range(50)])
    ours = ours.updated(carried, list(range(30, 50)), new_documents)
    assert ours.delta_size == 0
    query = ["parse", "w1", "w2"]
    assert np.array_equal(ours.scores(query), _reference(new_documents, query))


def test_slots_must_cover_the_new_documents_exactly_once():
    ours = IncrementalBM25([["a"], ["b"]])
    with pytest.raises(ValueError):
        ours.updated(np.array([0, 1]), [1], [["a"], ["b"]])  # slot 1 both carried and added
    with pytest.raises(ValueError):
        ours.updated(np.array([0]), [], [["a"]])  # the map must cover every old slot
    with pytest.raises(ValueError):
        ours.updated(np.array([0, 5]), [1], [["a"], ["b"]])  # a slot the new snapshot does not have


def test_empty_and_all_deleted_indexes_score_nothing():
    assert IncrementalBM25([]).scores(["a"]).shape == (0,)
    ours = IncrementalBM25([["a", "b"], ["a"]]).updated(np.array([-1, -1]), [], [])
    assert ours.scores(["a"]).shape == (0,)


def test_the_old_index_still_answers_the_same_after_an_update():
    """A warm server keeps answering from the live snapshot while the next one is built."""
    rng = random.Random(4)
    documents = _corpus(rng, 100)
    old = IncrementalBM25(documents)
    before = old.scores(["parse", "w3"])
    old.updated(np.array([i // 2 if i % 2 else -1 for i in range(100)]), [], [documents[i] for i in range(1, 100, 2)])
    assert np.array_equal(old.scores(["parse", "w3"]), before)
