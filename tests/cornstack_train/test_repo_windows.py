"""repo-windows: reranker windows ranked by the product's pipeline over a repository's past snapshots.

The pure part (which slices of the ranked list, which target) is checked on hand-made lists; the
stage on tiny synthetic repositories whose commits say which function they fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("datasets")

from indexer.history.build import HistoryConfig  # noqa: E402
from indexer.index import IndexConfig  # noqa: E402
from localizer.config import LocalizeConfig  # noqa: E402
from localizer.rerank.window import sliding_rerank  # noqa: E402

from cornstack_train.data.records import StageError, load_stage, save_stage  # noqa: E402
from cornstack_train.data.splits import RepoSplit  # noqa: E402
from cornstack_train.ranker.dataset import TrainingRepo  # noqa: E402
from cornstack_train.ranker.mining import MiningConfig  # noqa: E402
from cornstack_train.reranker import repo_windows as rw  # noqa: E402
from cornstack_train.reranker.data import INSTANCE_COLUMNS, gold_anchored  # noqa: E402
from cornstack_train.reranker.repo_windows import (SourceRepo, WindowSettings, golds_anchored,  # noqa: E402
                                                   plan_windows, rank_bucket, repo_windows_stage, visited_spans)

from tests.conftest import commit_all, git, make_git_repo, write_files  # noqa: E402

WORDS = ["parser", "cache", "render", "socket", "config", "token", "stream", "buffer"]
MINING = MiningConfig(offsets=(6,), queries=10, lookahead=10)
MIT = "MIT License\n\nPermission is hereby granted, free of charge, to any person obtaining a copy"


# --------------------------------------------------------------------------- pure: slices and targets


def test_visited_spans_are_the_products_sliding_windows_over_the_top_depth():
    settings = WindowSettings(depth=20, window=10, stride=5)
    assert visited_spans(50, settings) == [(10, 20), (5, 15), (0, 10)]
    assert visited_spans(12, settings) == [(2, 12), (0, 7)]  # the last window is short, as in the product
    assert visited_spans(7, settings) == [(0, 7)]
    # exactly the windows localize's reranker orders, bottom first: record what sliding_rerank is handed
    seen = []
    sliding_rerank(list(range(20)), 10, 5, lambda items: seen.append((items[0], items[-1] + 1)) or range(len(items)))
    assert seen == visited_spans(20, settings)


def test_golds_anchored_puts_every_gold_first_in_pipeline_order():
    assert golds_anchored(range(6), {4, 1}) == [1, 4, 0, 2, 3, 5]
    assert golds_anchored([2, 0, 1], {1, 2}) == [2, 1, 0]
    for pos in range(5):  # one gold: exactly teacher-rank's gold_anchored
        assert golds_anchored(range(5), {pos}) == gold_anchored(range(5), pos)
    with pytest.raises(ValueError):
        golds_anchored(range(3), set())
    with pytest.raises(ValueError):
        golds_anchored(range(3), {3})


def test_plan_windows_keeps_the_slices_that_hold_a_gold():
    settings = WindowSettings(depth=20, window=10, stride=5)
    is_gold = [False] * 25
    is_gold[7] = is_gold[12] = True  # rank 8 and 13
    plans = plan_windows(is_gold, settings)
    assert [p.span for p in plans] == [(10, 20), (5, 15), (0, 10)]
    assert plans[0].target[:1] == [2] and plans[0].positive_index == 2  # (10, 20): rank 13 is slot 2
    assert plans[0].shown == tuple(range(10))
    # (5, 15) holds both golds, at slots 2 and 7: the first is the target, the second is left out
    assert plans[1].shown == (0, 1, 2, 3, 4, 5, 6, 8, 9)
    assert plans[1].target == [2, 0, 1, 3, 4, 5, 6, 7, 8] and plans[1].positive_index == 2
    assert plans[2].target == [7, 0, 1, 2, 3, 4, 5, 6, 8, 9] and plans[2].positive_index == 7
    only_top = [True] + [False] * 24
    assert [p.span for p in plan_windows(only_top, settings)] == [(0, 10)]
    deep = [False] * 22 + [True]  # below the top depth: nothing the reranker would see
    assert plan_windows(deep, settings) == []
    assert plan_windows([], settings) == []


def test_rank_buckets():
    assert [rank_bucket(r, 20) for r in (0, 19, 20, None)] == ["1", "20", ">20", "unranked"]


def test_settings_refuse_a_window_the_product_cannot_slide():
    with pytest.raises(ValueError):
        WindowSettings(window=5, stride=6)


# --------------------------------------------------------------------------- the stage on synthetic repositories


def _module(word: str, version: int) -> str:
    return (f"def handle_{word}(value):\n    return value + {version}\n\n\n"
            f"def describe_{word}(value):\n    return '{word} ' + str(value)\n\n\n"
            f"def check_{word}(value):\n    return value is not None\n")


def _repo(root: Path, seed: int) -> Path:
    """Twelve commits after the first, each fixing one ``handle_WORD``, its message naming it."""
    make_git_repo(root, {"LICENSE": MIT, **{f"pkg/{w}.py": _module(w, 0) for w in WORDS}})
    for step in range(1, 13):
        word = WORDS[(step * 3 + seed) % len(WORDS)]
        write_files(root, {f"pkg/{word}.py": _module(word, step)})
        commit_all(root, f"Fix handle_{word} returning the wrong {word} value in step {step}")
    return root


def _source(root: Path, name: str, seed: int) -> SourceRepo:
    path = _repo(root / name, seed)
    return SourceRepo(TrainingRepo(path, name, git(path, "rev-parse", "HEAD").strip()), "python")


def _config(tmp_path: Path) -> LocalizeConfig:
    # the hand-set boosts: these tests check the plumbing, not the shipped ranker (which the CLI test loads)
    return LocalizeConfig(index=IndexConfig(index_dir=tmp_path / "index"), ranker="boosts",
                          history=HistoryConfig(max_commits=100))


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> list[SourceRepo]:
    root = tmp_path_factory.mktemp("repos")
    return [_source(root, "o__a", 0), _source(root, "o__b", 1), _source(root, "o__c", 2)]


SPLIT = RepoSplit(heldout_repos=("o/b",))


class Interrupted(Exception):
    """Stands in for a kill between two repositories."""


def test_windows_are_the_pipelines_lists_with_the_gold_first(tmp_path, sources):
    stats = repo_windows_stage(sources, tmp_path / "out", _config(tmp_path), SPLIT, mining=MINING)
    rows = load_stage(tmp_path / "out", require=INSTANCE_COLUMNS).to_list()
    assert rows and stats["instances"] == len(rows) == stats["windows"]
    assert {r["repo"] for r in rows} == {"o/a", "o/c"} and stats["heldout_repos"] == ["o/b"]
    assert "o/b" not in stats["per_repo"] and not (tmp_path / "out.work").exists()
    for repo in ("o/a", "o/c"):
        per = stats["per_repo"][repo]
        assert per["queries"] == 6 and per["queries_with_gold"] == 6  # every commit changed a handle_ function
        assert per["gold_in_top"] >= 5 and sum(per["gold_rank"].values()) == 6
    by_commit: dict[str, list[dict]] = {}
    for row in rows:
        assert (row["kind"], row["teacher"], row["teacher_mode"], row["language"]) == (
            "commit-repo", "pipeline", "gold-pipeline", "python")
        n = len(row["candidates"])
        assert 2 <= n <= WindowSettings().window and sorted(row["target"]) == list(range(n)) and len(set(row["candidate_ids"])) == n
        assert row["target"][0] == row["positive_index"]
        assert row["first_stage_scores"] == sorted(row["first_stage_scores"], reverse=True)  # pipeline order
        # titled as localize titles a function chunk, then its code
        titles = [c.split("\n", 1)[0] for c in row["candidates"]]
        assert all("::" in t and t.startswith("pkg/") for t in titles)
        assert titles[row["positive_index"]] == f"{row['path']}::{row['name']}" and row["name"].startswith("handle_")
        assert row["query"].startswith(f"Fix {row['name']} returning")
        # the gold's code is the snapshot's, from before the commit that changed it
        snapshot, commit = row["id"].split("@", 1)[1].split(":")[:2]
        gold_code = row["candidates"][row["positive_index"]].split("\n", 1)[1] + "\n"
        clone = sources[0].repo.path.parent / row["repo"].replace("/", "__")
        assert gold_code in git(clone, "show", f"{snapshot}:{row['path']}")
        assert gold_code not in git(clone, "show", f"{commit}:{row['path']}")
        by_commit.setdefault(row["id"].rsplit(":", 1)[0], []).append(row)
    assert stats["gold_in_top"] == len(by_commit)


def test_an_interrupted_run_resumes_from_its_shards_and_writes_the_same_stage(tmp_path, sources):
    config = _config(tmp_path)
    reports: list[tuple[str, bool]] = []

    def die_after_first(stats, reused):
        reports.append((stats.repo, reused))
        raise Interrupted

    with pytest.raises(Interrupted):
        repo_windows_stage(sources, tmp_path / "out", config, SPLIT, mining=MINING, on_repo=die_after_first)
    assert [p.name for p in (tmp_path / "out.work" / "repos").iterdir()] == ["o__a.json"]
    assert not (tmp_path / "out").exists()
    with pytest.raises(StageError, match="other settings"):  # a rerun with other flags is refused
        repo_windows_stage(sources, tmp_path / "out", config, SPLIT, WindowSettings(depth=10), mining=MINING)
    stats = repo_windows_stage(sources, tmp_path / "out", config, SPLIT, mining=MINING,
                               on_repo=lambda s, reused: reports.append((s.repo, reused)))
    assert reports == [("o/a", False), ("o/a", True), ("o/c", False)] and stats["resumed"] == 1
    straight = tmp_path / "straight"
    repo_windows_stage(sources, straight, config, SPLIT, mining=MINING)
    assert (load_stage(tmp_path / "out", require=INSTANCE_COLUMNS).to_list()
            == load_stage(straight, require=INSTANCE_COLUMNS).to_list())
    with pytest.raises(StageError, match="already exists"):
        repo_windows_stage(sources, straight, config, SPLIT, mining=MINING)


def test_only_heldout_repositories_give_no_stage(tmp_path, sources):
    with pytest.raises(StageError, match="held out"):
        repo_windows_stage(sources[1:2], tmp_path / "out", _config(tmp_path), SPLIT, mining=MINING)
    assert not (tmp_path / "out").exists()


def test_cli_builds_the_stage_with_the_shipped_ranker_and_train_reranker_takes_it(tmp_path, monkeypatch, sources):
    """The registered command end to end (licence gate, default pipeline), then train-reranker on the
    stage together with a teacher-rank stage (--extra-stage)."""
    from click.testing import CliRunner

    from cornstack_train.cli import main
    from cornstack_train.reranker.teacher import TeacherConfig, teacher_rank

    from tests.tiny_lm import one_thread, tiny_model, tiny_tokenizer

    listing = tmp_path / "repos.json"
    listing.write_text(json.dumps([{"repo": s.name, "language": "python", "head": s.repo.head, "license": "MIT"}
                                   for s in sources]))
    monkeypatch.setattr(rw, "MiningConfig", lambda: MINING)  # a twelve-commit history, not 1,500
    runner = CliRunner()
    out = tmp_path / "windows"
    args = ["repo-windows", "--repos-list", str(listing), "--repos-dir", str(sources[0].repo.path.parent),
            "--language", "python", "--index-dir", str(tmp_path / "index"), "--heldout-repo", "o/b",
            "--max-repos", "1", "-o", str(out)]
    r = runner.invoke(main, args)
    assert r.exit_code == 0, r.output
    stats = json.loads((out / "stats.json").read_text())
    assert stats["config"]["ranker"]["ranker"] == LocalizeConfig().ranker and stats["config"]["history"] is not None
    assert list(stats["per_repo"]) == ["o/a"] and stats["heldout_repos"] == ["o/b"] and stats["instances"] > 0
    assert "o/a: 6 queries" in r.output
    r = runner.invoke(main, args)
    assert r.exit_code == 0 and "already complete" in r.output
    # --skip-repos leaves out the first usable repositories (the learned ranker's corpus)
    skipped = runner.invoke(main, [*args[:-2], "--skip-repos", "1", "-o", str(tmp_path / "skipped")])
    assert skipped.exit_code == 0, skipped.output
    assert list(json.loads((tmp_path / "skipped" / "stats.json").read_text())["per_repo"]) == ["o/c"]
    too_many = runner.invoke(main, [*args[:-2], "--skip-repos", "9", "-o", str(tmp_path / "none")])
    assert too_many.exit_code == 1 and "--skip-repos 9 leaves no repository" in too_many.output
    # what ship-reranker checks: the gate's licence per repository, the lists, and the overlap check
    assert stats["per_repo"]["o/a"]["license"] == "MIT" and stats["config"]["repos_lists"] == [str(listing)]
    bench = tmp_path / "bench"
    (bench / "psf__requests").mkdir(parents=True)
    write_files(bench / "psf__requests", {"requests/x.py": _module("parser", 0)})  # o/a's parser module, copied
    checked = runner.invoke(main, [*args[:-2], "--benchmark-repos-dir", str(bench), "-o", str(tmp_path / "checked")])
    assert checked.exit_code == 0, checked.output
    checked_stats = json.loads((tmp_path / "checked" / "stats.json").read_text())
    assert checked_stats["benchmark_repos"] == ["psf/requests"] and checked_stats["dropped_benchmark_overlap"] > 0
    assert checked_stats["instances"] == stats["instances"] - checked_stats["dropped_benchmark_overlap"]
    assert not (tmp_path / "checked.work").exists()

    rows = [{"id": f"d{k}", "query": f"Return the value plus {k}.", "positive": f"def add_{k}(x):\n    return x + {k}",
             "kind": "docstring", "language": "python", "repo": "z/z", "path": f"m{k}.py", "name": f"add_{k}",
             "source": "git:0", "negative_ids": [f"d{j}" for j in range(3) if j != k], "negative_scores": [0.5, 0.4]}
            for k in range(3)]
    from datasets import Dataset

    negatives = save_stage(Dataset.from_list(rows), tmp_path / "negatives", {"stage": "negatives"})
    teacher = tmp_path / "teacher"
    teacher_rank(str(negatives), str(teacher), TeacherConfig(depth=3), RepoSplit(heldout_repos=("none/none",)))
    tokenizer = tiny_tokenizer()
    model_dir = tmp_path / "tiny-model"
    tiny_model(tokenizer).save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    run = tmp_path / "run"
    with one_thread():
        r = runner.invoke(main, ["train-reranker", str(out), "--extra-stage", str(teacher), "--out", str(run),
                                 "--model", str(model_dir), "--max-steps", "1", "--lora-r", "2", "--candidate-tokens",
                                 "24", "--device", "cpu", "--dtype", "fp32"])
    assert r.exit_code == 0, r.output
    training = json.loads((run / "adapter" / "training.json").read_text())
    assert training["data"]["stats"]["stage"] == "repo-windows"
    assert [e["path"] for e in training["data"]["extra_stages"]] == [str(teacher)]
    assert json.loads((run / "train_stats.json").read_text())["instances"] == stats["instances"] + 3


# --------------------------------------------------------------------------- held-out lists, for eval-reranker


def test_heldout_lists_rank_only_the_heldout_repository_one_whole_list_per_query(tmp_path, sources):
    from cornstack_train.reranker.evaluation import EvalConfig, list_windows, positive_rank, shuffled

    settings = WindowSettings(depth=6, window=4, stride=2)
    out = tmp_path / "lists"
    stats = repo_windows_stage(sources, out, _config(tmp_path), SPLIT, settings, mining=MINING, lists=True)
    assert rw.is_list_stage(out) and not rw.is_list_stage(tmp_path / "nowhere")
    rows = load_stage(out, require=rw.LIST_COLUMNS).to_list()
    assert list(stats["per_repo"]) == ["o/b"] and {r["repo"] for r in rows} == {"o/b"}
    assert stats["config"]["mode"] == "heldout-lists" and stats["by_kind"] == {"commit-repo-list": len(rows)}
    assert len(rows) == stats["per_repo"]["o/b"]["queries_with_gold"] == 6  # every query, gold listed or not
    for row in rows:
        assert len(row["candidates"]) == 6 and row["id"].endswith(":0-6")  # the whole top depth, one record
        assert row["first_stage_scores"] == sorted(row["first_stage_scores"], reverse=True)
        golds = [i for i, c in enumerate(row["candidates"]) if c.split("\n", 1)[0].endswith(f"::{row['name']}")]
        assert row["gold"] == golds and row["positive_index"] == (golds[0] if golds else -1)
        # the pipeline's file order and the changed functions' files, for file-level metrics
        assert row["files"] and len(row["files"]) == len(set(row["files"])) <= rw.LIST_FILES
        assert row["gold_files"] == [row["path"]] or row["path"] in row["gold_files"]
        assert {rw_path(c) for c in (row["candidate_ids"][g] for g in golds)} <= set(row["gold_files"])
    windows = list_windows(rows, SPLIT, EvalConfig(depth=6, max_queries=None))
    assert sorted(w.id for w in windows) == sorted(r["id"] for r in rows)
    for w in windows:  # the pipeline's own order scores the rank of its best gold
        expected = w.gold[0] + 1 if w.gold else 0
        assert positive_rank(range(6), w.positive_index, w.gold) == expected
    # --shuffle moves every gold with its candidate
    listed = next(w for w in windows if w.gold)
    moved = shuffled(listed, __import__("random").Random(3))
    assert {moved.candidates[g] for g in moved.gold} == {listed.candidates[g] for g in listed.gold}
    assert moved.candidates[moved.positive_index] == listed.candidates[listed.positive_index]
    # a split that trains on the repository refuses its lists
    with pytest.raises(ValueError, match="split"):
        list_windows(rows, RepoSplit(heldout_repos=("o/a",)), EvalConfig(depth=6))


def rw_path(candidate_id: str) -> str:
    from cornstack_train.reranker.evaluation import candidate_path

    return candidate_path(candidate_id)


def test_file_rank_follows_each_way_files_follow_functions():
    from cornstack_train.reranker.data import Window
    from cornstack_train.reranker.evaluation import file_rank

    ids = ["pkg/a.py::f::1", "pkg/b.py::g::9", "pkg/c.py::h::3"]
    window = Window("q", "issue", ["x", "y", "z"], ids, [3.0, 2.0, 1.0], 1, gold=(1,),
                    meta={"files": ["pkg/a.py", "pkg/c.py", "pkg/b.py"], "gold_files": ["pkg/b.py"]})
    assert file_rank(window, None, "promote") == 3  # the pipeline's own file order
    assert file_rank(window, [0, 1, 2], "promote") == 2  # files of the functions in order: a, b, c
    assert file_rank(window, [1, 0, 2], "promote") == 1
    # rrf with the file order (a, c, b): b is 1st and 3rd, a 2nd and 1st, so a stays first
    assert file_rank(window, [1, 0, 2], "rrf") == 2
    assert file_rank(Window("q", "i", ["x"], ids[:1], [1.0], 0, meta={"files": ["pkg/a.py"], "gold_files": []}),
                     [0], "rrf") == 0


def test_lists_with_a_file_order_are_ordered_even_without_a_gold_function():
    from cornstack_train.reranker.data import Window
    from cornstack_train.reranker.evaluation import needs_order

    listed = {"files": ["a.py"], "gold_files": ["b.py"]}
    assert needs_order(Window("q", "i", ["x"], ["a.py::f::1"], [1.0], -1, meta=listed))
    assert needs_order(Window("q", "i", ["x"], ["a.py::f::1"], [1.0], 0))
    assert not needs_order(Window("q", "i", ["x"], ["a.py::f::1"], [1.0], -1))


def test_paired_wins_count_queries_moved_up_and_down_and_first_places():
    from cornstack_train.reranker.evaluation import paired_wins

    # ranks per query (0: not listed): better on 2 and 3, worse on 1, level on 4
    assert paired_wins([1, 2, 0, 3], [2, 1, 4, 3]) == {"better": 2, "worse": 1, "first_gained": 1, "first_lost": 1}
    assert paired_wins([0, 0], [0, 0]) == {"better": 0, "worse": 0, "first_gained": 0, "first_lost": 0}


def test_positive_rank_takes_the_best_placed_gold():
    from cornstack_train.reranker.evaluation import positive_rank

    assert positive_rank([3, 1, 0, 2], 2, (0, 2)) == 3  # gold 0 is 3rd, gold 2 4th: the best counts
    assert positive_rank([2, 3, 1, 0], 0, (0, 2)) == 1
    assert positive_rank([2, 3, 1, 0], 1) == 3
    assert positive_rank([2, 3, 1, 0], -1, ()) == 0


def test_eval_reranker_reads_a_list_stage_as_the_pipelines_order(tmp_path, sources):
    """eval-reranker on a --heldout-lists stage: the retriever row is the pipeline's own order, every
    gold counting (no model is loaded without --adapter or --zero-shot)."""
    from click.testing import CliRunner

    from cornstack_train.cli import main
    from cornstack_train.reranker.evaluation import mrr_at_k

    out = tmp_path / "lists"
    repo_windows_stage(sources, out, _config(tmp_path), SPLIT, WindowSettings(depth=6, window=4, stride=2),
                       mining=MINING, lists=True)
    rows = load_stage(out, require=rw.LIST_COLUMNS).to_list()
    r = CliRunner().invoke(main, ["eval-reranker", str(out), "-o", str(tmp_path / "eval"), "--no-zero-shot",
                                  "--depth", "6", "--max-queries", "50", "--heldout-repo", "o/b"])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    expected = mrr_at_k([r["gold"][0] + 1 if r["gold"] else 0 for r in rows], 10)
    assert report["results"]["retriever"]["mrr@10"] == round(expected, 4) and report["repos"] == ["o/b"]
    assert "pipeline order" in report["systems"]["retriever"]
    # file level, over every list: the retriever's own function order with files promoted or fused
    files = report["file_results"]
    assert set(files) == {"pipeline files", "retriever [files: promote]", "retriever [files: rrf]"}
    assert report["paired"] == {}  # the retriever alone: nothing to pair
    assert all(m["queries"] == len(rows) for m in files.values())
    wrong = CliRunner().invoke(main, ["eval-reranker", str(out), "-o", str(tmp_path / "eval2"), "--no-zero-shot",
                                      "--heldout-repo", "o/a"])
    assert wrong.exit_code == 1 and "split" in wrong.output


def test_the_overlap_check_drops_windows_showing_a_benchmark_function_and_says_so(tmp_path, sources):
    from cornstack_train.data.cleaning import code_hash
    from cornstack_train.data.denylist import BenchmarkHashes

    small = WindowSettings(depth=20, window=10, stride=5)  # windows that leave check_parser out of some slices
    plain = repo_windows_stage(sources, tmp_path / "plain", _config(tmp_path), SPLIT, small, mining=MINING)
    rows = load_stage(tmp_path / "plain", require=INSTANCE_COLUMNS).to_list()
    assert "dropped_benchmark_overlap" not in plain
    # a benchmark that happens to hold o/a's check_parser, byte for byte (up to whitespace)
    shown = "def check_parser(value):\n    return value  is not None\n"
    benchmark = BenchmarkHashes({code_hash(shown)}, ["bench/mark"])
    showing = [r for r in rows if any(c.split("\n", 1)[0].endswith("::check_parser") for c in r["candidates"])]
    assert showing, "the synthetic lists should show check_parser somewhere"
    checked = repo_windows_stage(sources, tmp_path / "checked", _config(tmp_path), SPLIT, small, mining=MINING,
                                 benchmark=benchmark)
    kept = load_stage(tmp_path / "checked", require=INSTANCE_COLUMNS).to_list()
    assert checked["dropped_benchmark_overlap"] == len(showing) and len(kept) == len(rows) - len(showing)
    assert checked["benchmark_repos"] == ["bench/mark"] and checked["instances"] == len(kept)
    assert not any("::check_parser\n" in c for r in kept for c in r["candidates"])
    assert {s["license"] for s in checked["per_repo"].values()} == {None}  # no gate ran on these sources
