"""The learned ranker's training path on tiny repositories: queries after a snapshot, rows, a fit, a model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from indexer.history.build import HistoryConfig
from indexer.index import IndexConfig
from localizer.config import LocalizeConfig
from localizer.learned.features import FILE_FEATURES, FUNCTION_FEATURES
from localizer.learned.model import RankerModel
from tests.conftest import commit_all, git, make_git_repo, write_files

from cornstack_train.ranker.dataset import TrainingRepo, build_rows, load_rows, repo_rows
from cornstack_train.ranker.fit import FitConfig, fit_ranker, split_repos
from cornstack_train.ranker.mining import MiningConfig, queries_after, snapshots

WORDS = ["parser", "cache", "render", "socket", "config", "token", "stream", "buffer"]


def _module(word: str, version: int) -> str:
    return (f"def handle_{word}(value):\n    return value + {version}\n\n\n"
            f"def describe_{word}(value):\n    return '{word} ' + str(value)\n")


def _repo(root: Path, seed: int) -> Path:
    make_git_repo(root, {f"pkg/{w}.py": _module(w, 0) for w in WORDS})
    for step in range(1, 13):
        word = WORDS[(step * 3 + seed) % len(WORDS)]
        write_files(root, {f"pkg/{word}.py": _module(word, step)})
        commit_all(root, f"Fix handle_{word} returning the wrong {word} value in step {step}")
    return root


MINING = MiningConfig(offsets=(6,), queries=10, lookahead=10)


def _config(tmp_path: Path) -> LocalizeConfig:
    return LocalizeConfig(index=IndexConfig(index_dir=tmp_path / "index"), ranker="boosts",
                          history=HistoryConfig(max_commits=100))


def test_queries_come_after_the_snapshot_and_name_what_changed(tmp_path):
    repo = _repo(tmp_path / "a", 0)
    head = git(repo, "rev-parse", "HEAD").strip()
    [snapshot] = snapshots(repo, MINING.offsets, head)
    queries = queries_after(repo, snapshot, MINING, HistoryConfig(), head)
    later = set(git(repo, "rev-list", f"{snapshot}..{head}").split())
    assert len(queries) == 6 and {q.commit for q in queries} == later
    assert all(q.is_fix and len(q.files) == 1 for q in queries)
    assert all(q.functions == ((q.files[0], q.functions[0][1]),) and q.functions[0][1].startswith("handle_")
               for q in queries)


def test_rows_label_the_query_commits_changes_with_pipeline_features(tmp_path):
    repo = _repo(tmp_path / "a", 0)
    head = git(repo, "rev-parse", "HEAD").strip()
    arrays, facts = repo_rows(TrainingRepo(repo, "o__a", head), _config(tmp_path), MINING, first_qid=0)
    assert facts and all(f["history"] for f in facts)
    assert arrays["file_X"].shape[1] == len(FILE_FEATURES) and arrays["function_X"].shape[1] == len(FUNCTION_FEATURES)
    for fact in facts:  # every query has its one gold file among its candidates
        labels = arrays["file_y"][arrays["file_qid"] == fact["qid"]]
        assert labels.sum() == fact["files_in_head"] == 1


def test_fit_exports_a_model_localize_can_load(tmp_path):
    lightgbm = pytest.importorskip("lightgbm")  # noqa: F841
    repos = [TrainingRepo(_repo(tmp_path / name, seed), f"o__{name}", "HEAD") for seed, name in enumerate("abcd")]
    rows = tmp_path / "rows"
    done = list(build_rows(repos, rows, _config(tmp_path), MINING))
    assert [name for name, _ in done] == ["o__a", "o__b", "o__c", "o__d"]
    assert list(build_rows(repos, rows, _config(tmp_path), MINING)) == []  # resumable: nothing left to do
    arrays, facts = load_rows(rows)
    model, report = fit_ranker(arrays, facts, FitConfig(trees=5, min_data_in_leaf=1, holdout=0.5))
    assert len(report["heldout_repos"]) == 2 and set(report["levels"]) == {"file", "function"}
    assert set(report["levels"]["file"]) >= {"boosts", "learned, history", "learned, no history"}
    path = tmp_path / "ranker.json"
    path.write_text(json.dumps(model.to_json()))
    loaded = RankerModel.load(path)
    scores = loaded.levels["file"].score(arrays["file_X"][:5], FILE_FEATURES)
    assert scores.shape == (5,) and np.isfinite(scores).all()


def test_repositories_not_queries_are_held_out():
    train, held = split_repos(["r1", "r2", "r3", "r4", "r5"] * 3, 0.4, seed=0)
    assert len(held) == 2 and not train & held and train | held == {"r1", "r2", "r3", "r4", "r5"}


def test_the_corpus_takes_only_permissive_undenied_repositories_on_disk(tmp_path):
    """The learned ranker ships, so its corpus passes the same licence gate as the reranker's: the
    licence is read at the pin, and a listed MIT that is LGPL there is refused."""
    from cornstack_train.ranker.stages import training_repos
    from tests.conftest import make_git_repo, git

    mit = "MIT License\n\nPermission is hereby granted, free of charge, to any person obtaining a copy"
    lgpl = "GNU LESSER GENERAL PUBLIC LICENSE\nVersion 2.1, February 1999"
    repos_dir = tmp_path / "repos"
    heads = {}
    for name, text in (("o__ok", mit), ("o__lgpl", lgpl), ("o__listed_mit", lgpl), ("pallets__flask", mit),
                       ("eslint__eslint", mit)):
        make_git_repo(repos_dir / name, {"LICENSE": text, "m.py": "def f():\n    return 1\n"})
        heads[name] = git(repos_dir / name, "rev-parse", "HEAD").strip()
    listing = tmp_path / "repos.json"
    listing.write_text(json.dumps([
        {"repo": "o/ok", "language": "python", "head": heads["o__ok"], "license": "MIT"},
        {"repo": "o/lgpl", "language": "python", "head": heads["o__lgpl"], "license": "LGPL-2.1"},
        {"repo": "o/listed_mit", "language": "python", "head": heads["o__listed_mit"], "license": "MIT"},
        {"repo": "pallets/flask", "language": "python", "head": heads["pallets__flask"], "license": "BSD-3-Clause"},
        {"repo": "eslint/eslint", "language": "javascript", "head": heads["eslint__eslint"], "license": "MIT"},
        {"repo": "o/missing", "language": "python", "head": "abc", "license": "MIT"},
    ]))
    found = training_repos((listing,), repos_dir, (), ())
    assert [(r.name, r.head) for r in found] == [("o__ok", heads["o__ok"])]
