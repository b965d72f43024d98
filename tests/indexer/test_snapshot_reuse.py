"""A refresh with the previous snapshot in memory reads only what changed, and builds the same index
a cold build would: chunks, terms, spans and vectors, edits, deletions and renames included."""

import numpy as np

from indexer.index import IndexConfig, build_index
from indexer.reuse import carried_rows
from indexer.storage.store import SQLiteStore

from tests.conftest import HashingEncoder, git


def _build(repo, index_dir, encoder=None, previous=None):
    return build_index(repo, encoder=encoder, config=IndexConfig(index_dir=index_dir), previous=previous)


def _same(a, b):
    assert a.chunks == b.chunks
    assert a.terms == b.terms
    assert a.spans == b.spans
    if a.embeddings is not None or b.embeddings is not None:
        assert np.array_equal(a.embeddings, b.embeddings)


def test_unchanged_files_come_from_the_previous_snapshot(sample_repo, index_dir, monkeypatch):
    first = _build(sample_repo, index_dir, HashingEncoder())
    cart = sample_repo / "shop/cart.py"
    cart.write_text(cart.read_text() + "\n\ndef refund(order):\n    return order.total\n")

    asked: list[list[str]] = []
    original = SQLiteStore.get_parsed
    monkeypatch.setattr(SQLiteStore, "get_parsed", lambda self, keys: asked.append(list(keys)) or original(self, keys))
    encoder = HashingEncoder()
    warm = _build(sample_repo, index_dir, encoder, previous=first)

    assert warm.stats.reused_files == warm.stats.files - 1
    assert warm.stats.parsed_files == 1
    assert asked == [[warm.spans["shop/cart.py"].key]]  # the cache is asked only for the changed file
    assert set(encoder.encoded) <= {c.text for c in warm.chunks if c.path == "shop/cart.py"}
    monkeypatch.undo()
    _same(warm, _build(sample_repo, index_dir, HashingEncoder()))


def test_deleted_and_renamed_files_match_a_cold_build(sample_repo, index_dir):
    first = _build(sample_repo, index_dir, HashingEncoder())
    paths = sorted(first.spans)
    git(sample_repo, "rm", "-q", paths[0])
    git(sample_repo, "mv", paths[1], "renamed_module.py")
    warm = _build(sample_repo, index_dir, HashingEncoder(), previous=first)
    assert paths[0] not in warm.spans and "renamed_module.py" in warm.spans
    assert warm.stats.reused_files == warm.stats.files - 1  # the rename re-parses: a file chunk names its path
    _same(warm, _build(sample_repo, index_dir, HashingEncoder()))


def test_a_snapshot_of_another_repository_or_model_lends_nothing(sample_repo, tmp_path, index_dir):
    other = _build(sample_repo, index_dir, HashingEncoder("other-model"))
    warm = _build(sample_repo, index_dir, HashingEncoder(), previous=other)
    assert warm.stats.reused_files == warm.stats.files  # chunks carry over ...
    assert warm.stats.reused_embeddings == 0  # this model never embedded anything here
    _same(warm, _build(sample_repo, index_dir, HashingEncoder()))  # ... but the vectors are this model's

    copy = tmp_path / "copy"
    git(tmp_path, "clone", "-q", str(sample_repo), str(copy))
    elsewhere = _build(copy, index_dir, previous=other)
    assert elsewhere.stats.reused_files == 0


def test_carried_rows_maps_unchanged_spans_in_order():
    from indexer.reuse import FileSpan

    previous = {"a.py": FileSpan("ka", 0, 2), "b.py": FileSpan("kb", 2, 5), "c.py": FileSpan("kc", 5, 6)}
    current = {"c.py": FileSpan("kc", 0, 1), "b.py": FileSpan("kb2", 1, 3), "a.py": FileSpan("ka", 3, 5)}
    assert carried_rows(previous, current, 6).tolist() == [3, 4, -1, -1, -1, 0]
