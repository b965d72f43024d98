"""Reranker training side: teacher orders, targets, masking, shuffling, LoRA training, resume, eval.

Everything runs on tests/tiny_lm.py's randomly initialised tiny Qwen2, so these check the
plumbing (shapes, masks, determinism, files), not ranking quality.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from cornstack_train.reranker.data import (IGNORE_INDEX, answer_for, embedder_order, encode_example, first_stage_window,
                                         gold_anchored, instance_rng, positive_slot, shuffle_window)
from cornstack_train.data.splits import RepoSplit
from cornstack_train.reranker.teacher import TeacherConfig, target_order

from tests.cornstack_train import stage_rows  # noqa: E402
from tests.tiny_lm import one_thread, tiny_loaded, tiny_model, tiny_tokenizer

HELD = "held/out"
SPLIT = RepoSplit(heldout_repos=(HELD,))


def negatives_rows(per_repo: int = 6) -> list[dict]:
    """A tiny ``negatives`` stage (negatives stored unsorted)."""
    return stage_rows.negatives_rows(
        ("a/one", "b/two", HELD), per_repo,
        lambda repo, k: {"query": f"Return the value plus {k}.", "positive": f"def add_{k}(x):\n    return x + {k}",
                         "kind": "docstring" if k % 3 else "commit", "path": f"pkg/m{k}.py", "name": f"add_{k}",
                         "filter_score": 0.9, "filter_rank": 1 + k % 3},
        lambda k, j: 0.8 - 0.1 * (per_repo - 2 - j))


@pytest.fixture
def negatives_dir(tmp_path: Path) -> Path:
    from datasets import Dataset

    from cornstack_train.data.records import save_stage

    return save_stage(Dataset.from_list(negatives_rows()), tmp_path / "negatives", {"stage": "negatives"})


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    """The tiny model and tokenizer saved as a directory, loadable as ``--model DIR``."""
    tokenizer = tiny_tokenizer()
    out = tmp_path / "tiny-model"
    tiny_model(tokenizer).save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


# --------------------------------------------------------------------------- windows and teacher orders


def test_first_stage_window_puts_positive_at_its_seeded_slot_and_negatives_by_score():
    rows = negatives_rows()
    by_id = {r["id"]: r for r in rows}
    row = rows[2]
    w = first_stage_window(row, by_id, depth=4)
    assert w.positive_index == positive_slot(row["id"], 4) == 3 and len(w.candidates) == 4
    assert w.candidate_ids[3] == row["id"] and w.candidates[3].startswith("pkg/m2.py::add_2\n")
    assert w.scores == sorted(w.scores, reverse=True)  # the positive takes its upper neighbour's score
    negative_scores = [s for i, s in enumerate(w.scores) if i != 3]
    assert negative_scores == sorted(negative_scores, reverse=True) == sorted(row["negative_scores"], reverse=True)[:3]


def test_gold_anchored_puts_positive_first_then_embedder_order():
    rows = negatives_rows()
    w = first_stage_window(rows[2], {r["id"]: r for r in rows}, depth=5)
    order = target_order("gold-embedder", w, None)
    assert order[0] == w.positive_index
    rest = order[1:]
    assert [w.scores[i] for i in rest] == sorted((w.scores[i] for i in rest), reverse=True)
    assert gold_anchored([3, 0, 2, 1], 2) == [2, 3, 0, 1]
    assert embedder_order([0.1, 0.5, 0.5, 0.9]) == [3, 1, 2, 0]
    with pytest.raises(ValueError):
        gold_anchored([0, 0, 1], 1)


class ReverseScorer:
    """Deterministic stub for the window scorer: every window is ranked in reverse."""

    mode = "first-token"

    def rank(self, prompts):
        from localizer.rerank.scorers import WindowAnswer

        return [WindowAnswer(list(range(p.n))[::-1], "", 0.0) for p in prompts]


def stub_teacher(depth: int):
    from localizer.rerank import ListwiseReranker, RerankConfig

    from cornstack_train.reranker.teacher import LLMTeacher

    reranker = ListwiseReranker(RerankConfig(model="stub", window=depth, stride=depth // 2, depth=depth), loaded=tiny_loaded())
    reranker._scorer = ReverseScorer()  # the sliding windows, prompts and bookkeeping stay real
    return LLMTeacher(reranker, name="stub")


@pytest.mark.parametrize("mode", ["teacher", "gold-teacher"])
def test_teacher_llm_mode_writes_teacher_orders(tmp_path, negatives_dir, mode):
    from cornstack_train.data.records import load_stage
    from cornstack_train.reranker.teacher import teacher_rank

    with one_thread():
        stats = teacher_rank(str(negatives_dir), str(tmp_path / "inst"), TeacherConfig(mode=mode, depth=4, batch_size=3),
                             SPLIT, stub_teacher(4))
    data = load_stage(tmp_path / "inst", require=("target",)).to_list()
    assert stats["instances"] == len(data) == 12  # the held-out repository is left out
    assert {r["repo"] for r in data} == {"a/one", "b/two"} and {r["teacher"] for r in data} == {"stub"}
    assert {r["kind"] for r in data} == {"docstring", "commit"} and {r["teacher_mode"] for r in data} == {mode}
    for r in data:
        reverse = [3, 2, 1, 0]
        expected = reverse if mode == "teacher" else gold_anchored(reverse, r["positive_index"])
        assert r["target"] == expected


def test_teacher_modes_that_need_a_model_refuse_without_one(tmp_path, negatives_dir):
    from cornstack_train.reranker.teacher import teacher_rank

    with pytest.raises(ValueError, match="needs a teacher"):
        teacher_rank(str(negatives_dir), str(tmp_path / "x"), TeacherConfig(mode="teacher", depth=4), SPLIT, None)


# --------------------------------------------------------------------------- targets, masks, shuffling


def test_target_strings():
    assert answer_for([2, 0, 1], "full") == ("", "[3] > [1] > [2]")
    assert answer_for([9, 0, 1], "first-token") == ("[", "10]")
    with pytest.raises(ValueError):
        answer_for([0], "nope")


def test_prompt_tokens_are_masked_and_prompt_matches_inference():
    from localizer.rerank import PromptBudget, build_prompt

    from cornstack_train.reranker.training import TrainConfig, make_example

    tok = tiny_tokenizer()
    record = {"query": "Return the value plus 1.", "candidates": ["def a(): pass", "def b(): pass", "def c(): pass"],
              "target": [1, 0, 2], "positive_index": 1}
    budget = PromptBudget()
    for loss in ("first-token", "full"):
        ex = make_example(tok, record, budget, TrainConfig(loss=loss, seed=3), epoch=0, index=0)
        n_answer = sum(label != IGNORE_INDEX for label in ex.labels)
        assert n_answer > 0 and all(label == IGNORE_INDEX for label in ex.labels[: len(ex.labels) - n_answer])
        assert ex.labels[-n_answer:] == ex.input_ids[-n_answer:]
        # the unsupervised part is exactly the inference prompt (plus "[" in first-token mode)
        shown, _ = shuffle_window(record["candidates"], record["target"], instance_rng(3, 0, 0))
        prompt = build_prompt(tok, record["query"], shown, budget)
        context = prompt.text + ("[" if loss == "first-token" else "")
        assert ex.input_ids[: len(ex.labels) - n_answer] == tok.encode(context, add_special_tokens=False)
        answer = tok.decode(ex.input_ids[-n_answer:], skip_special_tokens=True)
        expected = f"{ex.positive_position + 1}]" if loss == "first-token" else None
        if expected:
            assert answer == expected
        else:
            assert answer.startswith(f"[{ex.positive_position + 1}] > ") and ex.input_ids[-1] == tok.eos_token_id
    ids, labels = encode_example(tok, "abc", "", eos=True)
    assert labels == [IGNORE_INDEX] * 3 + [tok.eos_token_id]


def test_shuffle_maps_target_and_varies_positive_position_deterministically():
    from localizer.rerank import PromptBudget

    from cornstack_train.reranker.training import TrainConfig, make_example

    cands = [f"c{i}" for i in range(10)]
    shown, target = shuffle_window(cands, [4, 0, 9], random.Random(1))
    assert sorted(shown) == sorted(cands) and [shown[t] for t in target] == ["c4", "c0", "c9"]

    tok = tiny_tokenizer()
    record = {"query": "q", "candidates": cands, "target": list(range(10)), "positive_index": 0}
    config = TrainConfig(seed=7)

    def positions(cfg):
        return [make_example(tok, record, PromptBudget(), cfg, epoch, i).positive_position
                for epoch in range(3) for i in range(6)]

    first = positions(config)
    assert len(set(first)) >= 4  # the positive moves around, across instances and epochs
    assert positions(config) == first  # same seed, same shuffles
    assert positions(replace(config, seed=8)) != first
    # --first-stage-share: that share of instances keeps the first-stage order (positive at 0 here); a share
    # of 0 changes no shuffle, and the choice is seeded per (epoch, instance)
    assert positions(replace(config, first_stage_share=0.0)) == first
    assert positions(replace(config, first_stage_share=1.0)) == [0] * 18
    half = positions(replace(config, first_stage_share=0.5))
    assert half == positions(replace(config, first_stage_share=0.5))
    assert 0 < sum(a != b for a, b in zip(half, first)) < 18  # some kept, some shuffled as before
    assert all(h in (0, f) for h, f in zip(half, first))
    with pytest.raises(ValueError, match="share"):
        TrainConfig(first_stage_share=1.5)


def test_stream_resumes_at_the_same_place():
    from cornstack_train.reranker.training import stream_indices

    full = [x for _, x in zip(range(17), stream_indices(5, seed=1))]
    resumed = [x for _, x in zip(range(10), stream_indices(5, seed=1, start=7))]
    assert resumed == full[7:]
    assert sorted(i for _, i in full[:5]) == list(range(5)) and full[:5] != full[5:10]


# --------------------------------------------------------------------------- training, adapter, resume


def records(n: int = 4, depth: int = 4) -> list[dict]:
    rows = negatives_rows()
    by_id = {r["id"]: r for r in rows}
    out = []
    for row in rows[:n]:
        w = first_stage_window(row, by_id, depth)
        out.append({"query": w.query, "candidates": w.candidates, "positive_index": w.positive_index,
                    "target": target_order("gold-embedder", w, None)})
    return out


def mean_loss(model, tok, recs, config):
    import torch

    from cornstack_train.reranker.training import answer_loss, collate, make_example

    budget = config.rerank_config().budget(4096)
    with torch.no_grad():
        losses = []
        for i, rec in enumerate(recs):
            ids, mask, labels = collate([make_example(tok, rec, budget, config, 0, i)], tok.pad_token_id)
            losses.append(float(answer_loss(model, ids, mask, labels)))
    return sum(losses) / len(losses)


TINY = dict(lora_r=4, lora_alpha=8, lora_dropout=0.0, lr=2e-2, warmup_steps=0, device="cpu", dtype="fp32",
            candidate_tokens=24, save_steps=100)


def test_training_lowers_loss_and_adapter_loads_through_rerank_config(tmp_path, tiny_dir):
    import torch

    from localizer.rerank import Candidate, ListwiseReranker, RerankConfig
    from localizer.rerank.models import load_reranker_model

    from cornstack_train.reranker.training import TrainConfig, train_reranker

    recs = records()
    # LoRA on every projection: the tiny model's small tied embeddings bound how far its logits can move
    # (ln 400 = 6.0 is where it starts; a couple of nats is all there is), so the drop asked for is absolute.
    config = TrainConfig(model=str(tiny_dir), loss="full", epochs=8, **TINY,
                         target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"))
    with one_thread():
        loaded = load_reranker_model(str(tiny_dir), device="cpu", dtype="fp32")
        before = mean_loss(loaded.model, loaded.tokenizer, recs, config)
        result = train_reranker(recs, tmp_path / "run", config, loaded=loaded,
                                data_info={"path": "x", "sha256": "abc123", "stats": {"instances": 4}})
        after = mean_loss(loaded.model, loaded.tokenizer, recs, config)
    assert result.steps == 32 and after < before - 0.3
    adapter = tmp_path / "run" / "adapter"
    card = (adapter / "README.md").read_text()
    assert "abc123" in card and '"loss": "full"' in card and "--reranker-adapter" in card
    assert (tmp_path / "run" / "train_stats.json").exists() and len((tmp_path / "run" / "train_log.jsonl").read_text().splitlines()) == 32

    with one_thread():
        base = load_reranker_model(str(tiny_dir), device="cpu", dtype="fp32")
        reranker = ListwiseReranker(RerankConfig(model=str(tiny_dir), adapter=str(adapter), device="cpu", dtype="fp32",
                                                 window=4, stride=2, depth=4))
        merged = reranker.loaded.model
        assert not torch.allclose(merged.model.layers[0].self_attn.q_proj.weight,
                                  base.model.model.layers[0].self_attn.q_proj.weight)
        # the merged model is the trained one: same loss as the trained peft model
        assert mean_loss(merged, reranker.loaded.tokenizer, recs, config) == pytest.approx(after, rel=1e-3)
        result = reranker.rerank("Return the value plus 1.", [Candidate(str(i), f"def f{i}(): pass") for i in range(4)])
    assert sorted(c.docid for c in result.candidates) == ["0", "1", "2", "3"]


def test_checkpoint_resume_continues_exactly(tmp_path):
    from cornstack_train.reranker.training import TrainConfig, latest_checkpoint, train_reranker

    recs = records()
    tok = tiny_tokenizer()

    def loaded():
        import torch

        from localizer.rerank.models import LoadedModel

        return LoadedModel(tiny_model(tok), tok, "tiny", 4096, "cpu", torch.float32)

    config = TrainConfig(loss="first-token", max_steps=6, **{**TINY, "save_steps": 2})
    with one_thread():
        straight = train_reranker(recs, tmp_path / "straight", config, loaded=loaded())

        def interrupt(entry):
            if entry["step"] == 5:  # after step 5, whose work is lost: the last checkpoint is step 4
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            train_reranker(recs, tmp_path / "resumed", config, loaded=loaded(), progress=interrupt)
        assert latest_checkpoint(tmp_path / "resumed").name == "step-0000004"
        resumed = train_reranker(recs, tmp_path / "resumed", config, loaded=loaded())
    assert [h["step"] for h in resumed.history] == [1, 2, 3, 4, 5, 6]
    log = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "train_log.jsonl").read_text().splitlines()]
    assert log == [1, 2, 3, 4, 5, 6]  # the lost step 5 is not logged twice
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in straight.history], rel=1e-4)
    assert len(list((tmp_path / "resumed" / "checkpoints").glob("step-*"))) == 2  # the latest two kept


# --------------------------------------------------------------------------- evaluation and CLI


def test_eval_table_on_a_tiny_set(tmp_path):
    from localizer.rerank import ListwiseReranker, RerankConfig

    from cornstack_train.reranker.evaluation import EvalConfig, evaluate, reranker_ranker

    rows = negatives_rows()
    systems = {"retriever": None, "reverse": lambda ws: [list(range(len(w.candidates)))[::-1] for w in ws]}
    with one_thread():
        systems["zero-shot"] = reranker_ranker(ListwiseReranker(RerankConfig(window=4, stride=2, depth=4),
                                                                loaded=tiny_loaded()))
        report = evaluate(rows, tmp_path / "eval", systems, SPLIT, EvalConfig(depth=4, max_queries=None, kinds=("docstring",)))
    res = report["results"]
    # held-out docstring rows: k = 1, 2, 4, 5, positives at their seeded slots 1, 0, 1, 1 of 4
    assert [positive_slot(f"held_out-{k}", 4) for k in (1, 2, 4, 5)] == [1, 0, 1, 1]
    assert res["retriever"]["queries"] == 4 and res["retriever"]["mrr@10"] == pytest.approx((3 / 2 + 1) / 4, abs=1e-4)
    assert res["reverse"]["mrr@10"] == pytest.approx((3 / 3 + 1 / 4) / 4, abs=1e-4)
    assert 0 < res["zero-shot"]["mrr@10"] <= 1 and report["repos"] == [HELD]
    table = (tmp_path / "eval" / "metrics.md").read_text()
    assert "| retriever | 0.6250 |" in table and "| zero-shot |" in table
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["results"] == res
    # a re-run reuses the stored ranks instead of calling the system again
    def fail(_):
        raise AssertionError("recomputed")
    again = evaluate(rows, tmp_path / "eval", {"reverse": fail}, SPLIT, EvalConfig(depth=4, max_queries=None))
    assert again["results"]["reverse"] == res["reverse"]


def test_cli_teacher_train_eval(tmp_path, negatives_dir, tiny_dir):
    from click.testing import CliRunner

    from cornstack_train.reranker.stages import eval_reranker_command, teacher_rank_command, train_reranker_command

    runner = CliRunner()
    inst = tmp_path / "inst"
    r = runner.invoke(teacher_rank_command, [str(negatives_dir), "--out", str(inst), "--depth", "4",
                                             "--heldout-repo", HELD])
    assert r.exit_code == 0, r.output
    run = tmp_path / "run"
    with one_thread():
        r = runner.invoke(train_reranker_command, [str(inst), "--out", str(run), "--model", str(tiny_dir),
                                                   "--max-steps", "2", "--lora-r", "2", "--candidate-tokens", "24",
                                                   "--device", "cpu", "--dtype", "fp32"])
        assert r.exit_code == 0, r.output
        assert (run / "adapter" / "adapter_config.json").exists()
        card = (run / "adapter" / "README.md").read_text()
        assert '"candidate_tokens": 24' in card and "instances: 12" in card
        r = runner.invoke(eval_reranker_command, [str(negatives_dir), "--out", str(tmp_path / "eval"), "--model",
                                                  str(tiny_dir), "--adapter", str(run / "adapter"), "--depth", "4",
                                                  "--window", "4", "--stride", "2", "--candidate-tokens", "24",
                                                  "--heldout-repo", HELD, "--device", "cpu", "--dtype", "fp32"])
        assert r.exit_code == 0, r.output
        assert "| retriever |" in r.output and "| zero-shot |" in r.output and "| trained |" in r.output
        # lists from a real search with the packaged MiniLM over the held-out codes
        r = runner.invoke(eval_reranker_command, [str(negatives_dir), "--out", str(tmp_path / "eval-retrieved"),
                                                  "--model", str(tiny_dir), "--retrieve-with", "base", "--no-zero-shot",
                                                  "--adapter", str(run / "adapter"), "--depth", "3", "--window", "3", "--stride", "2",
                                                  "--candidate-tokens", "24", "--heldout-repo", HELD, "--device", "cpu",
                                                  "--dtype", "fp32", "--fusion", "rrf"])
    assert r.exit_code == 0, r.output
    assert "retrieved: 4 queries, positive in the top 3 for" in r.output and "| trained |" in r.output
    assert "| trained+rrf |" in r.output
    report = json.loads((tmp_path / "eval-retrieved" / "metrics.json").read_text())
    assert report["systems"]["retriever"] == "top 3 of base over the held-out codes"
    r = runner.invoke(teacher_rank_command, [str(negatives_dir), "--out", str(tmp_path / "bad"), "--mode", "teacher",
                                             "--teacher", str(tmp_path / "missing")])
    assert r.exit_code != 0


def test_shuffled_eval_windows_keep_the_positive_and_vary_its_position():
    from cornstack_train.reranker.evaluation import EvalConfig, heldout_windows

    rows = negatives_rows(per_repo=10)
    plain = heldout_windows(rows, SPLIT, EvalConfig(depth=6, max_queries=None))
    mixed = heldout_windows(rows, SPLIT, EvalConfig(depth=6, max_queries=None, shuffle=True))
    assert [w.id for w in mixed] == [w.id for w in plain]
    for a, b in zip(plain, mixed):
        assert sorted(a.candidates) == sorted(b.candidates)
        assert b.candidates[b.positive_index] == a.candidates[a.positive_index]
    assert len({w.positive_index for w in mixed}) > len({w.positive_index for w in plain})
    assert mixed == heldout_windows(rows, SPLIT, EvalConfig(depth=6, max_queries=None, shuffle=True))


def _one_hot_encoders(miss: int):
    """Query k -> e_k (query ``miss`` -> e_{miss+2}); code k -> e_k + 0.5 e_{k+1}: query k's list is
    [code k, code k-1], and ``miss``'s list lacks its positive."""
    import re

    import numpy as np

    def vec(parts):
        v = np.zeros(8, dtype=np.float32)
        for i, w in parts:
            v[i % 8] += w
        return v / np.linalg.norm(v)

    def queries(texts):
        ks = [int(re.search(r"plus (\d+)", t).group(1)) for t in texts]
        return np.stack([vec([(k + 2 if k == miss else k, 1.0)]) for k in ks])

    def codes(texts):
        ks = [int(re.search(r"add_(\d+)", t).group(1)) for t in texts]
        return np.stack([vec([(k, 1.0), (k + 1, 0.5)]) for k in ks])

    return queries, codes


