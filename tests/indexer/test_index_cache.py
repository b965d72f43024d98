import json
import multiprocessing
import sqlite3


from indexer.index import IndexConfig, build_index, repo_state_dir
from indexer.storage.store import SQLiteStore

from tests.conftest import HashingEncoder, commit_all, write_files


def _build(repo, index_dir, encoder, rev=None):
    return build_index(repo, rev, encoder=encoder, config=IndexConfig(index_dir=index_dir))


def test_second_index_parses_and_embeds_nothing(sample_repo, index_dir, hashing_encoder):
    first = _build(sample_repo, index_dir, hashing_encoder)
    assert first.stats.parsed_files == first.stats.files > 5
    assert first.stats.embedded_chunks == len({c.text for c in first.chunks})
    second = _build(sample_repo, index_dir, HashingEncoder())
    assert second.stats.parsed_files == 0
    assert second.stats.embedded_chunks == 0
    assert second.stats.reused_embeddings == len(second.chunks)
    assert [c.key for c in second.chunks] == [c.key for c in first.chunks]
    assert (second.embeddings == first.embeddings).all()


def test_one_file_change_reembeds_only_that_files_changed_chunks(sample_repo, index_dir, hashing_encoder):
    _build(sample_repo, index_dir, hashing_encoder)
    cart = sample_repo / "shop/cart.py"
    cart.write_text(cart.read_text().replace("def remove_item(self, sku):", "def remove_item(self, sku, all_units=True):"))
    encoder = HashingEncoder()
    index = _build(sample_repo, index_dir, encoder)
    assert index.stats.parsed_files == 1
    changed_paths = {c.path for c in index.chunks if c.text in encoder.encoded}
    assert changed_paths == {"shop/cart.py"}
    # The file chunk, the class summary and the edited method changed; other methods did not.
    assert 1 <= index.stats.embedded_chunks <= 3
    assert not any("def total(self)" in t and "class Cart" not in t for t in encoder.encoded)


def test_committed_revision_reuses_worktree_cache(sample_repo, index_dir, hashing_encoder):
    _build(sample_repo, index_dir, hashing_encoder)
    index = _build(sample_repo, index_dir, HashingEncoder(), rev="HEAD")
    assert index.commit and index.stats.parsed_files == 0 and index.stats.embedded_chunks == 0


def test_other_model_identity_embeds_again(sample_repo, index_dir, hashing_encoder, caplog):
    _build(sample_repo, index_dir, hashing_encoder)
    other = HashingEncoder(identity="another-model")
    with caplog.at_level("WARNING"):
        index = _build(sample_repo, index_dir, other)
    assert index.stats.embedded_chunks > 0 and index.stats.parsed_files == 0
    assert "built with model=hashing-test-encoder, now another-model" in caplog.text


def test_corrupt_store_is_detected_and_rebuilt(sample_repo, index_dir, hashing_encoder, caplog):
    _build(sample_repo, index_dir, hashing_encoder)
    db = index_dir / SQLiteStore.FILENAME
    for suffix in ("-wal", "-shm"):
        (index_dir / (SQLiteStore.FILENAME + suffix)).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    with caplog.at_level("WARNING"):
        index = _build(sample_repo, index_dir, HashingEncoder())
    assert "corrupt" in caplog.text
    assert index.stats.parsed_files == index.stats.files  # nothing trusted from the broken store
    assert list(index_dir.glob("cache.sqlite3.broken-*"))
    again = _build(sample_repo, index_dir, HashingEncoder())
    assert again.stats.parsed_files == 0


def test_corrupt_rows_are_never_used(sample_repo, index_dir, hashing_encoder):
    first = _build(sample_repo, index_dir, hashing_encoder)
    with sqlite3.connect(index_dir / SQLiteStore.FILENAME) as conn:
        conn.execute("UPDATE parsed SET data = x'00ff00ff'")
        conn.execute("UPDATE embeddings SET vec = x'0000'")  # truncated vectors
    index = _build(sample_repo, index_dir, HashingEncoder())
    assert index.stats.parsed_files == index.stats.files
    assert index.stats.embedded_chunks == first.stats.embedded_chunks
    assert (index.embeddings == first.embeddings).all()


def test_schema_mismatch_rebuilds(sample_repo, index_dir, hashing_encoder, caplog):
    _build(sample_repo, index_dir, hashing_encoder)
    with sqlite3.connect(index_dir / SQLiteStore.FILENAME) as conn:
        conn.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    with caplog.at_level("WARNING"):
        index = _build(sample_repo, index_dir, HashingEncoder())
    assert "schema v999" in caplog.text and index.stats.parsed_files == index.stats.files


def test_state_records_build_metadata(sample_repo, index_dir, hashing_encoder):
    index = _build(sample_repo, index_dir, hashing_encoder)
    state = json.loads((repo_state_dir(index_dir, index.root) / "state.json").read_text())
    assert state["model"] == "hashing-test-encoder" and state["embedding_dim"] == 64
    assert state["schema_version"] == 1 and state["chunker_version"]
    assert state["stats"]["chunks"] == len(index.chunks)


def test_no_cache_writes_nothing(sample_repo, index_dir, hashing_encoder):
    index = build_index(sample_repo, encoder=hashing_encoder, config=IndexConfig(index_dir=index_dir, use_cache=False))
    assert index.chunks and not index_dir.exists()


def _index_in_child(args):
    repo, index_dir = args
    index = build_index(repo, encoder=HashingEncoder(), config=IndexConfig(index_dir=index_dir))
    return len(index.chunks), float(index.embeddings.sum())


def test_concurrent_indexing_does_not_corrupt_the_store(sample_repo, index_dir, tmp_path):
    write_files(sample_repo, {f"gen/mod{i}.py": f"def handler_{i}(x):\n    return x + {i}\n" for i in range(60)})
    commit_all(sample_repo, "more modules")
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.map(_index_in_child, [(sample_repo, index_dir)] * 3)
    assert len(set(results)) == 1
    with sqlite3.connect(index_dir / SQLiteStore.FILENAME) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    index = _build(sample_repo, index_dir, HashingEncoder())
    assert index.stats.parsed_files == 0 and index.stats.embedded_chunks == 0
