"""The plain-torch Qwen2 against transformers' own, on a random tiny Qwen2: same logits, same cache."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from localizer.rerank.qwen2_torch import KVCache, Qwen2ForScoring, Qwen2Shape, load_qwen2_for_scoring  # noqa: E402
from localizer.rerank.scorers import _cache_kwarg  # noqa: E402
from tests.tiny_lm import one_thread, tiny_model, tiny_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tokenizer = tiny_tokenizer()
    model = tiny_model(tokenizer, seed=3)
    with torch.no_grad():  # random biases, so a dropped bias shows
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.5)
    out = tmp_path_factory.mktemp("tiny-qwen2")
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return model, out


def _batch(rows, pad=0):
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(row)
        mask[i, width - len(row):] = 1
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def test_logits_and_cache_match_transformers_on_left_padded_batches(saved):
    reference, directory = saved
    ours = load_qwen2_for_scoring(directory, torch.float32)
    assert ours is not None and ours.shape.kv_heads == 2 and ours.shape.tied
    rows = [[5, 17, 33, 8, 90, 4, 61], [12, 7, 45]]  # the second is left-padded
    ids, mask, positions = _batch(rows)
    with one_thread(), torch.inference_mode():
        theirs = reference(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        mine = ours(ids, attention_mask=mask, position_ids=positions, logits_to_keep=1)
        torch.testing.assert_close(mine.logits[:, -1], theirs.logits[:, -1], rtol=1e-4, atol=1e-4)
        # extend both caches by two tokens (the scorer's multi-token id branch), then crop them back
        extra = torch.tensor([[3, 9], [3, 9]])
        ext_mask = torch.cat([mask, torch.ones_like(extra)], dim=1)
        ext_pos = positions[:, -1:] + 1 + torch.arange(2)
        their_cache = getattr(theirs, "cache", None) or theirs.past_key_values
        theirs2 = reference(input_ids=extra, attention_mask=ext_mask, position_ids=ext_pos,
                            use_cache=True, **{_cache_kwarg(reference): their_cache})
        mine2 = ours(extra, attention_mask=ext_mask, position_ids=ext_pos, past_key_values=mine.past_key_values)
        torch.testing.assert_close(mine2.logits[:, -1], theirs2.logits[:, -1], rtol=1e-4, atol=1e-4)
        mine2.past_key_values.crop(-2)
        assert mine2.past_key_values.get_seq_length() == ids.shape[1]
        # a lone prompt that shares a prefix: feed only its new tokens on the cropped cache
        lone = rows[0][:5] + [70, 71]
        cache = ours(torch.tensor([rows[0]]), logits_to_keep=1).past_key_values
        cache.crop(5)
        resumed = ours(torch.tensor([lone[5:]]), attention_mask=torch.ones(1, 7, dtype=torch.long),
                       position_ids=torch.tensor([[5, 6]]), past_key_values=cache)
        fresh = reference(input_ids=torch.tensor([lone]))
        torch.testing.assert_close(resumed.logits[:, -1], fresh.logits[:, -1], rtol=1e-4, atol=1e-4)
        # unpadded, from scratch (the fused causal kernel), and one token on a cache (no mask at all)
        whole = ours(torch.tensor([lone]), logits_to_keep=0)
        torch.testing.assert_close(whole.logits, fresh.logits, rtol=1e-4, atol=1e-4)
        whole.past_key_values.crop(-1)
        last = ours(torch.tensor([lone[-1:]]), past_key_values=whole.past_key_values)
        torch.testing.assert_close(last.logits[:, -1], fresh.logits[:, -1], rtol=1e-4, atol=1e-4)


def test_the_scorer_ranks_the_same_with_either_model(saved):
    from localizer.rerank.prompt import PromptBudget, build_prompt
    from localizer.rerank.scorers import FirstTokenScorer

    reference, directory = saved
    ours = load_qwen2_for_scoring(directory, torch.float32)
    tokenizer = tiny_tokenizer()
    prompts = [build_prompt(tokenizer, "the session raises", [f"def f{i}(): return {i}" for i in range(12)],
                            PromptBudget()) for _ in range(2)]
    with one_thread():
        a = FirstTokenScorer(reference, tokenizer).rank(prompts)
        b = FirstTokenScorer(ours, tokenizer).rank(prompts)
    assert [x.order for x in a] == [x.order for x in b]


def test_configs_it_does_not_implement_go_to_transformers(saved, tmp_path):
    config = {"model_type": "qwen2", "num_attention_heads": 4, "hidden_size": 32, "num_hidden_layers": 2,
              "intermediate_size": 64, "vocab_size": 10}
    assert Qwen2Shape.from_config(config) is not None
    assert Qwen2Shape.from_config({**config, "model_type": "llama"}) is None
    assert Qwen2Shape.from_config({**config, "rope_scaling": {"type": "yarn"}}) is None
    assert Qwen2Shape.from_config({**config, "rope_parameters": {"rope_type": "yarn"}}) is None
    assert Qwen2Shape.from_config({**config, "use_sliding_window": True}) is None
    assert load_qwen2_for_scoring(tmp_path, torch.float32) is None  # no config, no weights


def test_crop_follows_transformers_semantics():
    cache = KVCache(1)
    cache.update(0, torch.zeros(1, 2, 5, 4), torch.zeros(1, 2, 5, 4))
    cache.crop(-2)
    assert cache.get_seq_length() == 3
    cache.crop(7)  # longer than held: unchanged
    assert cache.get_seq_length() == 3


def test_the_loader_uses_it_for_scoring_on_the_cpu_and_transformers_otherwise(saved, tmp_path):
    from localizer.rerank import models

    _, directory = saved
    fast = models.load_reranker_model(str(directory), device="cpu", dtype="fp32", cache_dir=tmp_path, scoring_only=True)
    assert isinstance(fast.model, Qwen2ForScoring) and fast.context_size == 4096
    full = models.load_reranker_model(str(directory), device="cpu", dtype="fp32", cache_dir=tmp_path)
    assert not isinstance(full.model, Qwen2ForScoring) and hasattr(full.model, "generate")