def test_retrieved_windows_search_all_heldout_codes_and_skip_lists_without_the_positive(tmp_path):
    from cornstack_train.reranker.evaluation import EvalConfig, evaluate, retrieved_windows

    rows = negatives_rows()
    encode_queries, encode_codes = _one_hot_encoders(miss=1)
    config = EvalConfig(depth=2, max_queries=None, kinds=("docstring",))
    windows = retrieved_windows(rows, SPLIT, config, encode_queries, encode_codes)
    by_k = {int(w.id.rsplit("-", 1)[1]): w for w in windows}
    assert sorted(by_k) == [1, 2, 4, 5]  # held-out docstring rows only
    assert all(r.startswith("held_out-") for w in windows for r in w.candidate_ids)
    # query 4's list: its own code, then code 3 (a commit row's: the pool holds every kind), titled as localize titles
    assert by_k[4].candidate_ids == ["held_out-4", "held_out-3"] and by_k[4].positive_index == 0
    assert by_k[4].candidates[1].startswith("pkg/m3.py::add_3\n") and by_k[4].scores[0] > by_k[4].scores[1]
    assert by_k[1].positive_index == -1 and by_k[1].candidate_ids == ["held_out-3", "held_out-2"]

    calls = []

    def reverse(ws):
        calls.extend(w.id for w in ws)
        return [list(range(len(w.candidates)))[::-1] for w in ws]

    report = evaluate(rows, tmp_path / "eval", {"retriever": None, "reverse": reverse}, SPLIT, config, windows=windows)
    assert "held_out-1" not in calls and len(calls) == 3  # a list without the positive costs no model call
    assert report["results"]["retriever"] == {"mrr@10": 0.75, "recall@1": 0.75, "mean_rank": 1.0, "queries": 4,
                                              "in_list": 3}
    assert report["results"]["reverse"]["mrr@10"] == pytest.approx(0.375)
    assert "| positive listed |" in (tmp_path / "eval" / "metrics.md").read_text()
    # another retriever's lists are ranked afresh, not read back from the first one's ranks
    other = [replace(w, candidate_ids=w.candidate_ids[::-1], candidates=w.candidates[::-1],
                     positive_index=(len(w.candidates) - 1 - w.positive_index) if w.positive_index >= 0 else -1)
             for w in windows]
    calls.clear()
    again = evaluate(rows, tmp_path / "eval", {"reverse": reverse}, SPLIT, config, windows=other)
    assert len(calls) == 3 and again["results"]["reverse"]["mrr@10"] == pytest.approx(0.75)


