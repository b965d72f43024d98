"""Reranking is on by default exactly when the build ships an adapter; a default rerank whose model
is not installed is one note, not an error; ``--rerank`` and ``--no-rerank`` always win."""

from __future__ import annotations

import json

import pytest

from localizer.cli import options as cli_options
from localizer.rerank import reranker as reranker_module
from localizer.rerank import shipped

from tests.cli_helpers import assert_one_line_error, run
from tests.localizer.test_localize import CART_ISSUE

torch = pytest.importorskip("torch")

OPTION_DEFAULTS = {"retriever": "bm25", "model": None, "device": "cpu", "backend": "auto", "max_file_size": 1_000_000,
                   "include_tests": False, "reranker_model": cli_options.DEFAULT_RERANKER, "reranker_adapter": None,
                   "rerank_depth": 20, "rerank_window": 10, "rerank_stride": 5, "rerank_mode": "first-token",
                   "rerank_fusion": "rrf"}


@pytest.fixture
def no_shipped(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "SHIPPED_RERANKER", tmp_path / "nothing-shipped")


@pytest.fixture
def shipped_dir(tmp_path, monkeypatch):
    """An adapter installed where the package ships one (a real tiny LoRA when a test loads it)."""
    target = tmp_path / "models" / "reranker"
    target.mkdir(parents=True)
    (target / "adapter_config.json").write_text("{}")
    monkeypatch.setattr(shipped, "SHIPPED_RERANKER", target)
    return target


def _config(**values):
    return cli_options.localize_config({**OPTION_DEFAULTS, **values})


def test_without_a_shipped_adapter_only_an_explicit_rerank_reranks(no_shipped):
    assert _config(rerank=None).rerank is None
    assert _config(rerank=False).rerank is None
    explicit = _config(rerank=True).rerank
    assert explicit is not None and explicit.required and explicit.adapter is None


def test_a_shipped_adapter_turns_reranking_on_and_no_rerank_off(shipped_dir):
    default = _config(rerank=None).rerank
    assert default is not None and not default.required and default.adapter == str(shipped_dir)
    assert _config(rerank=False).rerank is None
    assert _config(rerank=True).rerank.required
    # another base model than the one the adapter was trained on gets no adapter
    assert _config(rerank=True, reranker_model="some/other-model").rerank.adapter is None
    assert _config(rerank=True, reranker_adapter="/my/adapter").rerank.adapter == "/my/adapter"


def test_a_default_rerank_whose_model_is_missing_is_one_note(shipped_dir, sample_repo, index_dir, tmp_path):
    issue = tmp_path / "issue.md"
    issue.write_text(CART_ISSUE)
    result = run("--repo", sample_repo, "--index-dir", index_dir, "--issue", issue, "--format", "json",
                 "--reranker", tmp_path / "no-such-model")
    assert result.exit_code == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("localize: note:")]
    assert len(notes) == 1 and "reranker not installed" in notes[0] and "--no-rerank" in notes[0], result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads(result.stdout)["functions"]  # ranked anyway

    # asked for explicitly, the same missing model is an error
    result = run("--repo", sample_repo, "--index-dir", index_dir, "--issue", issue, "--rerank",
                 "--reranker", tmp_path / "no-such-model")
    assert_one_line_error(result, "cannot load reranker model")


def test_the_default_pipeline_reranks_with_the_shipped_adapter(tmp_path, monkeypatch, sample_repo, index_dir):
    peft = pytest.importorskip("peft")
    from localizer import Localizer
    from localizer.rerank import models
    from tests.tiny_lm import one_thread, tiny_model, tiny_tokenizer

    base_dir, adapter_dir = tmp_path / "base", tmp_path / "models" / "reranker"
    tokenizer = tiny_tokenizer()
    tiny_model(tokenizer).save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    lora = peft.get_peft_model(tiny_model(tokenizer), peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    lora.save_pretrained(adapter_dir)
    monkeypatch.setattr(shipped, "SHIPPED_RERANKER", adapter_dir)
    loads = []

    def load(model, adapter, device, dtype, scoring_only=False):  # the tiny model stands in for the packaged one
        loads.append((model, adapter))
        return models.load_reranker_model(str(base_dir), adapter, "cpu", "fp32", cache_dir=tmp_path / "model-cache",
                                          scoring_only=scoring_only)

    monkeypatch.setattr(reranker_module, "load_reranker_model", load)
    with one_thread():
        config = _config(rerank=None, index_dir=index_dir, rerank_depth=4)
        ranking = Localizer(sample_repo, config).rank(CART_ISSUE)
        assert loads == [(cli_options.DEFAULT_RERANKER, str(adapter_dir))]
        assert ranking.model_order is not None and sorted(ranking.model_order) == [0, 1, 2, 3]

        plain = Localizer(sample_repo, _config(rerank=False, index_dir=index_dir)).rank(CART_ISSUE)
        assert plain.model_order is None and len(loads) == 1  # --no-rerank never loads the model


def test_help_says_what_the_default_is(no_shipped):
    text = " ".join(run("--help").stdout.split())  # unwrapped
    assert "--rerank / --no-rerank" in text and "on when this build ships a trained reranker adapter" in text
