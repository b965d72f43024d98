"""The reranker inside the SWE-bench harness: systems with and without it, sharing model calls."""

from __future__ import annotations

import json

import pytest

from benchmarks.swebench.run import Harness
from tests.benchmarks import test_harness
from tests.benchmarks.test_harness import _config
from tests.localizer.rerank.test_rerank_integration import _reverse_reranker, tiny_loaded  # noqa: F401 (fixture)

torch = pytest.importorskip("torch")
toy_bench = test_harness.toy_bench  # the harness tests' two-instance toy benchmark (a fixture)


def test_harness_compares_bm25_with_and_without_rerank(toy_bench, tiny_loaded):
    tmp_path, repos, data = toy_bench
    reranker = _reverse_reranker(tiny_loaded, depth=3)
    config = _config(tmp_path, repos, data, "bm25", "bm25+rerank")
    metrics = Harness(config, reranker=reranker).run()
    records = [json.loads(line) for line in (tmp_path / "out/predictions.jsonl").read_text().splitlines()]
    by_key = {(r["instance_id"], r["system"]): r for r in records}
    for instance in ("acme__calc-1", "acme__calc-2"):
        base, reranked = by_key[(instance, "bm25")], by_key[(instance, "bm25+rerank")]
        assert reranked["functions"][:3] == base["functions"][:3][::-1]
        assert reranked["functions"][3:] == base["functions"][3:]
        assert reranked["files"][0] == reranked["functions"][0].split(".py/")[0] + ".py"
    assert set(metrics) >= {"bm25", "bm25+rerank"}
    assert reranker.scorer.calls == 2
    run_info = json.loads((tmp_path / "out/runs.jsonl").read_text().splitlines()[-1])
    assert run_info["timing_seconds"]["rerank"] >= 0


def test_harness_shares_model_calls_between_plain_and_fused_rerank(toy_bench, tiny_loaded):
    tmp_path, repos, data = toy_bench
    reranker = _reverse_reranker(tiny_loaded, depth=3)
    config = _config(tmp_path, repos, data, "bm25", "bm25+rerank", "bm25+rerank+rrf")
    Harness(config, reranker=reranker).run()
    records = [json.loads(line) for line in (tmp_path / "out/predictions.jsonl").read_text().splitlines()]
    by_key = {(r["instance_id"], r["system"]): r for r in records}
    for instance in ("acme__calc-1", "acme__calc-2"):
        base, fused = by_key[(instance, "bm25")]["functions"], by_key[(instance, "bm25+rerank+rrf")]["functions"]
        # the reversal [2, 1, 0] fused with [0, 1, 2]: the ends tie, the model breaks the tie
        assert fused[:3] == [base[2], base[0], base[1]] and fused[3:] == base[3:]
    assert reranker.scorer.calls == 2  # one model pass per instance for both rerank systems