def test_fused_rows_come_from_stored_orders_without_model_calls(tmp_path):
    from cornstack_train.reranker.evaluation import EvalConfig, evaluate, fused_ranker, heldout_windows

    rows = negatives_rows()
    config = EvalConfig(depth=4, max_queries=None, kinds=("docstring",))
    windows = heldout_windows(rows, SPLIT, config)  # positives at index 1, 0, 1, 1 of 4

    def to_top(ws):  # the "model" puts the positive first and reverses the rest
        return [[w.positive_index] + [i for i in range(len(w.candidates))[::-1] if i != w.positive_index] for w in ws]

    out = tmp_path / "eval"
    with pytest.raises(ValueError, match="evaluate to-top first"):
        evaluate(rows, out, {"to-top+rrf": fused_ranker("to-top", out)}, SPLIT, config)
    report = evaluate(rows, out, {"to-top": to_top, "to-top+rrf": fused_ranker("to-top", out)}, SPLIT, config)
    res = report["results"]
    assert res["to-top"]["mrr@10"] == 1.0
    # positive at 1: (model rank, first-stage rank) of index 0 is (4, 1), second after the positive at (1, 2);
    # positive at 0: indexes 3 and 1 tie at (2, 4) and (4, 2), the model's rank breaks it, 2 at (3, 3) is last
    assert res["to-top+rrf"]["mrr@10"] == 1.0
    stored = [json.loads(line) for line in (out / "ranks" / "to-top+rrf.jsonl").read_text().splitlines()]
    expected = {1: [1, 0, 3, 2], 0: [0, 3, 1, 2]}
    assert [r["order"] for r in stored] == [expected[w.positive_index] for w in windows]


