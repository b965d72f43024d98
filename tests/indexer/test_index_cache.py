import json
import multiprocessing
import shutil
import sqlite3
import stat

import numpy as np
import pytest

from indexer.errors import EmbeddingError
from indexer.index import IndexConfig, build_index, repo_state_dir
from indexer.source import DirectorySource, GitWorktreeSource
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


def _plain_copy(repo, tmp_path):
    """The sample repository as a directory that is not a git repository."""
    return shutil.copytree(repo, tmp_path / "plain", ignore=shutil.ignore_patterns(".git"))


@pytest.mark.parametrize("source_class", [GitWorktreeSource, DirectorySource])
def test_a_save_between_listing_and_reading_never_poisons_the_cache(
    source_class, sample_repo, tmp_path, index_dir, monkeypatch
):
    """#26 case 1: content read after a concurrent save was cached under the listed (clean) SHA."""
    repo = sample_repo if source_class is GitWorktreeSource else _plain_copy(sample_repo, tmp_path)
    cart = repo / "shop/cart.py"
    clean = cart.read_bytes()
    read = source_class.read

    def read_after_a_save(self, file):
        if file.path == "shop/cart.py":
            cart.write_bytes(clean + b"\n\ndef phantom_function():\n    return 1\n")
        return read(self, file)

    monkeypatch.setattr(source_class, "read", read_after_a_save)
    _build(repo, index_dir, HashingEncoder())
    monkeypatch.undo()
    cart.write_bytes(clean)  # the work tree is clean again
    index = _build(repo, index_dir, HashingEncoder())
    names = {c.name for c in index.chunks if c.path == "shop/cart.py"}
    assert "phantom_function" not in names and "Cart.remove_item" in names


@pytest.mark.parametrize("source_class", [GitWorktreeSource, DirectorySource])
def test_a_file_deleted_between_listing_and_reading_is_skipped(
    source_class, sample_repo, tmp_path, index_dir, monkeypatch, caplog
):
    """#26 case 6: a file renamed or deleted while indexing ran was a FileNotFoundError traceback."""
    repo = sample_repo if source_class is GitWorktreeSource else _plain_copy(sample_repo, tmp_path)
    read = source_class.read

    def read_after_a_rename(self, file):
        if file.path == "shop/cart.py":
            (repo / "shop/cart.py").rename(repo / "shop/basket.py")
        return read(self, file)

    monkeypatch.setattr(source_class, "read", read_after_a_rename)
    with caplog.at_level("WARNING"):
        index = _build(repo, index_dir, HashingEncoder())
    assert "shop/cart.py was deleted or renamed while it was indexed: skipped" in caplog.text
    assert index.stats.skipped["vanished"] == 1
    paths = {c.path for c in index.chunks}
    assert "shop/cart.py" not in paths and "shop/pricing.py" in paths


@pytest.mark.parametrize("payload", ["[1, 2]", "null", '"built"', "3"])
def test_state_that_is_not_an_object_is_rebuilt_with_a_warning(payload, sample_repo, index_dir, hashing_encoder, caplog):
    """#26 case 6: valid JSON that is not an object raised AttributeError from ``previous.get``."""
    first = _build(sample_repo, index_dir, hashing_encoder)
    state = repo_state_dir(index_dir, first.root) / "state.json"
    state.write_text(payload)
    with caplog.at_level("WARNING"):
        index = _build(sample_repo, index_dir, HashingEncoder())
    assert "is not a JSON object: rebuilding" in caplog.text
    assert [c.key for c in index.chunks] == [c.key for c in first.chunks]
    assert json.loads(state.read_text())["repo"] == str(first.root)


def test_non_finite_vectors_in_the_store_are_embedded_again(sample_repo, index_dir, hashing_encoder, caplog):
    """#26 case 5: NaN rows were served from the store, and FAISS then returned no hit at all."""
    first = _build(sample_repo, index_dir, hashing_encoder)
    one_nan = np.ones(64, dtype=np.float32)
    one_nan[7] = np.nan
    bad = [np.full(64, np.nan, np.float32), np.full(64, np.inf, np.float32), one_nan]
    with sqlite3.connect(index_dir / SQLiteStore.FILENAME) as conn:
        keys = [row[0] for row in conn.execute("SELECT key FROM embeddings ORDER BY key LIMIT 3")]
        conn.executemany("UPDATE embeddings SET vec = ? WHERE key = ?", [(v.tobytes(), k) for v, k in zip(bad, keys)])
    with caplog.at_level("WARNING"):
        index = _build(sample_repo, index_dir, HashingEncoder())
    assert "holds 3 non-finite embeddings: embedding them again" in caplog.text
    assert index.stats.embedded_chunks == 3
    assert np.isfinite(index.embeddings).all() and (index.embeddings == first.embeddings).all()
    assert _build(sample_repo, index_dir, HashingEncoder()).stats.embedded_chunks == 0


class _NaNEncoder(HashingEncoder):
    def encode_documents(self, texts):
        vectors = super().encode_documents(texts)
        vectors[0, 0] = np.nan
        return vectors


def test_an_embedder_that_returns_nan_is_a_one_line_error_and_caches_nothing(sample_repo, index_dir):
    with pytest.raises(EmbeddingError, match="produced non-finite vectors for 1 of"):
        _build(sample_repo, index_dir, _NaNEncoder())
    with sqlite3.connect(index_dir / SQLiteStore.FILENAME) as conn:
        assert conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 0


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_the_cache_is_private_to_its_owner(sample_repo, tmp_path, hashing_encoder):
    """#26 case 9: the cache holds the code of every indexed repository but was created 0755/0644."""
    index_dir = tmp_path / "cache" / "localizer"
    index = _build(sample_repo, index_dir, hashing_encoder)
    state_dir = repo_state_dir(index_dir, index.root)
    for directory in (tmp_path / "cache", index_dir, index_dir / "repos", state_dir):
        assert _mode(directory) == 0o700, directory
    files = [state_dir / "state.json", state_dir / "index.lock", *index_dir.glob(SQLiteStore.FILENAME + "*")]
    assert len(files) >= 3
    for file in files:
        assert _mode(file) == 0o600, file


def test_utf16_and_latin1_sources_are_indexed_as_text(sample_repo, index_dir, hashing_encoder):
    """#26 case 9: UTF-16 was skipped as binary and Latin-1 identifiers became ``caf\ufffd``."""
    write_files(
        sample_repo,
        {
            "shop/wide.py": "\ufeffdef wide_função():\n    return 1\n".encode("utf-16-le"),
            "shop/legacy.py": "def legacy_café():\n    return 2\n".encode("latin-1"),
        },
    )
    commit_all(sample_repo, "other encodings")
    index = _build(sample_repo, index_dir, hashing_encoder)
    names = {c.path: c.name for c in index.chunks if c.kind == "function"}
    assert names["shop/wide.py"] == "wide_função" and names["shop/legacy.py"] == "legacy_café"
    assert "binary" not in index.stats.skipped
    assert any("def legacy_café():" in c.text for c in index.chunks if c.kind == "file")
