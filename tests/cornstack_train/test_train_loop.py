"""The `train` stage on a tiny model: data plumbing, learning, checkpoints/resume, export, CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cornstack_train.embedder.curriculum import Curriculum  # noqa: E402
from cornstack_train.data.records import StageError  # noqa: E402
from cornstack_train.data.splits import RepoSplit  # noqa: E402
from cornstack_train.embedder.training import (  # noqa: E402
    NegativeTransform,
    ProgressState,
    TrainConfig,
    build_pool,
    last_checkpoint,
    train,
)

from tests.train_fixtures import corpus_rows, tiny_model, write_stage  # noqa: E402

HOLDOUT = RepoSplit(heldout_repos=("org/repo3",))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    model = tiny_model(root / "model")
    stage = write_stage(root / "negatives", corpus_rows(64))
    mined = write_stage(root / "mined", corpus_rows(64, negatives=0))
    return {"root": root, "model": model, "stage": stage, "mined": mined}


def config(ws, out: str, **overrides) -> TrainConfig:
    values = dict(data=ws["stage"], out=ws["root"] / out, model=str(ws["model"]), batch_size=8, mini_batch_size=4,
                  hard_negatives=2, max_steps=4, save_steps=100, logging_steps=1, lr=2e-3, warmup_ratio=0.0,
                  threads=1, device="cpu", split=HOLDOUT, max_seq_length=48)
    values.update(overrides)
    return TrainConfig(**values)


def columns(rows):
    return {key: [row.get(key) for row in rows] for key in rows[0]}


def infonce(model, queries, positives, scale=20.0) -> float:
    q = model.encode(queries, normalize_embeddings=True, convert_to_numpy=True)
    d = model.encode(positives, normalize_embeddings=True, convert_to_numpy=True)
    logits = scale * q @ d.T
    logits -= logits.max(axis=1, keepdims=True)
    return float(-(np.diag(logits) - np.log(np.exp(logits).sum(axis=1))).mean())


def test_pool_excludes_heldout_repos_even_as_negatives():
    rows = corpus_rows(16, repos=4)
    pool = build_pool(columns(rows), HOLDOUT, need_negatives=True)
    assert len(pool) == 12 and pool.stats["repos_heldout"] == 1 and pool.stats["rows_heldout"] == 4
    assert all("number 3" not in q and "number 7" not in q for q in pool.queries)
    kept_ids = [r["id"] for r in rows if r["repo"] != "org/repo3"]
    for i, candidates in enumerate(pool.candidates):
        original = rows[[r["id"] for r in rows].index(kept_ids[i])]
        expected = [kept_ids.index(n) for n in original["negative_ids"] if n in kept_ids]
        assert candidates.tolist() == expected
    assert pool.stats["negatives_dropped_heldout_or_unknown"] > 0


def test_pool_without_negative_columns_only_for_none_or_random():
    rows = corpus_rows(16, negatives=0)
    with pytest.raises(StageError, match="negatives"):
        build_pool(columns(rows), HOLDOUT, need_negatives=True)
    assert len(build_pool(columns(rows), HOLDOUT, need_negatives=False)) == 12


def test_transform_materializes_negatives_at_the_current_temperature():
    rows = corpus_rows(16, negatives=3)
    for row in rows:  # the first candidate is by far the most similar
        row["negative_scores"] = [0.99, 0.1, 0.0]
    pool = build_pool(columns(rows), RepoSplit(heldout_fraction=0.0), need_negatives=True)
    cfg = TrainConfig(data=Path("x"), out=Path("y"), hard_negatives=1, negatives="softmax")
    state = ProgressState(Curriculum(100.0, 0.001, "exponential"), global_step=0, max_steps=10)
    transform = NegativeTransform(pool, cfg, state)
    batch = {"anchor": pool.queries[:4], "positive": pool.positives[:4], "row": [0, 1, 2, 3]}

    def hardest_share():
        hits = total = 0
        for call in range(60):
            transform.rank = call  # the random stream depends on (seed, rank, step, rows): vary it per call
            out = transform(batch)
            assert list(out) == ["anchor", "positive", "negative_1"]
            for row, negative in zip(batch["row"], out["negative_1"]):
                first = pool.positives[pool.candidates[row][0]]
                if first in batch["positive"]:
                    continue  # excluded: it is another row's positive in this batch
                hits += negative == first
                total += 1
        assert total > 100
        return hits / total

    early = hardest_share()  # τ = 100: near uniform over 3 candidates
    state.global_step = 10  # progress 1: τ = 0.001, always the hardest
    late = hardest_share()
    assert late == 1.0
    assert early < 0.6
    assert state.tau == pytest.approx(0.001)


def test_few_steps_lower_the_loss_and_export_loads(workspace):
    from sentence_transformers import SentenceTransformer

    rows = [r for r in corpus_rows(64) if r["repo"] != "org/repo3"][:16]
    queries, positives = [r["query"] for r in rows], [r["positive"] for r in rows]
    before = infonce(SentenceTransformer(str(workspace["model"]), device="cpu"), queries, positives)
    stats = train(config(workspace, "run-learn", max_steps=12, lr=5e-3, max_seq_length=32))
    exported = SentenceTransformer(stats["export"]["model_dir"], device="cpu")
    assert exported.max_seq_length == 48, "training truncation must not shrink what the shipped model reads"
    after = infonce(exported, queries, positives)
    assert after < before - 0.05, (before, after)
    losses = [entry["loss"] for entry in stats["log"]]
    taus = [entry["tau"] for entry in stats["log"]]
    assert len(losses) == 12 and all(a >= b for a, b in zip(taus, taus[1:])) and taus[-1] == pytest.approx(0.05)
    card = (Path(stats["export"]["model_dir"]) / "README.md").read_text()
    assert stats["export"]["weights_sha256"] in card and stats["data"]["data_sha256"] in card
    assert json.loads((workspace["root"] / "run-learn" / "train_stats.json").read_text())["run"]["global_step"] == 12
    assert "delta_dir" not in stats["export"]  # a tiny model is not the packaged MiniLM
    from cornstack_train.embedder.evaluation import resolve_trained

    assert resolve_trained(str(workspace["root"] / "run-learn")) == stats["export"]["model_dir"]


def test_checkpoint_and_resume(workspace):
    from safetensors.torch import load_file

    cfg = config(workspace, "run-resume", max_steps=4, save_steps=2, negatives="softmax")
    full = train(cfg)
    checkpoints = workspace["root"] / "run-resume" / "checkpoints"
    assert last_checkpoint(checkpoints).name == "checkpoint-4"
    reference = load_file(str(workspace["root"] / "run-resume" / "model" / "model.safetensors"))
    # simulate a run killed after step 2: drop the later checkpoint and the export
    import shutil

    shutil.rmtree(checkpoints / "checkpoint-4")
    shutil.rmtree(workspace["root"] / "run-resume" / "model")
    resumed = train(TrainConfig(**{**cfg.__dict__, "resume": True}))
    assert resumed["run"]["resumed_from"].endswith("checkpoint-2")
    assert resumed["run"]["global_step"] == 4
    assert len(resumed["run"]["step_seconds"]) == 2  # only steps 3 and 4 ran
    # the optimizer, LR schedule and step counter continue where checkpoint-2 left them
    lr_full = {entry["step"]: entry["learning_rate"] for entry in full["log"]}
    lr_resumed = {entry["step"]: entry["learning_rate"] for entry in resumed["log"]}
    assert set(lr_resumed) == {1, 2, 3, 4} and all(lr_resumed[s] == pytest.approx(lr_full[s]) for s in (3, 4))
    at_two = load_file(str(checkpoints / "checkpoint-2" / "model.safetensors"))
    weights = load_file(str(workspace["root"] / "run-resume" / "model" / "model.safetensors"))
    assert any(not np.array_equal(at_two[k].numpy(), weights[k].numpy()) for k in at_two)
    # same batches, same negatives (keyed by the batch's position in the run), same RNG state:
    # the resumed run ends where the uninterrupted one did
    for key, value in reference.items():
        assert np.allclose(value.numpy(), weights[key].numpy(), atol=1e-5), key


def test_random_negatives_train_on_mined_data_without_negative_columns(workspace):
    stats = train(config(workspace, "run-random", data=workspace["mined"], negatives="random", max_steps=2,
                         export=False))
    assert stats["run"]["global_step"] == 2 and not stats["data"]["has_negative_columns"]
    with pytest.raises(StageError):
        train(config(workspace, "run-random2", data=workspace["mined"], negatives="softmax", max_steps=2))


def test_lora_trains_and_exports_merged_weights(workspace):
    pytest.importorskip("peft")
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer

    stats = train(config(workspace, "run-lora", lora=True, lora_rank=4, max_steps=2, lr=1e-2))
    assert stats["model"]["trainable"] < stats["model"]["parameters"] // 4
    weights = load_file(str(Path(stats["export"]["model_dir"]) / "model.safetensors"))
    assert not any("lora" in key for key in weights)
    base = load_file(str(workspace["model"] / "model.safetensors"))
    changed = [k for k in base if not np.array_equal(base[k].numpy(), weights[k].numpy())]
    assert changed and all(("query" in k or "key" in k or "value" in k or "dense" in k) for k in changed)
    SentenceTransformer(stats["export"]["model_dir"], device="cpu").encode(["def f(): pass"])


def test_existing_output_is_not_overwritten_silently(workspace):
    cfg = config(workspace, "run-learn", max_steps=1)
    with pytest.raises(StageError, match="already exists"):
        train(cfg)


def test_cli_train_and_help(workspace):
    from click.testing import CliRunner

    from cornstack_train.embedder.stages import train_command

    runner = CliRunner()
    result = runner.invoke(train_command, ["--help"])
    assert result.exit_code == 0 and "--tau-start" in result.output and "--no-curriculum" in result.output
    out = workspace["root"] / "run-cli"
    args = [str(workspace["stage"]), "--out", str(out), "--model", str(workspace["model"]),
            "--batch-size", "8", "--mini-batch-size", "4", "--max-steps", "2", "--hard-negatives", "1",
            "--no-curriculum", "--tau-start", "0.5", "--negatives", "top", "--heldout-repo", "org/repo3",
            "--threads", "1", "--device", "cpu", "--max-seq-length", "48", "--no-export"]
    result = runner.invoke(train_command, args)
    assert result.exit_code == 0, result.output
    stats = json.loads((out / "train_stats.json").read_text())
    assert stats["config"]["schedule"] == "constant" and stats["config"]["negatives"] == "top"
    assert {entry["tau"] for entry in stats["log"]} == {0.5}
    assert not (out / "model").exists()
    result = runner.invoke(train_command, [str(workspace["mined"])] + args[1:-1] + ["--negatives", "softmax"])
    assert result.exit_code == 1 and "negative_ids" in result.output


def test_step_bench_settings():
    import click

    from cornstack_train.embedder.step_bench import parse_setting

    assert parse_setting("b32-k3") == {"batch_size": 32, "hard_negatives": 3}
    assert parse_setting("b64-k7-nocache-bf16-t1-mb8-l128") == {
        "batch_size": 64, "hard_negatives": 7, "cached": False, "bf16": True, "threads": 1, "mini_batch_size": 8,
        "max_seq_length": 128}
    with pytest.raises(click.BadParameter):
        parse_setting("batch32")


def test_loss_options_only_name_what_differs_from_plain_infonce():
    from cornstack_train.embedder.training import loss_options

    plain = TrainConfig(data=Path("x"), out=Path("y"))
    assert loss_options(plain) == {}
    symmetric = TrainConfig(data=Path("x"), out=Path("y"), directions=("query_to_doc", "doc_to_query"),
                            hardness_mode="in_batch_negatives", hardness_strength=9.0)
    assert loss_options(symmetric) == {"directions": ("query_to_doc", "doc_to_query"),
                                       "hardness_mode": "in_batch_negatives", "hardness_strength": 9.0}
    # a mode with no strength is plain InfoNCE: nothing to pass
    assert loss_options(TrainConfig(data=Path("x"), out=Path("y"), hardness_mode="hard_negatives")) == {}
    with pytest.raises(ValueError, match="query_to_doc"):
        TrainConfig(data=Path("x"), out=Path("y"), directions=("doc_to_query",))
    with pytest.raises(ValueError, match="sideways"):
        TrainConfig(data=Path("x"), out=Path("y"), directions=("query_to_doc", "sideways"))
    with pytest.raises(ValueError, match="hardness-mode"):
        TrainConfig(data=Path("x"), out=Path("y"), hardness_mode="hardest")


def test_extra_loss_directions_reach_the_loss(workspace):
    """A joint softmax over query→doc and doc→query has a larger denominator than query→doc alone, so on the
    same model and batch the symmetric loss must be strictly larger: the flag is not silently dropped."""
    import torch
    from sentence_transformers import SentenceTransformer

    from cornstack_train.embedder.training import make_loss

    model = SentenceTransformer(str(workspace["model"]), device="cpu")
    rows = corpus_rows(8, negatives=0)
    features = [model.tokenize([r[key] for r in rows]) for key in ("query", "positive")]

    def value(**overrides) -> float:
        loss = make_loss(model, TrainConfig(data=Path("x"), out=Path("y"), cached=False, **overrides), False)
        with torch.no_grad():
            return float(loss(features, None))

    plain, symmetric = value(), value(directions=("query_to_doc", "doc_to_query"))
    weighted = value(hardness_mode="in_batch_negatives", hardness_strength=9.0)
    assert symmetric > plain + 1e-4 and weighted > plain + 1e-4, (plain, symmetric, weighted)


def test_cli_symmetric_loss_trains(workspace):
    from click.testing import CliRunner

    from cornstack_train.embedder.stages import train_command

    out = workspace["root"] / "run-symmetric"
    args = [str(workspace["stage"]), "--out", str(out), "--model", str(workspace["model"]),
            "--batch-size", "8", "--max-steps", "2", "--hard-negatives", "1", "--no-cache",
            "--loss-direction", "query_to_doc", "--loss-direction", "doc_to_query",
            "--heldout-repo", "org/repo3", "--threads", "1", "--device", "cpu", "--max-seq-length", "48",
            "--no-export"]
    result = CliRunner().invoke(train_command, args)
    assert result.exit_code == 0, result.output
    stats = json.loads((out / "train_stats.json").read_text())
    assert stats["config"]["directions"] == ["query_to_doc", "doc_to_query"] and stats["run"]["global_step"] == 2
    bad = CliRunner().invoke(train_command, args[:12] + ["--loss-direction", "doc_to_query"] + args[16:])
    assert bad.exit_code == 1 and "must include query_to_doc" in bad.output, bad.output
