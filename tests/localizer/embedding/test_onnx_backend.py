"""The ONNX backends must give the vectors the torch backend gives, and never share its cache rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from localizer.embedding.embedder import Embedder, EmbedderConfig  # noqa: E402
from localizer.embedding.onnx_backend import l2_normalize, onnx_cache_dir, pool  # noqa: E402

TEXTS = [
    "def total(cart):\n    return sum(item.price for item in cart.items)",
    "class Queue:\n    def pop(self):\n        return self.items.pop(0)",
    "the password reset token expires too early",
    "x",
]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer BERT with MiniLM's tokenizer: exports in a second, unlike the real model."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from localizer.embedding.embedder import packaged_model_path

    base = packaged_model_path()
    if base is None:
        pytest.skip("the packaged MiniLM is not installed")
    root = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(root / "hf")
    tokenizer.save_pretrained(root / "hf")
    transformer = models.Transformer(str(root / "hf"), max_seq_length=64)
    model = SentenceTransformer(modules=[transformer, models.Pooling(32, pooling_mode="mean"), models.Normalize()])
    model.save(str(root / "st"))
    return root / "st"


def test_pool_ignores_padding():
    hidden = np.array([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = np.array([[1, 1, 0]])
    assert np.allclose(pool(hidden, mask, "mean"), [[2.0, 2.0]])
    assert np.allclose(pool(hidden, mask, "cls"), [[1.0, 1.0]])
    assert np.allclose(np.linalg.norm(l2_normalize(np.array([[3.0, 4.0]])), axis=1), 1.0)


@pytest.mark.parametrize("backend,min_cos", [("onnx", 0.9999), ("onnx-int8", 0.95)])
def test_onnx_backends_match_torch_and_are_cached(tiny_model_dir, tmp_path, monkeypatch, backend, min_cos):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    torch_embedder = Embedder(EmbedderConfig(model=str(tiny_model_dir), device="cpu"))
    onnx_embedder = Embedder(EmbedderConfig(model=str(tiny_model_dir), device="cpu", backend=backend))

    expected = torch_embedder.encode_documents(TEXTS)
    got = onnx_embedder.encode_documents(TEXTS)
    assert got.shape == expected.shape
    cosines = np.sum(got * expected, axis=1)
    assert cosines.min() >= min_cos, cosines
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert float(onnx_embedder.encode_query(TEXTS[2]) @ torch_embedder.encode_query(TEXTS[2])) >= min_cos

    # Different vectors, different identity: the index cache can never mix them.
    assert onnx_embedder.identity != torch_embedder.identity
    assert onnx_embedder.identity.endswith(f"|backend={backend}")

    exported = list((tmp_path / "cache" / "localizer" / "onnx").glob("*/*.onnx"))
    assert len(exported) == 1
    mtime = exported[0].stat().st_mtime_ns
    Embedder(EmbedderConfig(model=str(tiny_model_dir), device="cpu", backend=backend))
    assert exported[0].stat().st_mtime_ns == mtime, "a second load must reuse the exported graph"


def test_bf16_backend_is_autocast_close_to_fp32_and_keyed_apart(tiny_model_dir, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    import localizer.rerank.models as rerank_models

    monkeypatch.setattr(rerank_models, "cpu_supports_bf16", lambda cpuinfo: False)
    fp32 = Embedder(EmbedderConfig(model=str(tiny_model_dir), device="cpu"))
    with caplog.at_level("WARNING"):
        bf16 = Embedder(EmbedderConfig(model=str(tiny_model_dir), device="cpu", backend="torch-bf16"))
    assert "no native bf16" in caplog.text
    expected, got = fp32.encode_documents(TEXTS), bf16.encode_documents(TEXTS)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert not np.array_equal(got, expected), "bf16 autocast must change the arithmetic"
    assert np.sum(got * expected, axis=1).min() >= 0.99
    assert bf16.identity == f"{fp32.identity}|backend=torch-bf16"
    assert not (tmp_path / "cache" / "localizer" / "onnx").exists()  # nothing exported
    again = fp32.encode_documents(TEXTS)
    assert np.array_equal(again, expected), "autocast must not leak into the fp32 embedder"


def test_cache_dir_depends_on_identity(tmp_path):
    assert onnx_cache_dir("a", tmp_path) != onnx_cache_dir("b", tmp_path)


def test_unknown_backend_is_a_clear_error():
    from indexer.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="unknown backend"):
        Embedder(EmbedderConfig(backend="tensorrt"))


def test_export_goes_where_the_index_goes_and_nowhere_with_no_cache(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    Embedder(EmbedderConfig(model=str(tiny_model_dir), device="cpu", backend="onnx", artifact_dir=tmp_path / "index"))
    assert list((tmp_path / "index" / "onnx").glob("*/model.onnx"))

    embedder = Embedder(EmbedderConfig(model=str(tiny_model_dir), device="cpu", backend="onnx-int8",
                                       persist_artifacts=False))
    assert embedder.encode_documents(TEXTS[:2]).shape[0] == 2
    assert not (tmp_path / "xdg").exists(), "--no-cache must not write an export into the user cache"
