"""The static embedder's training side: distillation is deterministic, the CoRNStack stages train a
static table in seconds, and what training exports is what the runtime and `ship --static` read."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cornstack_train.embedder.static import (  # noqa: E402
    DistillConfig,
    count_tokens,
    pca,
    run_distill,
    sif_weights,
)
from cornstack_train.embedder.training import TrainConfig, train  # noqa: E402
from cornstack_train.data.splits import RepoSplit  # noqa: E402
from localizer.embedding.static import StaticModel, is_static_dir  # noqa: E402

from tests.train_fixtures import corpus_rows, tiny_model, write_stage  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("static")
    model = tiny_model(root / "model")
    stage = write_stage(root / "negatives", corpus_rows(96, negatives=4))
    distilled = root / "distilled"
    record = run_distill(DistillConfig(out=distilled, model=str(model), corpus=(stage,), dims=16, max_tokens=64))
    return {"root": root, "model": model, "stage": stage, "distilled": distilled, "record": record}


def test_pca_is_deterministic_and_sign_fixed():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(50, 8)).astype(np.float32)
    a, b = pca(table, 4), pca(table.copy(), 4)
    assert a.shape == (50, 4) and np.array_equal(a, b)
    # the largest-magnitude entry of every axis is positive, whatever sign the SVD returned
    assert (a[np.abs(a).argmax(axis=0), np.arange(4)] > 0).all()


def test_sif_weights_frequent_tokens_less():
    weights = sif_weights(Counter({1: 900, 2: 100}), vocab_size=4, coefficient=0.1)
    assert weights[0] == weights[3] == 1.0  # never seen
    assert weights[1] < weights[2] < 1.0
    assert weights[1] == pytest.approx(0.1 / (0.1 + 0.9))


def test_distilled_model_is_a_static_dir_with_deterministic_vectors(tiny, tmp_path):
    assert is_static_dir(tiny["distilled"])
    again = tmp_path / "again"
    run_distill(DistillConfig(out=again, model=str(tiny["model"]), corpus=(tiny["stage"],), dims=16, max_tokens=64))
    texts = ["parse the config number 3", "def parse_config_3(x): return parse(config, 3)"]
    first, second = StaticModel.load(tiny["distilled"]), StaticModel.load(again)
    assert np.array_equal(first.table, second.table)
    assert np.array_equal(first.encode(texts), second.encode(texts))
    assert first.dim == 16 and first.max_tokens == 64
    # [unused] placeholders never occur in text: their rows stay zero
    vocab = first.tokenizer.get_vocab()
    assert not first.table[vocab["[unused0]"]].any()
    assert tiny["record"]["corpus"] and json.loads((tiny["distilled"] / "distill.json").read_text())["dims"] == 16


def test_distill_refuses_to_overwrite_without_the_flag(tiny):
    from cornstack_train.data.records import StageError

    with pytest.raises(StageError, match="--overwrite"):
        run_distill(DistillConfig(out=tiny["distilled"], model=str(tiny["model"])))


def test_token_counts_follow_the_tokenizer():
    from cornstack_train.embedder.static import base_tokenizer
    from localizer.embedding.shipped import packaged_model_path

    tokenizer = base_tokenizer(packaged_model_path(), max_tokens=4)
    counts = count_tokens(tokenizer, ["parse parse parse parse parse parse"])
    assert sum(counts.values()) == 4  # cut at max_tokens, as the model reads it


def test_static_training_lowers_the_loss_in_seconds_and_exports_what_ships(tiny, tmp_path):
    out = tmp_path / "run"
    config = TrainConfig(data=tiny["stage"], out=out, model=str(tiny["distilled"]), negatives="softmax",
                         hard_negatives=2, batch_size=16, cached=False, max_steps=30, lr=0.2, warmup_ratio=0.0,
                         threads=1, device="cpu", logging_steps=1, save_steps=1000,
                         split=RepoSplit(heldout_fraction=0.0))
    stats = train(config)
    losses = [entry["loss"] for entry in stats["log"]]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
    assert stats["run"]["wall_seconds"] < 60
    static_dir = Path(stats["export"]["static_dir"])
    assert static_dir == out / "static" and is_static_dir(static_dir) and not (out / "model").exists()
    trained = StaticModel.load(static_dir)
    start = StaticModel.load(tiny["distilled"])
    assert not np.allclose(trained.table, start.table)
    assert trained.max_tokens == 64  # the token budget travels with the tokenizer
    card = (static_dir / "README.md").read_text()
    assert "static (Model2Vec-layout) embedder" in card and "softmax over the mined candidates" in card

    from cornstack_train.embedder.shipping import ship_static

    report = ship_static(out, tmp_path / "shipped")
    assert report.files == ("README.md", "config.json", "model.safetensors", "tokenizer.json", "train_stats.json")
    texts = ["load the user number 5"]
    assert np.array_equal(StaticModel.load(report.target).encode(texts), trained.encode(texts))
    from localizer.embedding.shipped import CompactError

    with pytest.raises(CompactError, match="over the"):
        ship_static(out, tmp_path / "too-big", max_bytes=1000)
