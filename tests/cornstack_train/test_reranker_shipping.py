"""``ship-reranker``: what may be installed as the package's reranker, and how it gets there.

An adapter in localizer/models/reranker turns reranking on for every user, so these check the
refusals (size, base model, budgets, data, corpus, evaluations) and that an install, or a failed
one, never leaves half an adapter. Every install goes to a temp ``--target``, never the package.
The adapter is a real peft LoRA over tests/tiny_lm.py's tiny Qwen2, labelled as trained on the
packaged base (what train-reranker's training.json records), with hand-written stage records.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from localizer.rerank.models import DEFAULT_RERANKER, PACKAGED
from localizer.rerank.prompt import PROMPT_FORMAT

from cornstack_train.data.records import sha256_tree
from cornstack_train.reranker.shipping import REPRODUCE, ShipError, find_mined, ship_reranker
from cornstack_train.reranker.training import TrainConfig

from tests.tiny_lm import tiny_model, tiny_tokenizer

peft = pytest.importorskip("peft")

SHA = PACKAGED[DEFAULT_RERANKER].sha256
CACHED_BASE = f"/root/.cache/localizer/models/{DEFAULT_RERANKER}-{SHA[:12]}-v3"  # what the trainer's config says
HEADS = {"a/one": "1" * 40, "b/two": "2" * 40}


def write_json(path: Path, value) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2))
    return path


def make_stage(path: Path, stats: dict) -> Path:
    write_json(path / "stats.json", stats)
    (path / "data").mkdir(parents=True, exist_ok=True)
    (path / "data" / "part-0.arrow").write_bytes(json.dumps(stats).encode() * 3)
    return path


def make_mined(root: Path, **changes) -> Path:
    """A licence-gated `mine` stage of two pinned repositories, and the docs list that pins them."""
    listing = write_json(root / "docs" / "history-repos.json",
                         [{"repo": repo, "head": head, "language": "python", "license": "MIT"}
                          for repo, head in HEADS.items()])
    licenses = {"a/one": "MIT", "b/two": "BSD-3-Clause"}
    stats = {"stage": "mine", "pairs": 40, "pairs_by_kind": {"docstring": 30, "commit": 10},
             "config": {"repos_lists": [str(listing)], "sources": [], "sources_dir": None},
             "benchmark_repos": ["psf/requests", "django/django"], "denied_repos": {"psf/requests-fork": "fork"},
             "licence_refused": {"c/three": "GPL-3.0 at the pin"}, "licenses": licenses,
             "sources": {repo: {"license": {"spdx": licenses[repo], "file": "LICENSE", "commit": head, "reason": "ok"},
                                "docstring_pairs": 15, "commit_pairs": 5} for repo, head in HEADS.items()}}
    stats.update(changes)
    return make_stage(root / "mined", stats)


def make_repo_windows(root: Path, **changes) -> Path:
    """A repo-windows stage over one more pinned repository, with the overlap check, and the docs list pinning it."""
    listing = write_json(root / "docs" / "train-repos.json",
                         [{"repo": "d/four", "head": "4" * 40, "language": "python", "license": "Apache-2.0"}])
    stats = {"stage": "repo-windows", "instances": 6, "by_kind": {"commit-repo": 6}, "repos": 1,
             "teacher": "pipeline", "config": {"mode": "gold-pipeline", "depth": 20, "repos_lists": [str(listing)]},
             "benchmark_repos": ["psf/requests"], "dropped_benchmark_overlap": 2,
             "per_repo": {"d/four": {"repo": "d/four", "head": "4" * 40, "license": "Apache-2.0"}}}
    stats.update(changes)
    return make_stage(root / "repo-windows", stats)


def make_run(root: Path, seed: int = 0, base: str = DEFAULT_RERANKER, declared: str = CACHED_BASE,
             extra: list[Path] = (), prompt_format: int = PROMPT_FORMAT, **config_changes) -> Path:
    """A train-reranker output: adapter/ (peft LoRA, training.json), train_stats.json, and its data stages."""
    mined = root / "mined"
    negatives = make_stage(root / "negatives", {"stage": "negatives", "input": str(mined)})
    teacher = make_stage(root / "teacher", {"stage": "teacher-rank", "input": str(negatives), "instances": 12,
                                            "by_kind": {"docstring": 8, "commit": 4}, "repos": 2,
                                            "teacher": "embedder", "config": {"mode": "gold-embedder", "depth": 10},
                                            "split": {"heldout_repos": ["held/out"]}})
    run = root / f"run-{seed}"
    adapter = run / "adapter"
    model = peft.get_peft_model(tiny_model(tiny_tokenizer(), seed=seed),
                                peft.LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                                init_lora_weights=False))
    model.save_pretrained(str(adapter))
    config_path = adapter / "adapter_config.json"
    write_json(config_path, {**json.loads(config_path.read_text()), "base_model_name_or_path": declared})
    config = {**asdict(TrainConfig(lora_r=2, lora_alpha=4, lr=2e-4, warmup_steps=20, grad_accum=2, max_steps=30,
                                   dtype="bf16")), **config_changes}
    write_json(adapter / "training.json", {"base_model": base, "prompt_format": prompt_format, "config": config,
                                           "steps": 30,
                                           "data": {"path": str(teacher), "sha256": sha256_tree(teacher),
                                                    "stats": json.loads((teacher / "stats.json").read_text()),
                                                    "extra_stages": [
                                                        {"path": str(e), "sha256": sha256_tree(e),
                                                         "stats": json.loads((e / "stats.json").read_text())}
                                                        for e in extra]}})
    (adapter / "README.md").write_text("# the training card\n")
    write_json(run / "train_stats.json", {"steps": 30, "planned_steps": 30, "stopped": "done", "loss_first": 1.2,
                                          "loss_last": 0.4, "seconds": 240.0})
    return run


def make_eval(root: Path, name: str, adapter: Path, shuffle: bool) -> Path:
    results = {"retriever": {"mrr@10": 0.25 if shuffle else 0.48, "recall@1": 0.05, "mean_rank": 5.1, "queries": 20,
                             "in_list": 20},
               "trained": {"mrr@10": 0.4944 if shuffle else 0.5517, "recall@1": 0.4, "mean_rank": 2.0, "queries": 20,
                           "in_list": 20}}
    systems = {"retriever": "top 10 of localizer/models/cornstack over the held-out codes",
               "trained": f"packaged + adapter {adapter}, first-token"}
    return write_json(root / name / "metrics.json", {"results": results, "systems": systems, "repos": ["held/out"],
                                                     "config": {"shuffle": shuffle}}).parent


@pytest.fixture
def work(tmp_path: Path) -> Path:
    make_mined(tmp_path)
    return tmp_path


def leftovers(target: Path) -> list[str]:
    """Temp or trash directories an install left beside its target."""
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}."))


def test_install_writes_the_adapter_and_a_card_naming_base_steps_data_and_corpus(work):
    import torch

    from localizer.rerank.models import apply_adapter

    run = make_run(work)
    evals = [make_eval(work, "eval", run / "adapter", False), make_eval(work, "eval-shuffled", run / "adapter", True)]
    target = work / "package" / "reranker"
    report = ship_reranker(run, evals, target=target)  # the mined stage is found through the stages' inputs

    assert report.target == target and leftovers(target) == []
    assert set(report.files) == {"README.md", "card.json", "adapter_config.json", "adapter_model.safetensors",
                                 "training.json"}
    card = (target / "README.md").read_text()
    data_sha = sha256_tree(work / "teacher")
    for expected in (DEFAULT_RERANKER, SHA, "steps: 30 of 30 planned (done)", data_sha, "re-hashed at install",
                     "2 repositories", "MIT 1", "BSD-3-Clause 1", "history-repos.json", f"`{HEADS['a/one']}`",
                     "against 2 of them", "(c/three)", "issue 192 tokens, candidate 64 (min 24)", "r=2, alpha=4",
                     "| trained (this adapter) | 0.5517 |", "| trained (this adapter) | 0.4944 |",
                     "shuffled order (`--shuffle`)",
                     "MRR@10 of this adapter trained 0.4944, of the lists as shown 0.2500",
                     "deny-list): 1", "psf/requests, django/django", REPRODUCE):
        assert expected in card, expected
    assert "not recorded" not in card and "the training card" not in card
    meta = json.loads((target / "card.json").read_text())
    assert meta["base_model"]["gguf_sha256"] == SHA and meta["training"]["steps"] == 30
    assert meta["data"]["sha256"] == data_sha and meta["data"]["verified"] is True
    assert meta["corpus"]["repositories"] == 2 and meta["corpus"]["licenses"] == {"MIT": 1, "BSD-3-Clause": 1}
    assert [h["shuffled"] for h in meta["heldout"]] == [False, True] and meta["reproduce"] == REPRODUCE
    assert meta["adapter"]["files"]["adapter_model.safetensors"] == report.adapter_sha256
    installed = json.loads((target / "adapter_config.json").read_text())
    assert installed["base_model_name_or_path"] == DEFAULT_RERANKER  # no trainer's cache path in the package
    shipped = (target / "adapter_model.safetensors").read_bytes()
    assert shipped == (run / "adapter" / "adapter_model.safetensors").read_bytes()
    assert oct(target.stat().st_mode & 0o777) == "0o755"

    # what is installed is a working adapter: it merges into the model it was made for and changes it
    tokenizer = tiny_tokenizer()
    plain, merged = tiny_model(tokenizer), apply_adapter(tiny_model(tokenizer), str(target))
    ids = torch.tensor([tokenizer.encode("def f(x): return x")])
    with torch.no_grad():
        assert not torch.allclose(merged(input_ids=ids).logits, plain(input_ids=ids).logits, atol=1e-4)


def test_without_a_shuffled_eval_the_card_says_the_check_is_missing(work):
    run = make_run(work)
    target = work / "reranker"
    ship_reranker(run, [], mined=work / "mined", target=target)
    card = (target / "README.md").read_text()
    assert "No held-out evaluation was given" in card and "Shuffled-order check: **not recorded**" in card


def test_an_adapter_over_the_size_cap_is_refused_and_nothing_is_left(work):
    run = make_run(work)
    target = work / "package" / "reranker"
    target.parent.mkdir()
    with pytest.raises(ShipError, match=r"over the 0\.001 MB the package may ship"):
        ship_reranker(run, target=target, max_mb=0.001)
    assert not target.exists() and list(target.parent.iterdir()) == []


@pytest.mark.parametrize("base, declared, message", [
    ("qwen2.5-coder-1.5b-instruct", CACHED_BASE, "trained on 'qwen2.5-coder-1.5b-instruct', not the packaged default"),
    ("tiny", CACHED_BASE, "trained on 'tiny'"),
    (DEFAULT_RERANKER, "/cache/qwen2.5-coder-1.5b-instruct-cc324af070c2-v3", "names base model"),
    (DEFAULT_RERANKER, f"/cache/{DEFAULT_RERANKER}-000000000000-v3", "names base model"),  # another GGUF
])
def test_an_adapter_for_another_base_model_is_refused(work, base, declared, message):
    run = make_run(work, base=base, declared=declared)
    target = work / "reranker"
    with pytest.raises(ShipError, match=message):
        ship_reranker(run, target=target)
    assert not target.exists() and leftovers(target) == []


def test_reinstalling_replaces_the_adapter_atomically(work, monkeypatch):
    import cornstack_train.reranker.shipping as shipping

    first, second = make_run(work, seed=0), make_run(work, seed=1)
    target = work / "reranker"
    ship_reranker(first, target=target)
    (target / "stray.txt").write_text("from a hand edit")
    report = ship_reranker(second, target=target)
    weights = (target / "adapter_model.safetensors").read_bytes()
    assert weights == (second / "adapter" / "adapter_model.safetensors").read_bytes()
    assert weights != (first / "adapter" / "adapter_model.safetensors").read_bytes()
    assert "stray.txt" not in report.files and leftovers(target) == []

    # an install that fails half-way (after the weights were copied) leaves the previous one whole
    def broken_card(*args):
        raise OSError("disk full")

    monkeypatch.setattr(shipping, "render_card", broken_card)
    with pytest.raises(OSError, match="disk full"):
        ship_reranker(first, target=target)
    assert (target / "adapter_model.safetensors").read_bytes() == weights
    assert sorted(p.name for p in target.iterdir()) == sorted(report.files) and leftovers(target) == []


@pytest.mark.parametrize("changes, message", [
    ({"licenses": {"a/one": "MIT", "b/two": "GPL-3.0-only"},
      "sources": {"a/one": {"license": {"spdx": "MIT", "commit": HEADS["a/one"]}},
                  "b/two": {"license": {"spdx": "GPL-3.0-only", "commit": HEADS["b/two"]}}}},
     "b/two is not permissively licensed"),
    ({"sources": {"a/one": {"license": {"spdx": "MIT", "commit": "9" * 40}}}}, "docs lists pin it at 111111111111"),
    ({"sources": {"z/new": {"license": {"spdx": "MIT", "commit": "9" * 40}}}}, "docs lists do not list it"),
    ({"sources": {"a/one": {}}}, "no licence recorded"),
    ({"benchmark_repos": []}, "without the benchmark content-overlap check"),
    ({"config": {"repos_lists": [], "sources_dir": "/src"}}, "no licence gate judged"),
])
def test_a_corpus_that_may_not_ship_is_refused(tmp_path, changes, message):
    make_mined(tmp_path, **changes)
    run = make_run(tmp_path)
    with pytest.raises(ShipError, match=message):
        ship_reranker(run, target=tmp_path / "reranker")
    assert not (tmp_path / "reranker").exists()


def test_budgets_other_than_inference_and_changed_data_are_refused(work):
    with pytest.raises(ShipError, match="candidate_tokens 48 \\(inference: 64\\)"):
        ship_reranker(make_run(work, candidate_tokens=48), target=work / "reranker")
    with pytest.raises(ShipError, match="trained on prompt format 1; inference builds format 2"):
        ship_reranker(make_run(work, prompt_format=1), target=work / "reranker")
    run = make_run(work)
    (work / "teacher" / "data" / "part-0.arrow").write_bytes(b"rewritten by teacher-rank --overwrite")
    with pytest.raises(ShipError, match="has changed since training"):
        ship_reranker(run, target=work / "reranker")
    assert not (work / "reranker").exists()


def test_an_eval_of_other_weights_and_an_unfound_corpus_are_refused(work):
    run, other = make_run(work, seed=0), make_run(work, seed=1)
    with pytest.raises(ShipError, match="scored no adapter with these weights"):
        ship_reranker(run, [make_eval(work, "eval-other", other / "adapter", False)], target=work / "reranker")
    assert find_mined(work / "teacher") == work / "mined"
    (work / "negatives" / "stats.json").write_text(json.dumps({"stage": "negatives"}))  # no recorded input
    with pytest.raises(ShipError, match="pass --mined DIR"):
        ship_reranker(run, target=work / "reranker")
    assert not (work / "reranker").exists()


def test_cli_installs_and_refuses_in_one_line(work):
    from click.testing import CliRunner

    from cornstack_train.reranker.stages import ship_reranker_command

    run = make_run(work)
    target = work / "reranker"
    runner = CliRunner()
    r = runner.invoke(ship_reranker_command, [str(run), "--mined", str(work / "mined"), "--target", str(target),
                                              "--eval", str(make_eval(work, "eval", run / "adapter", True))])
    assert r.exit_code == 0, r.output
    assert "installed" in r.output and (target / "adapter_config.json").is_file()
    r = runner.invoke(ship_reranker_command, [str(run), "--target", str(work / "other"), "--max-mb", "0.001"])
    assert r.exit_code == 1 and r.output.count("\n") == 1
    assert r.output.startswith("cornstack-train: error: ") and "over the 0.001 MB" in r.output


def test_a_repo_windows_extra_stage_is_checked_and_described(work):
    run = make_run(work, extra=[make_repo_windows(work)])
    target = work / "reranker"
    ship_reranker(run, target=target)
    card = (target / "README.md").read_text()
    for expected in ("also trained on the `repo-windows` stage", "6 instances", "Apache-2.0 1", "train-repos.json",
                     "content-overlap check against psf/requests: 2 windows dropped", f"d/four@{'4' * 12} (Apache-2.0)"):
        assert expected in card, expected
    meta = json.loads((target / "card.json").read_text())
    assert meta["data"]["extra_stages"][0]["corpus"]["repos"] == [
        {"repo": "d/four", "head": "4" * 40, "license": "Apache-2.0"}]


@pytest.mark.parametrize("changes, message", [
    ({"benchmark_repos": []}, "without the benchmark content-overlap check"),
    ({"per_repo": {"d/four": {"head": "4" * 40, "license": "GPL-3.0-only"}}}, "d/four .* not permissively licensed"),
    ({"per_repo": {"d/four": {"head": "4" * 40}}}, "no licence recorded"),
    ({"per_repo": {"d/four": {"head": "5" * 40, "license": "MIT"}}}, "docs lists pin it at 444444444444"),
    ({"config": {"mode": "gold-pipeline"}}, "records no docs/ repository lists"),
])
def test_a_repo_windows_stage_that_may_not_ship_is_refused(work, changes, message):
    run = make_run(work, extra=[make_repo_windows(work, **changes)])
    with pytest.raises(ShipError, match=message):
        ship_reranker(run, target=work / "reranker")
    assert not (work / "reranker").exists()


def test_an_extra_stage_from_another_corpus_is_refused(work):
    other = make_stage(work / "other-teacher", {"stage": "teacher-rank", "input": str(work / "elsewhere")})
    with pytest.raises(ShipError, match="does not descend from the mined corpus"):
        ship_reranker(make_run(work, extra=[other]), target=work / "reranker")
    same = make_stage(work / "more-teacher", {"stage": "teacher-rank", "input": str(work / "negatives"),
                                              "instances": 3, "config": {"mode": "gold-embedder"}})
    ship_reranker(make_run(work, extra=[same]), target=work / "reranker")
    assert "also trained on the `teacher-rank` stage" in (work / "reranker" / "README.md").read_text()
