"""Model-free parts of the listwise reranker: windows, permutation parsing, prompt budgets."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localizer.rerank.fusion import apply_fusion, fuse_with_first_stage
from localizer.rerank.parse import complete_order, mentioned_ids, parse_permutation
from localizer.rerank.prompt import (PromptBudget, answer_text, build_prompt, count_tokens, neutralize_ids,
                                     truncate_tokens, user_text)
from localizer.rerank.window import apply_order, sliding_rerank, sliding_rerank_batch, window_spans

# --------------------------------------------------------------------------- windows


def test_spans_for_top20_window10_stride5_are_three_from_the_bottom():
    assert window_spans(20, 10, 5) == [(10, 20), (5, 15), (0, 10)]


@pytest.mark.parametrize("n, window, stride, expected", [
    (0, 10, 5, []),
    (1, 10, 5, [(0, 1)]),
    (7, 10, 5, [(0, 7)]),  # rank_llm would add a redundant (0, 2)
    (12, 10, 5, [(2, 12), (0, 7)]),
    (20, 10, 10, [(10, 20), (0, 10)]),
])
def test_spans_edge_cases(n, window, stride, expected):
    assert window_spans(n, window, stride) == expected


@pytest.mark.parametrize("window, stride", [(0, 1), (5, 0), (5, 6)])
def test_spans_reject_bad_settings(window, stride):
    with pytest.raises(ValueError):
        window_spans(10, window, stride)


def test_every_candidate_is_in_some_window_and_windows_respect_size():
    for n in range(0, 60):
        for window in range(2, 12):
            for stride in range(1, window + 1):
                spans = window_spans(n, window, stride)
                seen = {i for s, e in spans for i in range(s, e)}
                assert seen == set(range(n))
                assert all(0 < e - s <= window for s, e in spans)
                assert not spans or spans[-1][0] == 0
                # bottom-up: each window starts higher than the previous one
                assert [s for s, _ in spans] == sorted({s for s, _ in spans}, reverse=True)


def test_identity_scorer_leaves_the_list_unchanged():
    items = list(range(37))
    assert sliding_rerank(items, 10, 5, lambda w: list(range(len(w)))) == items


def test_apply_order_moves_only_the_span_and_checks_the_permutation():
    assert apply_order("abcdef", (2, 5), [2, 0, 1]) == list("abecdf")
    with pytest.raises(ValueError):
        apply_order("abcdef", (2, 5), [0, 0, 1])


def _sort_by_key(window):
    """A deterministic stub model: it knows the true relevance (the item itself, lower is better)."""
    return sorted(range(len(window)), key=lambda i: window[i])


@pytest.mark.parametrize("n, window, stride", [(20, 10, 5), (100, 20, 10), (33, 8, 3)])
def test_one_bottom_up_pass_sorts_the_top_window_minus_stride(n, window, stride):
    rng = random.Random(n * 31 + window)
    for _ in range(25):
        items = list(range(n))
        rng.shuffle(items)
        out = sliding_rerank(items, window, stride, _sort_by_key)
        guaranteed = window - stride  # what the overlap carries to the top
        assert out[:guaranteed] == list(range(guaranteed))
        assert sorted(out) == list(range(n))


def test_batched_lists_match_one_by_one_and_share_steps():
    rng = random.Random(7)
    lists = [rng.sample(range(n), n) for n in (20, 7, 13)]
    batch_sizes: list[int] = []

    def rank_windows(tasks):
        batch_sizes.append(len(tasks))
        return [_sort_by_key(t.items) for t in tasks]

    together, trace = sliding_rerank_batch(lists, 10, 5, rank_windows)
    assert together == [sliding_rerank(items, 10, 5, _sort_by_key) for items in lists]
    assert batch_sizes == [3, 2, 1]  # 20 needs 3 steps, 13 needs 2, 7 needs 1
    assert [span for span, _ in trace[0]] == [(10, 20), (5, 15), (0, 10)]


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("response, n, expected", [
    ("[3] > [1] > [2]", 3, [2, 0, 1]),
    ("[2] > [2] > [1]", 3, [1, 0, 2]),  # repeats dropped, the unmentioned 3 appended
    ("[7] > [2] > [0]", 3, [1, 0, 2]),  # out of range ignored
    ("", 4, [0, 1, 2, 3]),
    ("I cannot rank these.", 3, [0, 1, 2]),
    ("The top 2 are [5] and [3].", 5, [4, 2, 0, 1, 3]),  # bracketed ids beat stray numbers
    ("3 > 1", 3, [2, 0, 1]),  # bare numbers when there are no brackets
    ("[10] > [1] > [9]", 10, [9, 0, 8, 1, 2, 3, 4, 5, 6, 7]),
    ("<think>[1] > [2]</think>[2] > [1]", 2, [1, 0]),
    ("[②] > [①]", 2, [1, 0]),
    ("[ 2 ]>[1]", 2, [1, 0]),
    ("[99999999999] > [2]", 2, [1, 0]),
])
def test_parse_hand_cases(response, n, expected):
    assert parse_permutation(response, n) == expected


def test_mentioned_ids_and_complete_order():
    assert mentioned_ids("[4] > [1] > [4]") == [4, 1, 4]
    assert complete_order([4, 1, 4, 9], 5) == [3, 0, 1, 2, 4]


def _check_permutation(response: str, n: int) -> None:
    order = parse_permutation(response, n)
    assert sorted(order) == list(range(n)), (response, n, order)


@settings(max_examples=120, deadline=None)
@given(st.lists(st.sampled_from(list("[]>0123456789 ,abc\n①²") + ["[1]", "[10]", " > ", "</think>"]), max_size=40),
       st.integers(min_value=0, max_value=25))
def test_parse_fuzz_always_returns_a_permutation(pieces, n):
    _check_permutation("".join(pieces), n)


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=60), st.integers(min_value=0, max_value=25))
def test_parse_fuzz_arbitrary_text(response, n):
    _check_permutation(response, n)


def test_parse_seeded_fuzz_always_returns_a_permutation():
    rng = random.Random(1234)
    pieces = ["[", "]", " > ", ">", "[1]", "[12]", "x", "\n", "-3", "007", "</think>", "①"] + [str(i) for i in range(30)]
    for _ in range(2000):
        response = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 25)))
        _check_permutation(response, rng.randint(0, 22))


# --------------------------------------------------------------------------- prompt and budgets


class WordsView:
    """One token per whitespace-separated word, so budgets are easy to reason about; decode
    returns a prefix of the last encoded text's words (all that truncation asks of it)."""

    chat_template = None

    def encode(self, text, add_special_tokens=False):
        self._words = text.split()
        return list(range(len(self._words)))

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(self._words[: len(ids)])


