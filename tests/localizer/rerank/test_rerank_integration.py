"""The reranker inside ``Localizer`` and the ``localize`` CLI (the harness side: tests/benchmarks/test_harness_rerank.py)."""

from __future__ import annotations

import json

import pytest

from indexer.index import IndexConfig
from localizer import LocalizeConfig, Localizer
from localizer.rerank.localize import promote_files, reranked_files, rescore_by_position
from localizer.rerank.reranker import ListwiseReranker, RerankConfig
from localizer.rerank.scorers import WindowAnswer

from tests.cli_helpers import assert_one_line_error, run
from tests.localizer.test_localize import CART_ISSUE

torch = pytest.importorskip("torch")


class ReverseScorer:
    """A deterministic stand-in for the model: it always puts the window's last candidate first."""

    mode = "first-token"

    def __init__(self):
        self.calls = 0

    def rank(self, prompts):
        self.calls += len(prompts)
        return [WindowAnswer(list(range(p.n))[::-1], "", 0.0) for p in prompts]


@pytest.fixture(scope="module")
def tiny_loaded():
    from tests.tiny_lm import one_thread
    from tests.tiny_lm import tiny_loaded as build

    with one_thread():
        yield build()


def _reverse_reranker(tiny_loaded, depth: int, fusion: str = "none") -> ListwiseReranker:
    reranker = ListwiseReranker(RerankConfig(model="tiny", depth=depth, window=10, stride=5, fusion=fusion),
                                loaded=tiny_loaded)
    reranker._scorer = ReverseScorer()
    return reranker


def test_promote_files_and_rescore():
    assert promote_files(["b.py", "a.py", "b.py"], ["a.py", "c.py", "b.py", "d.py"]) == ["b.py", "a.py", "c.py", "d.py"]
    assert rescore_by_position(["b", "a", "c"], {"a": 0.9, "b": 0.5, "c": 0.1}) == {"b": 0.9, "a": 0.5, "c": 0.1}


def test_reranked_files_promote_or_fuse_with_the_file_rankers_order():
    functions, files = ["c.py", "b.py", "c.py"], ["a.py", "b.py", "c.py", "d.py"]
    assert reranked_files("promote", functions, files) == ["c.py", "b.py", "a.py", "d.py"]
    # rrf: c (1st and 3rd) and a (3rd and 1st) edge out b (2nd in both), as 1/(k + rank) is convex;
    # their tie goes to the promoted order
    assert reranked_files("rrf", functions, files) == ["c.py", "a.py", "b.py", "d.py"]
    # a function's file the file ranker never listed takes part, on one vote
    assert reranked_files("rrf", ["e.py"], ["a.py", "b.py"]) == ["a.py", "b.py", "e.py"]
    assert reranked_files("rrf", [], files) == files
    with pytest.raises(ValueError, match="file order"):
        reranked_files("best", functions, files)
    with pytest.raises(ValueError, match="file order"):
        RerankConfig(files="best")


def test_localizer_reranks_top_functions_and_files_follow(sample_repo, index_dir, tiny_loaded):
    index = IndexConfig(index_dir=index_dir)
    plain = Localizer(sample_repo, LocalizeConfig(index=index, top_k=8)).localize(CART_ISSUE)
    depth = 4

    def reranking(fusion: str, files: str = "promote", top_k: int = 8) -> Localizer:  # promote: not the default
        # the injected reranker holds the model; the fusion is the localize config's
        config = LocalizeConfig(index=index, top_k=top_k,
                                rerank=RerankConfig(model="tiny", depth=depth, fusion=fusion, files=files))
        return Localizer(sample_repo, config, reranker=_reverse_reranker(tiny_loaded, depth))

    reranked = reranking("none").localize(CART_ISSUE)
    names = [(f.path, f.name) for f in reranked.functions]
    before = [(f.path, f.name) for f in plain.functions]
    assert names[:depth] == before[:depth][::-1]  # one window, reversed by the stub
    assert names[depth:] == before[depth:]  # below the depth: untouched
    assert [f.score for f in reranked.functions] == [f.score for f in plain.functions]  # scores by position
    assert reranked.files[0].path == names[0][0]  # promote: files follow the reranked functions
    assert RerankConfig().files == "rrf"
    assert len({f.path for f in reranked.files}) == len(reranked.files)
    # --rerank-files rrf: the files of the model's own order, fused with the file ranker's, whatever the
    # function-level fusion (every file listed, so the expectation sees the whole file order)
    everything = Localizer(sample_repo, LocalizeConfig(index=index, top_k=1000)).localize(CART_ISSUE)
    rrf_files = [f.path for f in reranking("rrf", "rrf", 1000).localize(CART_ISSUE).files]
    assert rrf_files == [f.path for f in reranking("none", "rrf", 1000).localize(CART_ISSUE).files]
    assert rrf_files == reranked_files("rrf", [path for path, _ in names[:depth]], [f.path for f in everything.files])
    # the default fuses the model's order with the retriever's: the reversal of 4 becomes [3, 0, 2, 1]
    assert RerankConfig().fusion == "rrf"
    fused = [(f.path, f.name) for f in reranking("rrf").localize(CART_ISSUE).functions]
    assert fused[:depth] == [before[3], before[0], before[2], before[1]] and fused[depth:] == before[depth:]


