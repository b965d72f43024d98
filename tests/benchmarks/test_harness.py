"""The SWE-bench harness end to end on a tiny repository with a known patch (no real repos needed)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from benchmarks.swebench.data import ensure_repos, load_instances
from benchmarks.swebench.report import accuracy
from benchmarks.swebench.run import Harness, HarnessConfig, main, parse_systems, split_by_repo
from indexer.errors import LocalizerError
from localizer.embedding.shipped import SHIPPED_MODEL

from tests.conftest import commit_all, git, make_git_repo

BASE_FILES = {
    "calc/__init__.py": "",
    "calc/ops.py": '''"""Arithmetic operations."""


def add(a, b):
    return a + b


def divide(a, b):
    """Divide a by b."""
    return a / b


class Stats:
    def mean(self, values):
        return sum(values) / len(values)

    def spread(self, values):
        return max(values) - min(values)
''',
    "calc/parse.py": '''def parse_number(text):
    """Parse an integer from text."""
    return int(text)
''',
    "tests/test_ops.py": "def test_divide():\n    assert True\n",
}
DIVIDE_ISSUE = "divide raises ZeroDivisionError\n\n`divide(1, 0)` crashes with ZeroDivisionError instead of returning inf."
MEAN_ISSUE = "Stats.mean fails on an empty list of values\n\nmean([]) raises ZeroDivisionError; it should return 0."


def _patch_for(repo: Path, edit) -> tuple[str, str]:
    """Apply ``edit`` to a fresh commit, return (base commit, patch), and reset to base."""
    base = git(repo, "rev-parse", "HEAD").strip()
    edit(repo)
    patch = git(repo, "diff")
    git(repo, "checkout", "-q", "--", ".")
    return base, patch


@pytest.fixture
def toy_bench(tmp_path):
    repos = tmp_path / "repos"
    repo = make_git_repo(repos / "acme__calc", BASE_FILES)

    def fix_divide(root):
        path = root / "calc/ops.py"
        path.write_text(path.read_text().replace("    return a / b", "    if b == 0:\n        return float('inf')\n    return a / b"))

    def fix_mean(root):
        path = root / "calc/ops.py"
        path.write_text(path.read_text().replace("        return sum(values) / len(values)",
                                                 "        if not values:\n            return 0\n        return sum(values) / len(values)"))

    base1, patch1 = _patch_for(repo, fix_divide)
    (repo / "calc/extra.py").write_text("def unrelated():\n    return 42\n")
    commit_all(repo, "second commit")
    base2, patch2 = _patch_for(repo, fix_mean)
    data = tmp_path / "lite.jsonl"
    instances = [
        {"instance_id": "acme__calc-1", "repo": "acme/calc", "base_commit": base1, "problem_statement": DIVIDE_ISSUE, "patch": patch1},
        {"instance_id": "acme__calc-2", "repo": "acme/calc", "base_commit": base2, "problem_statement": MEAN_ISSUE, "patch": patch2},
    ]
    data.write_text("".join(json.dumps(i) + "\n" for i in instances))
    return tmp_path, repos, data


def _config(tmp_path, repos, data, *retrievers, **kwargs) -> HarnessConfig:
    return HarnessConfig(
        data=str(data), repos_dir=repos, out=tmp_path / "out", systems=parse_systems(retrievers, ["default"]),
        index_dir=tmp_path / "idx", clone=False, **kwargs,
    )


def test_gold_labels_and_accuracy_on_a_known_patch(toy_bench):
    tmp_path, repos, data = toy_bench
    metrics = Harness(_config(tmp_path, repos, data, "bm25", "bm25:raw")).run()
    records = [json.loads(line) for line in (tmp_path / "out/predictions.jsonl").read_text().splitlines()]
    by_id = {(r["instance_id"], r["system"]): r for r in records}
    first = by_id[("acme__calc-1", "bm25")]
    assert first["gold_files"] == ["calc/ops.py"]
    assert first["gold_functions"] == ["calc/ops.py/divide"]
    assert by_id[("acme__calc-2", "bm25")]["gold_functions"] == ["calc/ops.py/Stats/mean"]
    # Tests are outside the corpus, as in the protocol; later commits' files are in their own snapshot only.
    assert "tests/test_ops.py" not in first["files"] and "calc/extra.py" not in first["files"]
    assert "calc/extra.py" in by_id[("acme__calc-2", "bm25")]["files"]
    assert first["functions"][0] == "calc/ops.py/divide"
    assert first["gold_ranks"]["functions"] == {"calc/ops.py/divide": 1}
    assert metrics["bm25"]["all"]["files@1"] == 100.0
    assert metrics["bm25"]["all"]["functions@5"] == 100.0
    assert metrics["bm25"]["all"]["functions_n"] == 2
    for name in ("metrics.json", "metrics.md", "acc_at_k.png", "diagnostics.jsonl", "runs.jsonl"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert "| bm25 | 2 | 100.0" in (tmp_path / "out/metrics.md").read_text()


def test_run_resumes_and_logs_failures(toy_bench):
    tmp_path, repos, data = toy_bench
    lines = data.read_text().splitlines()
    broken = json.loads(lines[0]) | {"instance_id": "acme__calc-3", "base_commit": "0" * 40}
    data.write_text("\n".join([*lines, json.dumps(broken)]) + "\n")
    config = _config(tmp_path, repos, data, "bm25")
    Harness(config).run()
    predictions = (tmp_path / "out/predictions.jsonl").read_text().splitlines()
    assert len(predictions) == 2
    errors = [json.loads(line) for line in (tmp_path / "out/errors.jsonl").read_text().splitlines()]
    assert [e["instance_id"] for e in errors] == ["acme__calc-3"] and "unknown revision" in errors[0]["error"]
    again = Harness(config)
    again.run()
    assert (tmp_path / "out/predictions.jsonl").read_text().splitlines() == predictions  # nothing redone
    assert again.cache["files"] == 0


def test_systems_side_by_side_with_a_model(toy_bench, minilm, monkeypatch):
    tmp_path, repos, data = toy_bench
    monkeypatch.setattr(Harness, "embedder", lambda self, model: minilm)
    harness = Harness(_config(tmp_path, repos, data, "bm25", "dense", "hybrid"))
    metrics = harness.run()
    assert set(metrics) == {"bm25", "dense", "hybrid"}
    assert harness.cache["chunk_instances"] > harness.cache["embedded_chunks"] > 0  # second commit reuses the first
    assert metrics["dense"]["all"]["instances"] == 2


def _records_without_timing(out: Path) -> list[dict]:
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return sorted(({k: v for k, v in r.items() if k != "seconds"} for r in records),
                  key=lambda r: (r["instance_id"], r["system"]))


def test_workers_give_the_serial_results_and_resume(toy_bench):
    tmp_path, repos, data = toy_bench
    shutil.copytree(repos / "acme__calc", repos / "acme__calc2")
    lines = [json.loads(line) for line in data.read_text().splitlines()]
    twins = [i | {"instance_id": i["instance_id"].replace("calc-", "calc2-"), "repo": "acme/calc2"} for i in lines]
    data.write_text("".join(json.dumps(i) + "\n" for i in lines + twins))
    serial = _config(tmp_path, repos, data, "bm25", "bm25:raw")
    Harness(serial).run()
    parallel = replace(serial, out=tmp_path / "out-workers", workers=2)
    harness = Harness(parallel)
    metrics = harness.run()
    assert _records_without_timing(parallel.out) == _records_without_timing(serial.out)
    assert len(_records_without_timing(parallel.out)) == 8 and metrics["bm25"]["all"]["instances"] == 4
    run = json.loads((parallel.out / "runs.jsonl").read_text().splitlines()[-1])
    assert run["workers"] == 2 and run["failed"] == 0
    assert harness.cache["files"] > 0 and any(key.startswith("index:") for key in harness.timing)  # workers' stats came back
    again = Harness(parallel)
    again.run()
    assert len(_records_without_timing(parallel.out)) == 8 and again.cache["files"] == 0  # nothing redone


def test_split_by_repo_keeps_repositories_whole_and_balances():
    from benchmarks.swebench.data import Instance

    def make(repo, n):
        return [Instance(instance_id=f"{repo}-{k}", repo=repo, base_commit="c", problem_statement="p", patch="")
                for k in range(n)]

    instances = make("a/big", 5) + make("b/mid", 3) + make("c/small", 2) + make("d/tiny", 1)
    shards = split_by_repo(instances, 2)
    assert [sorted({i.repo for i in shard}) for shard in shards] == [["a/big", "d/tiny"], ["b/mid", "c/small"]]
    assert [i.instance_id for i in shards[0]] == [f"a/big-{k}" for k in range(5)] + ["d/tiny-0"]
    assert len(split_by_repo(instances, 8)) == 4 and len(split_by_repo(instances, 1)) == 1


def test_missing_repo_is_named(toy_bench, tmp_path):
    _, _, data = toy_bench
    with pytest.raises(LocalizerError, match="missing repositories in .*: acme__calc"):
        ensure_repos(load_instances(str(data)), tmp_path / "elsewhere", clone=False)


def test_dataset_sources(tmp_path):
    with pytest.raises(LocalizerError, match="dataset file does not exist"):
        load_instances(str(tmp_path / "nope.jsonl"))
    as_json = tmp_path / "data.json"
    as_json.write_text(json.dumps([{"instance_id": "a", "repo": "o/n", "base_commit": "c", "problem_statement": "p", "patch": ""}]))
    assert load_instances(str(as_json))[0].repo_dir_name == "o__n"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instance_id": "a"}) + "\n")
    with pytest.raises(LocalizerError, match="missing the field 'repo'"):
        load_instances(str(bad))


def test_accuracy_requires_all_gold_items():
    records = [
        {"gold_ranks": {"functions": {"a": 1, "b": 7}}},
        {"gold_ranks": {"functions": {"c": 2}}},
        {"gold_ranks": {"functions": {}}},  # no gold function: not counted
    ]
    assert accuracy(records, "functions", 5) == (50.0, 2)
    assert accuracy(records, "functions", 10) == (100.0, 2)


def test_cli_smoke_and_report_only(toy_bench):
    tmp_path, repos, data = toy_bench
    args = ["--data", str(data), "--repos-dir", str(repos), "--out", str(tmp_path / "cli-out"), "--retriever", "bm25",
            "--index-dir", str(tmp_path / "idx"), "--no-clone", "--limit", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "| bm25 | 1 | 100.0" in result.output
    result = CliRunner().invoke(main, [*args, "--report-only"])
    assert result.exit_code == 0 and "| bm25 | 1 |" in result.output


REPOS_DIR = Path(os.environ.get("LOCALIZER_REPOS_DIR", Path(__file__).resolve().parents[3] / "repos"))
LITE = Path(__file__).resolve().parents[3] / "shared" / "data" / "swe-bench-lite.jsonl"


@pytest.mark.skipif(not (REPOS_DIR / "psf__requests").exists() or not LITE.exists(),
                    reason=f"real SWE-bench repos not found in {REPOS_DIR} (set LOCALIZER_REPOS_DIR)")
def test_limit_smoke_run_on_real_repos(tmp_path):
    import itertools

    lite = [json.loads(line) for line in LITE.read_text().splitlines()]
    subset = list(itertools.islice((i for i in lite if i["repo"] == "psf/requests"), 2))
    data = tmp_path / "requests.jsonl"
    data.write_text("".join(json.dumps(i) + "\n" for i in subset))
    config = HarnessConfig(data=str(data), repos_dir=REPOS_DIR, out=tmp_path / "out", systems=parse_systems(["bm25"], []),
                           index_dir=tmp_path / "idx", clone=False, limit=2)
    metrics = Harness(config).run()
    assert metrics["bm25"]["all"]["instances"] == 2


def test_model_backends_override_the_default_per_model(tmp_path):
    """A new model can run in bf16 while the base model keeps the fp32 embeddings already cached:
    the override reaches that model's Embedder only, and a typo'd model or backend is refused."""
    from benchmarks.swebench.run import parse_model_backends

    assert parse_model_backends(["runs/m=torch-bf16"], ["default", "runs/m"]) == {"runs/m": "torch-bf16"}
    for bad, hint in ((["runs/m"], "MODEL=BACKEND"), (["other=torch"], "not one of"), (["runs/m=fp8"], "unknown backend")):
        with pytest.raises(click.BadParameter, match=hint):
            parse_model_backends(bad, ["default", "runs/m"])

    model = SHIPPED_MODEL  # a transformer: a static model has one runtime and no backend in its key
    config = HarnessConfig(data="x.jsonl", repos_dir=tmp_path, out=tmp_path / "out",
                           systems=parse_systems(["dense"], [model]), index_dir=tmp_path / "idx",
                           model_backends={model: "torch-bf16"}, backend="torch")
    assert Harness(config).embedder(model).identity.endswith("|backend=torch-bf16")
    plain = Harness(replace(config, model_backends={}))
    assert "backend=" not in plain.embedder(model).identity


def test_system_specs_with_rerank_and_fusion():
    plain, reranked, fused = parse_systems(["bm25", "bm25+rerank", "bm25+rerank+rrf"], [])
    assert (plain.rerank, reranked.rerank, fused.rerank) == (False, True, True)
    assert (reranked.fusion, fused.fusion) == ("none", "rrf") and fused.name == "bm25+rerank+rrf"
    two = parse_systems(["hybrid+rerank+rrf"], ["a/m1", "b/m2"])
    assert [s.name for s in two] == ["hybrid@m1+rerank+rrf", "hybrid@m2+rerank+rrf"]
    for bad in ("bm25+rrf", "bm25+rerank+x", "bm25+rerank+rrf+rrf"):
        with pytest.raises(click.BadParameter):
            parse_systems([bad], [])
