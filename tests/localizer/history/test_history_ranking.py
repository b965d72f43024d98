"""History in the pipeline: a past fix with the issue's words lifts the file BM25 alone misses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexer.index import IndexConfig
from localizer.config import LocalizeConfig
from localizer.learned.features import FILE_FEATURES, FUNCTION_FEATURES
from localizer.pipeline import RankingPipeline
from tests.conftest import commit_all, make_git_repo, write_files

FILES = {
    "pkg/cache.py": "def evict(store, now):\n    for key in list(store):\n        if store[key][1] < now:\n            del store[key]\n",
    "pkg/server.py": ("def serve_request(request, timeout):\n    # entries served to clients after the timeout\n"
                      "    return request.reply(timeout=timeout)\n"),
    "pkg/util.py": "def clamp(value, low, high):\n    return max(low, min(value, high))\n",
}
ISSUE = "Stale entries are served after the timeout expires"


def _repo(root: Path) -> Path:
    make_git_repo(root, FILES)
    write_files(root, {"pkg/cache.py": FILES["pkg/cache.py"].replace("< now", "<= now")})
    commit_all(root, "Fix stale entries served after the timeout expires")
    write_files(root, {"pkg/util.py": FILES["pkg/util.py"] + "\n\ndef pairs(xs):\n    return zip(xs, xs[1:])\n"})
    commit_all(root, "Add pairs helper")
    return root


def _ranker(tmp_path: Path) -> Path:
    """A one-split model per level: items a similar past fix changed go first, the rest keep their order."""

    def level(features, name):
        tree = {"feature": [features.index(name)], "threshold": [0.5], "left": [-1], "right": [-2],
                "default_left": [True], "missing": [2], "leaf_value": [0.0, 1.0]}
        return {"features": list(features), "trees": [tree]}

    path = tmp_path / "ranker.json"
    path.write_text(json.dumps({"format": "localizer-ranker/1", "levels": {
        "file": level(FILE_FEATURES, "hist_sim_max"), "function": level(FUNCTION_FEATURES, "fn_hist_sim_max")}}))
    return path


@pytest.mark.parametrize("history", [True, False])
def test_a_similar_past_fix_lifts_what_it_changed(tmp_path, history):
    repo = _repo(tmp_path / "repo")
    config = LocalizeConfig(index=IndexConfig(index_dir=tmp_path / "index"), ranker=str(_ranker(tmp_path)),
                            **({} if history else {"history": None}))
    pipeline = RankingPipeline(config)
    index = pipeline.build_index(repo)
    ranking = pipeline.rank(index, ISSUE)
    functions = [index.chunks[row].name for row in ranking.functions]
    if history:
        assert ranking.files[0] == "pkg/cache.py" and functions[0] == "evict"
        evidence = ranking.history.file_evidence["pkg/cache.py"]
        assert evidence[0].subject == "Fix stale entries served after the timeout expires"
    else:  # BM25 alone puts the server first: its comment shares the issue's words
        assert ranking.files[0] == "pkg/server.py" and functions[0] == "serve_request"
        assert ranking.history is None


def test_the_boosts_ranker_ignores_history_but_keeps_its_evidence(tmp_path):
    repo = _repo(tmp_path / "repo")
    pipeline = RankingPipeline(LocalizeConfig(index=IndexConfig(index_dir=tmp_path / "index"), ranker="boosts"))
    ranking = pipeline.rank(pipeline.build_index(repo), ISSUE)
    assert ranking.files[0] == "pkg/server.py"
    assert ranking.history is not None and ranking.history.similar[0].subject.startswith("Fix stale entries")


def test_a_plain_directory_ranks_without_history_and_says_why(tmp_path):
    plain = tmp_path / "plain"
    write_files(plain, FILES)
    pipeline = RankingPipeline(LocalizeConfig(index=IndexConfig(index_dir=tmp_path / "index"),
                                              ranker=str(_ranker(tmp_path))))
    ranking = pipeline.rank(pipeline.build_index(plain), ISSUE)
    assert ranking.history is None and "not a git repository" in pipeline.history_note
    assert ranking.files[0] == "pkg/server.py"


def test_a_history_that_cannot_be_read_ranks_without_it_and_says_why(tmp_path, monkeypatch):
    from indexer.git.runner import GitError
    import localizer.pipeline as pipeline_module

    def broken(*args, **kwargs):
        raise GitError("git log failed in repo: fatal: unable to read 1234", command=["git"], returncode=128,
                       stderr="fatal: unable to read 1234")

    monkeypatch.setattr(pipeline_module, "read_history", broken)
    repo = _repo(tmp_path / "repo")
    pipeline = RankingPipeline(LocalizeConfig(index=IndexConfig(index_dir=tmp_path / "index"),
                                              ranker=str(_ranker(tmp_path))))
    ranking = pipeline.rank(pipeline.build_index(repo), ISSUE)
    assert ranking.history is None and ranking.files[0] == "pkg/server.py"
    assert "history unavailable" in pipeline.history_note and "unable to read" in pipeline.history_note