def test_prompt_follows_the_paper_layout():
    text = user_text("Crash in foo()", ["def a(): pass", "def b(x): return x[1]"])
    assert text.startswith("I will provide you with 2 code functions, each indicated by a numerical identifier []. ")
    assert "GitHub issue: Crash in foo().\n" in text
    # each candidate opened and closed by its id; ids inside code are neutralized
    assert "\n[1] def a(): pass\n(end of [1])\n[2] def b(x): return x(1)\n(end of [2])\n" in text
    assert text.rstrip().endswith("Only respond with the ranking results, do not say any word or explain.")
    assert text.count("Crash in foo()") == 2
    assert answer_text([2, 0, 1]) == "[3] > [1] > [2]"
    assert neutralize_ids("a[10] + b[i]") == "a(10) + b[i]"


def test_truncation_respects_each_budget_and_the_total():
    tok = WordsView()
    issue = " ".join(f"issue{i}" for i in range(500))
    cands = [" ".join(f"c{j}w{i}" for i in range(300)) for j in range(10)]
    budget = PromptBudget(max_prompt_tokens=5000, issue_tokens=40, candidate_tokens=30)
    prompt = build_prompt(tok, issue, cands, budget)
    assert prompt.tokens <= 5000 and prompt.tokens == count_tokens(tok, prompt.text)
    assert (prompt.issue_tokens, prompt.candidate_tokens) == (40, 30)  # it fits: budgets untouched
    assert "issue39" in prompt.text and "issue40" not in prompt.text
    assert all(f"c{j}w29" in prompt.text and f"c{j}w30" not in prompt.text for j in range(10))


