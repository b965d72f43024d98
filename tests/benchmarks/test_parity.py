"""The harness measures what ``localize`` prints: the same rankings, item by item.

Both run :class:`localizer.pipeline.RankingPipeline`; this test keeps it that way. It ranks
the same issues at the same base commits once through ``localize-bench`` and once through
``localize --rev BASE --format json``, and compares the file and function rankings in full.
The repository has a root-level ``test_calc.py`` (like requests' ``test_requests.py``): the
product skips it, and so does the harness with its default ``--corpus product``.
"""

from __future__ import annotations

import json

import pytest

from benchmarks.swebench.gold import function_id
from benchmarks.swebench.run import Harness, HarnessConfig, parse_systems
from tests.benchmarks.test_harness import BASE_FILES, DIVIDE_ISSUE, MEAN_ISSUE, _patch_for
from tests.cli_helpers import run
from tests.conftest import commit_all, make_git_repo

DEPTH = 100  # the harness keeps the top 100 of each ranking


@pytest.fixture
def bench_with_root_test_file(tmp_path):
    repos = tmp_path / "repos"
    files = {**BASE_FILES, "test_calc.py": "from calc.ops import divide\n\n\ndef test_divide_by_zero():\n"
                                          "    assert divide(1, 0) == float('inf')\n"}
    repo = make_git_repo(repos / "acme__calc", files)

    def fix_divide(root):
        path = root / "calc/ops.py"
        path.write_text(path.read_text().replace("    return a / b", "    if b == 0:\n        return 0\n    return a / b"))

    base1, patch1 = _patch_for(repo, fix_divide)
    (repo / "calc/extra.py").write_text("def unrelated():\n    return 42\n")
    commit_all(repo, "second commit")
    base2, _ = _patch_for(repo, fix_divide)
    instances = [
        {"instance_id": "acme__calc-1", "repo": "acme/calc", "base_commit": base1, "problem_statement": DIVIDE_ISSUE,
         "patch": patch1},
        {"instance_id": "acme__calc-2", "repo": "acme/calc", "base_commit": base2, "problem_statement": MEAN_ISSUE,
         "patch": patch1},
    ]
    data = tmp_path / "lite.jsonl"
    data.write_text("".join(json.dumps(i) + "\n" for i in instances))
    return tmp_path, repos, data, instances


def _harness_rankings(tmp_path, repos, data, systems, model):
    out = tmp_path / "bench"
    config = HarnessConfig(data=str(data), repos_dir=repos, out=out, systems=parse_systems(systems, [model]),
                           index_dir=tmp_path / "bench-idx", clone=False)
    Harness(config).run()
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert not (out / "errors.jsonl").exists()
    return {(r["instance_id"], r["system"]): r for r in records}


def _cli_ranking(tmp_path, repo, instance, retriever, model):
    issue = tmp_path / f"{instance['instance_id']}.md"
    issue.write_text(instance["problem_statement"])
    result = run("--repo", repo, "--rev", instance["base_commit"], "--issue", issue, "--format", "json",
                 "--top-k", DEPTH, "--retriever", retriever, "--model", model, "--index-dir", tmp_path / "cli-idx",
                 "--quiet")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    return [f["path"] for f in payload["files"]], [function_id(f["path"], f["name"]) for f in payload["functions"]]


def _assert_same(by_key, tmp_path, repos, instances, retriever, model):
    for instance in instances:
        record = by_key[(instance["instance_id"], retriever)]
        files, functions = _cli_ranking(tmp_path, repos / "acme__calc", instance, retriever, model)
        assert files == record["files"]
        assert functions == record["functions"]
        assert "test_calc.py" not in files  # the product's corpus, in both


def test_harness_and_cli_rank_identically_with_bm25(bench_with_root_test_file):
    tmp_path, repos, data, instances = bench_with_root_test_file
    by_key = _harness_rankings(tmp_path, repos, data, ["bm25"], "unused")
    _assert_same(by_key, tmp_path, repos, instances, "bm25", "unused")
    assert by_key[("acme__calc-1", "bm25")]["functions"][0] == "calc/ops.py/divide"


def test_harness_and_cli_rank_identically_with_a_model(bench_with_root_test_file, minilm, monkeypatch):
    tmp_path, repos, data, instances = bench_with_root_test_file
    # one loaded model for both sides; each builds its own index with it
    monkeypatch.setattr("localizer.pipeline.Embedder", lambda config: minilm)
    monkeypatch.setattr("benchmarks.swebench.run.Embedder", lambda config: minilm)
    by_key = _harness_rankings(tmp_path, repos, data, ["dense", "hybrid"], "default")
    for retriever in ("dense", "hybrid"):
        _assert_same(by_key, tmp_path, repos, instances, retriever, "default")


def test_protocol_corpus_keeps_root_test_files(bench_with_root_test_file):
    tmp_path, repos, data, _ = bench_with_root_test_file
    out = tmp_path / "protocol"
    config = HarnessConfig(data=str(data), repos_dir=repos, out=out, systems=parse_systems(["bm25"], ["unused"]),
                           index_dir=tmp_path / "idx", clone=False, corpus="protocol")
    Harness(config).run()
    record = json.loads((out / "predictions.jsonl").read_text().splitlines()[0])
    assert "test_calc.py" in record["files"]  # the paper's corpus drops only test directories
    assert "tests/test_ops.py" not in record["files"]
