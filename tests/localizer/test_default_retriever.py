"""The defaults are measured decisions: BM25 retrieves, the CoRNStack-trained MiniLM embeds for dense
and hybrid, and a static embedder is an option by name (``localizer-static``) where a build ships one."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.errors import ModelLoadError
from localizer import config as config_module
from localizer.embedding import embedder as embedder_module
from localizer.embedding.embedder import EmbedderConfig, open_embedder, resolve_model
from localizer.embedding.shipped import SHIPPED_MODEL, STATIC_MODEL, shipped_model_path
from localizer.embedding.static import StaticEmbedder, save_static


def test_bm25_is_the_default_retriever_and_the_trained_minilm_the_default_embedder():
    assert config_module.DEFAULT_RETRIEVER == "bm25"
    expected = SHIPPED_MODEL if shipped_model_path() is not None else embedder_module.BASE_MODEL
    assert config_module.DEFAULT_MODEL == embedder_module.default_model() == expected


def test_a_shipped_static_model_is_an_option_by_name_never_the_default(monkeypatch, tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    tokenizer = Tokenizer(WordLevel({"[UNK]": 0, "cart": 1, "total": 2}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    save_static(tmp_path / "static", tokenizer, np.eye(3, 4, dtype=np.float32))
    monkeypatch.setattr(embedder_module, "shipped_static_path", lambda: tmp_path / "static")
    assert embedder_module.default_model() != STATIC_MODEL
    target, identity = resolve_model(STATIC_MODEL)
    assert target == str(tmp_path / "static") and identity.startswith(f"{STATIC_MODEL}@static:")
    assert isinstance(open_embedder(EmbedderConfig(model=STATIC_MODEL)), StaticEmbedder)


def test_asking_for_a_static_model_a_build_lacks_is_one_line(monkeypatch):
    monkeypatch.setattr(embedder_module, "shipped_static_path", lambda: None)
    with pytest.raises(ModelLoadError, match="ships no static embedder") as error:
        resolve_model(STATIC_MODEL)
    assert "\n" not in str(error.value)