def test_candidates_shrink_before_the_issue_then_the_issue_shrinks():
    tok = WordsView()
    issue = " ".join(f"issue{i}" for i in range(500))
    cands = [" ".join(f"c{j}w{i}" for i in range(300)) for j in range(10)]
    roomy = build_prompt(tok, issue, cands, PromptBudget(10_000, 40, 30))
    tight = PromptBudget(max_prompt_tokens=roomy.tokens - 50, issue_tokens=40, candidate_tokens=30,
                         min_candidate_tokens=10)
    prompt = build_prompt(tok, issue, cands, tight)
    assert prompt.tokens <= tight.max_prompt_tokens
    assert prompt.issue_tokens == 40 and 10 <= prompt.candidate_tokens < 30
    tighter = PromptBudget(max_prompt_tokens=roomy.tokens - 250, issue_tokens=40, candidate_tokens=30,
                           min_candidate_tokens=10)
    prompt = build_prompt(tok, issue, cands, tighter)
    assert prompt.tokens <= tighter.max_prompt_tokens
    assert prompt.candidate_tokens == 10 and 0 < prompt.issue_tokens < 40


def test_impossible_budget_is_a_clear_error():
    with pytest.raises(ValueError, match="smaller window"):
        build_prompt(WordsView(), "issue", ["a"] * 10, PromptBudget(max_prompt_tokens=20))


def test_truncate_tokens_never_exceeds_budget():
    tok = WordsView()
    assert truncate_tokens(tok, "a b c d", 10) == "a b c d"
    assert truncate_tokens(tok, "a b c d", 2) == "a b"
    assert truncate_tokens(tok, "a b c d", 0) == ""


def test_footer_repeats_only_the_opening_of_the_issue():
    tok = WordsView()
    issue = " ".join(f"w{i}" for i in range(100))
    prompt = build_prompt(tok, issue, ["def f(): pass"], PromptBudget(issue_tokens=50, footer_issue_tokens=5))
    header, footer = prompt.text.split("GitHub Issue: ")
    assert "w49" in header and "w50" not in header
    assert footer.startswith("w0 w1 w2 w3 w4.") and "w5" not in footer


# --------------------------------------------------------------------------- fusion with the first stage


def test_fusion_keeps_agreement_and_breaks_ties_toward_the_model():
    assert fuse_with_first_stage([0, 1, 2, 3]) == [0, 1, 2, 3]
    # llm [2, 0, 1]: position 0 has ranks (2, 1), position 2 has (1, 3), position 1 has (3, 2)
    assert fuse_with_first_stage([2, 0, 1]) == [0, 2, 1]
    # a full reversal ties the ends and the middles in pairs; the model's order breaks each tie
    assert fuse_with_first_stage([3, 2, 1, 0]) == [3, 0, 2, 1]
    # a small k weighs the top places more: the model's first choice, last in the first stage, comes second
    assert fuse_with_first_stage([4, 0, 1, 2, 3], k=1) == [0, 4, 1, 2, 3]
    assert fuse_with_first_stage([4, 0, 1, 2, 3], k=60) == [0, 1, 4, 2, 3]


def test_fusion_is_a_permutation_between_its_inputs():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 20)
        llm = list(range(n))
        rng.shuffle(llm)
        fused = fuse_with_first_stage(llm, k=rng.randint(1, 100))
        assert sorted(fused) == list(range(n))
        # whatever is first was in the top half of at least one of the two orders
        assert min(llm.index(fused[0]), fused[0]) <= (n - 1) // 2


def test_fusion_rejects_bad_input():
    assert apply_fusion("none", [1, 0]) == [1, 0]
    with pytest.raises(ValueError, match="permutation"):
        fuse_with_first_stage([0, 0, 1])
    with pytest.raises(ValueError, match="unknown fusion"):
        apply_fusion("borda", [0])
    with pytest.raises(ValueError, match="at least 1"):
        fuse_with_first_stage([0], k=0)


def test_an_adapter_trained_on_another_prompt_layout_is_refused(tmp_path):
    import json

    from indexer.errors import ModelLoadError
    from localizer.rerank.models import check_adapter_prompt_format
    from localizer.rerank.prompt import PROMPT_FORMAT

    check_adapter_prompt_format(str(tmp_path))  # an adapter from elsewhere: no training.json, trusted
    (tmp_path / "training.json").write_text(json.dumps({"prompt_format": PROMPT_FORMAT}))
    check_adapter_prompt_format(str(tmp_path))
    (tmp_path / "training.json").write_text(json.dumps({"base_model": "x"}))  # written before the record
    with pytest.raises(ModelLoadError, match=f"trained on prompt format 1, but this version builds format {PROMPT_FORMAT}"):
        check_adapter_prompt_format(str(tmp_path))