def _touch(path: str) -> None:
    Path(path).write_text("code ran")


class _Payload:
    """What a planted optimizer.pt can hold: an object whose unpickling calls a function."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_touch, (self.marker,))


def test_resume_refuses_a_checkpoint_that_holds_more_than_tensors(tmp_path):
    """Resuming used torch.load(weights_only=False) on optimizer.pt, which runs whatever it pickles (#26, case 9)."""
    import torch

    from cornstack_train.errors import TrainingError
    from cornstack_train.reranker.training import TrainConfig, latest_checkpoint, train_reranker
    from localizer.rerank.models import LoadedModel

    tok = tiny_tokenizer()
    config = TrainConfig(loss="first-token", max_steps=2, **{**TINY, "save_steps": 2})
    with one_thread():
        train_reranker(records(), tmp_path / "run", config,
                       loaded=LoadedModel(tiny_model(tok), tok, "tiny", 4096, "cpu", torch.float32))
    checkpoint = latest_checkpoint(tmp_path / "run")
    marker = tmp_path / "pwned"
    torch.save({"optimizer": _Payload(marker)}, checkpoint / "optimizer.pt")
    with one_thread(), pytest.raises(TrainingError, match="not a checkpoint this trainer wrote"):
        train_reranker(records(), tmp_path / "run", replace(config, max_steps=4),
                       loaded=LoadedModel(tiny_model(tok), tok, "tiny", 4096, "cpu", torch.float32))
    assert not marker.exists()
