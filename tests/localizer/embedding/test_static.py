"""The static embedder's runtime: the Model2Vec layout, numpy encoding, and no torch import."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from indexer.errors import ModelLoadError
from localizer.embedding.embedder import EmbedderConfig, open_embedder
from localizer.embedding.static import (
    StaticEmbedder,
    StaticModel,
    fold_table,
    is_static_dir,
    mean_rows,
    normalize_rows,
    save_static,
)


def word_tokenizer(words, max_tokens=None):
    """A tiny word-level tokenizers.Tokenizer: id i is words[i], anything else [UNK] (id 0)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(words)}}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    if max_tokens:
        tokenizer.enable_truncation(max_tokens)
    return tokenizer


@pytest.fixture
def tiny_static(tmp_path):
    words = ["parse", "date", "render", "html", "cache"]
    rng = np.random.default_rng(0)
    table = rng.normal(size=(len(words) + 1, 8)).astype(np.float32)
    save_static(tmp_path / "m", word_tokenizer(words, max_tokens=3), table, dtype="float32")
    return tmp_path / "m", table


def test_mean_rows_averages_each_id_list_and_leaves_empty_lists_zero():
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    out = mean_rows(table, [[1, 3], [], [2]])
    np.testing.assert_allclose(out, [(table[1] + table[3]) / 2, [0, 0, 0], table[2]])


def test_normalize_rows_keeps_zero_rows_zero():
    out = normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    assert not np.isnan(out).any()


def test_fold_table_applies_model2vec_mapping_and_weights():
    small = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    folded = fold_table(small, mapping=np.array([1, 0, 1]), weights=np.array([2.0, 1.0, 0.5]))
    np.testing.assert_allclose(folded, [[0, 2], [1, 0], [0, 0.5]])


def test_encoding_is_the_normalized_mean_of_the_texts_token_rows(tiny_static):
    path, table = tiny_static
    model = StaticModel.load(path)
    assert model.dim == 8 and model.max_tokens == 3
    vectors = model.encode(["parse date", "render html cache date", "", "zzz"])
    expected = normalize_rows(np.stack([
        (table[1] + table[2]) / 2,
        (table[3] + table[4] + table[5]) / 3,  # cut at the tokenizer's 3 tokens: "date" never counts
        np.zeros(8, dtype=np.float32),
        table[0],  # unknown words keep [UNK]'s row, as sentence-transformers' StaticEmbedding does
    ]))
    np.testing.assert_allclose(vectors, expected, rtol=1e-5, atol=1e-6)
    # batching never changes a vector
    np.testing.assert_allclose(model.encode(["parse date", "render html cache date"], batch_size=1), vectors[:2],
                               rtol=1e-6)


def test_vectors_are_deterministic_across_loads(tiny_static):
    path, _ = tiny_static
    texts = ["parse the date", "render html"]
    assert np.array_equal(StaticModel.load(path).encode(texts), StaticModel.load(path).encode(texts))


def test_layout_is_model2vecs(tiny_static):
    path, _ = tiny_static
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "model2vec" and config["hidden_dim"] == 8 and config["normalize"] is True
    from safetensors.numpy import load_file

    assert set(load_file(str(path / "model.safetensors"))) == {"embeddings"}
    assert is_static_dir(path)


def test_fp16_storage_keeps_vectors_within_rounding(tmp_path, tiny_static):
    path, table = tiny_static
    save_static(tmp_path / "half", word_tokenizer(["parse", "date", "render", "html", "cache"], 3), table)
    full, half = StaticModel.load(path), StaticModel.load(tmp_path / "half")
    assert half.table.dtype == np.float32  # stored fp16, computed in fp32
    cos = (full.encode(["parse date html"]) * half.encode(["parse date html"])).sum()
    assert cos > 0.9999


def test_bad_directories_are_one_line_load_errors(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "model2vec"}))
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="could not load static model"):
        StaticModel.load(tmp_path)
    with pytest.raises(ModelLoadError, match="not a static model directory"):
        StaticModel.load(tmp_path / "missing")
    assert not is_static_dir(tmp_path / "missing")


def test_open_embedder_serves_a_static_directory_with_the_embedder_interface(tiny_static):
    path, _ = tiny_static
    embedder = open_embedder(EmbedderConfig(model=str(path), device="auto", backend="torch-bf16"))
    assert isinstance(embedder, StaticEmbedder)
    assert embedder.dim == 8 and embedder.device == "cpu"
    # one runtime: the backend never enters the cache key, so every config reads the same rows
    assert embedder.identity == open_embedder(EmbedderConfig(model=str(path))).identity
    assert "backend" not in embedder.identity and embedder.identity.endswith("|static")
    docs = embedder.encode_documents(["parse date", "render html"])
    np.testing.assert_allclose(embedder.encode_query("parse date"), docs[0], rtol=1e-6)


def test_static_path_imports_no_torch(tiny_static, tmp_path):
    """Loading, indexing and querying with a static model never imports torch (nor transformers):
    the warm query's cost is the index, not a framework import."""
    path, _ = tiny_static
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "dates.py").write_text("def parse_date(text):\n    return text\n\n\ndef render_html(x):\n    return x\n")
    script = textwrap.dedent(f"""
        import sys
        from localizer import Localizer, LocalizeConfig
        from localizer.embedding.embedder import EmbedderConfig
        from indexer.index import IndexConfig
        config = LocalizeConfig(retriever="hybrid", embedder=EmbedderConfig(model={str(path)!r}),
                                index=IndexConfig(index_dir={str(tmp_path / 'idx')!r}))
        loc = Localizer({str(repo)!r}, config)
        loc.index()
        result = loc.localize("parse date fails on html")
        assert result.functions, result
        heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)
        print("HEAVY", heavy)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout


def test_threaded_slices_give_the_vectors_of_one_text_at_a_time(tiny_static):
    """Large calls are tokenized on several threads; the vectors must not depend on the slicing."""
    path, _ = tiny_static
    model = StaticModel.load(path)
    words = ["parse", "date", "render", "html", "cache", "zzz"]
    texts = [" ".join(words[(i + j) % 6] for j in range(i % 5)) for i in range(300)]
    together = model.encode(texts)
    one_by_one = np.concatenate([model.encode([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, rtol=1e-6, atol=1e-7)