def test_rerank_is_off_by_default():
    assert LocalizeConfig().rerank is None


def test_cli_reports_an_unloadable_reranker_in_one_line(sample_repo, index_dir, tmp_path):
    issue = tmp_path / "issue.md"
    issue.write_text(CART_ISSUE)
    result = run("--repo", sample_repo, "--index-dir", index_dir, "--issue", issue, "--rerank",
                 "--reranker", tmp_path / "no-such-model")
    assert_one_line_error(result, "cannot load reranker model")


def test_cli_rejects_stride_over_window(sample_repo, tmp_path):
    issue = tmp_path / "issue.md"
    issue.write_text(CART_ISSUE)
    result = run("--repo", sample_repo, "--no-cache", "--issue", issue, "--rerank", "--rerank-window", "4",
                 "--rerank-stride", "5")
    assert_one_line_error(result, "--rerank-stride")


def test_reranker_fuses_with_the_input_order(tiny_loaded):
    from localizer.rerank import Candidate

    reranker = ListwiseReranker(RerankConfig(model="tiny", depth=4, window=10, stride=5, fusion="rrf"),
                                loaded=tiny_loaded)
    reranker._scorer = ReverseScorer()
    cands = [Candidate(docid=str(i), text=f"def f{i}(): pass", score=1.0 - i / 10) for i in range(5)]
    result = reranker.rerank("issue", cands)
    assert [c.docid for c in result.candidates] == ["3", "0", "2", "1", "4"]
    assert result.model_order == [3, 2, 1, 0]  # the model's own order is kept for callers that fuse otherwise
    assert [c.score for c in result.candidates] == [c.score for c in cands]
    with pytest.raises(ValueError, match="fusion"):
        RerankConfig(fusion="borda")


def test_cli_reranks_with_a_model_directory(sample_repo, index_dir, tmp_path, tiny_loaded):
    model_dir = tmp_path / "tiny-model"
    tiny_loaded.model.save_pretrained(model_dir)
    tiny_loaded.tokenizer.save_pretrained(model_dir)
    issue = tmp_path / "issue.md"
    issue.write_text(CART_ISSUE)
    common = ["--repo", sample_repo, "--index-dir", index_dir, "--issue", issue, "--format", "json", "--top-k", "6"]
    plain = json.loads(run(*common).stdout)
    result = run(*common, "--rerank", "--reranker", model_dir, "--rerank-depth", "5", "--rerank-window", "4",
                 "--rerank-stride", "2", "--rerank-mode", "first-token", "--rerank-fusion", "rrf")
    assert result.exit_code == 0, result.stderr
    reranked = json.loads(result.stdout)
    key = [(f["path"], f["name"]) for f in reranked["functions"]]
    assert sorted(key[:5]) == sorted((f["path"], f["name"]) for f in plain["functions"][:5])
    assert key[5:] == [(f["path"], f["name"]) for f in plain["functions"][5:]]
    assert reranked["files"][0]["path"] == key[0][0]
