"""trust_remote_code is granted to known hub ids loaded from the hub, or when the user asks for it,
and never by name to a local directory (issue #26, case 3: an untrusted checkout holding a
``nomic-ai/CodeRankEmbed/`` directory with an ``auto_map`` would run its own Python)."""

from __future__ import annotations

import pytest

from localizer.embedding import embedder as embedder_module
from localizer.embedding.embedder import Embedder, EmbedderConfig, remote_code_trusted

HUB_ID = "nomic-ai/CodeRankEmbed"


def test_trust_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert remote_code_trusted(HUB_ID, HUB_ID, None)  # from the hub, by its id
    assert not remote_code_trusted("someone/else", "someone/else", None)
    local = tmp_path / "nomic-ai" / "CodeRankEmbed"
    local.mkdir(parents=True)
    assert not remote_code_trusted(HUB_ID, str(local.resolve()), None)  # resolved to a local directory
    assert not remote_code_trusted(HUB_ID, HUB_ID, None)  # the id itself names a directory here
    assert remote_code_trusted(HUB_ID, str(local.resolve()), True)  # the user's explicit choice wins
    assert not remote_code_trusted(HUB_ID, HUB_ID, False)


def test_a_local_directory_named_like_a_trusted_hub_model_is_loaded_untrusted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nomic-ai" / "CodeRankEmbed").mkdir(parents=True)
    seen = {}

    class FakeST:
        def __init__(self, target, device=None, trust_remote_code=None):
            seen["target"], seen["trust"] = target, trust_remote_code
            raise RuntimeError("stop here")

    import sentence_transformers

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", FakeST)
    with pytest.raises(embedder_module.ModelLoadError, match="stop here"):
        Embedder(EmbedderConfig(model=HUB_ID, device="cpu", backend="torch"))
    assert seen["trust"] is False and seen["target"] == str((tmp_path / HUB_ID).resolve())
    with pytest.raises(embedder_module.ModelLoadError):
        Embedder(EmbedderConfig(model=HUB_ID, device="cpu", backend="torch", trust_remote_code=True))
    assert seen["trust"] is True


def test_the_cli_flag_reaches_the_embedder_config():
    from localizer.cli.options import localize_config

    values = {"retriever": "hybrid", "model": HUB_ID, "device": "cpu", "backend": "torch", "max_file_size": 10,
              "include_tests": False}
    assert localize_config({**values, "trust_remote_code": True}).embedder.trust_remote_code is True
    assert localize_config({**values, "trust_remote_code": None}).embedder.trust_remote_code is None
