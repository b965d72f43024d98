"""Stage ``repo-windows``: reranker windows that look exactly like what ``localize`` reranks.

``teacher-rank`` builds each window from a ``negatives`` stage: a docstring (or commit) query, its
positive and the hardest negatives from *all* repositories by an embedder. That is not the list the
reranker meets in ``localize``: there every candidate is a function of the one repository, ranked by
BM25, the learned ranker and the history. SweRank's lesson is that issue -> in-repository candidate
lists are worth far more than docstring pairs with corpus-wide negatives, so this stage builds those:

* **queries** are the commit messages of the training repositories after a few past snapshots
  (:mod:`cornstack_train.ranker.mining`: ancestors only, fixes first, bookkeeping skipped), the
  **gold** the functions each commit changed (the gold rule), found in the snapshot's index by
  ``(path, name)`` as the learned ranker's rows are (:mod:`cornstack_train.ranker.dataset`);
* each query is ranked by the product's pipeline (:class:`localizer.pipeline.RankingPipeline`,
  ``rank``) over the snapshot, the pre-commit code, with the default configuration: its index
  settings, the shipped learned ranker, history on, no reranking;
* of the top ``depth`` functions, every slice the product's sliding window visits
  (:func:`localizer.rerank.window.window_spans`) that holds a gold function becomes one instance:
  candidates in pipeline order, titled and texted as inference renders them
  (:func:`localizer.rerank.localize.function_candidates`, ``candidate_text``), the pipeline's scores
  as first-stage scores, and the target the gold first, then the rest in pipeline order
  (:func:`cornstack_train.reranker.data.gold_anchored`);
* **one gold per window**: where a commit changed several of the slice's functions, the first (in
  pipeline order) is the target and the others are left out of the window. The first-token loss
  learns a single id, and training shows candidates shuffled: with two golds on view the model
  could not tell which one the target names, and half the time it would be taught that a right
  answer is wrong. In the held-out lists, 30% of those with a gold in the first window of 10
  have more than one.

The slices are taken over the pipeline's order as it is; at inference a window also sees what the
window below it promoted. Which slices and which target are pure functions (:func:`plan_windows`).

Records have teacher-rank's columns (``kind`` ``commit-repo``, ``teacher`` ``pipeline``,
``teacher_mode`` ``gold-pipeline``), so ``train-reranker`` takes the stage alone or beside a
teacher-rank stage (``--extra-stage``). Held-out repositories (the ``RepoSplit`` that teacher-rank
and eval-reranker use) are never ranked. Indexing and ranking take minutes per repository, so the
run is resumable: each repository's instances go to one shard under ``<out>.work/repos/``, written
atomically; a rerun of the same command skips finished repositories (other settings are refused);
the stage is written, atomically, when every repository is done, and the work directory removed.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Sequence

from indexer.storage.atomic import atomic_write_bytes

from localizer.config import LocalizeConfig
from localizer.rerank.reranker import RerankConfig
from localizer.rerank.window import window_spans

from cornstack_train.data.denylist import canonical_repo_name
from cornstack_train.data.splits import RepoSplit
from cornstack_train.ranker.dataset import TrainingRepo
from cornstack_train.ranker.mining import MiningConfig
from cornstack_train.reranker.data import gold_anchored

log = logging.getLogger("cornstack_train.reranker.repo_windows")

KIND = "commit-repo"
TEACHER = "pipeline"
TEACHER_MODE = "gold-pipeline"
GOLDS_SHOWN = "first"  # a training window shows its first gold only (plan_windows); recorded in stats and identity
LIST_KIND = "commit-repo-list"  # --heldout-lists: one whole list per query, for eval-reranker
LIST_MODE = "heldout-lists"
# Files kept per held-out list, in the pipeline's order: what eval-reranker needs to measure how files follow
# the reranked functions (localizer.rerank.localize.reranked_files) at file level.
LIST_FILES = 50
LIST_COLUMNS = ("id", "query", "candidates", "candidate_ids", "first_stage_scores", "positive_index", "repo", "gold")
SHARDS = "repos"  # <out>.work/repos/<owner__name>.json


@dataclass(frozen=True)
class WindowSettings:
    """The product's reranking geometry (RerankConfig's defaults): the top ``depth`` functions, seen
    ``window`` at a time, windows ``stride`` apart."""

    depth: int = RerankConfig.depth
    window: int = RerankConfig.window
    stride: int = RerankConfig.stride

    def __post_init__(self) -> None:
        if self.depth < 2 or self.window < 2 or not 0 < self.stride <= self.window:
            raise ValueError("repo-windows needs depth >= 2, window >= 2 and 0 < stride <= window")


# --------------------------------------------------------------------------- which windows (pure)


@dataclass(frozen=True)
class WindowPlan:
    """One training window over a ranked list: its ``[start, end)`` slice, the slots of it shown (every
    one but the golds after the first), the target (best-first indices into ``shown``) and the gold's
    index in ``shown``."""

    span: tuple[int, int]
    shown: tuple[int, ...]
    target: list[int]
    positive_index: int


def visited_spans(n: int, settings: WindowSettings) -> list[tuple[int, int]]:
    """The slices the product's sliding window visits over a list of ``n``: those of the top ``depth``."""
    return window_spans(min(n, settings.depth), settings.window, settings.stride)


def golds_anchored(order: Sequence[int], gold: Collection[int]) -> list[int]:
    """``order`` with every gold index moved to the front, each group keeping ``order``'s relative order.

    :func:`cornstack_train.reranker.data.gold_anchored` for several golds: a commit changes several
    functions and each is a right answer, so none of them is ranked below a non-gold candidate.
    """
    if sorted(order) != list(range(len(order))) or not gold or not set(gold) <= set(order):
        raise ValueError(f"order {list(order)} is not a permutation containing the gold {sorted(gold)}")
    golds = set(gold)
    return [i for i in order if i in golds] + [i for i in order if i not in golds]


def plan_windows(is_gold: Sequence[bool], settings: WindowSettings) -> list[WindowPlan]:
    """Every visited slice of a ranked list (``is_gold`` per position, best first) that holds a gold,
    bottom slice first as the product visits them: its first gold is the target, followed by the rest
    in pipeline order; the slice's other golds are left out (see the module docstring)."""
    plans = []
    for start, end in visited_spans(len(is_gold), settings):
        gold = [i for i, g in enumerate(is_gold[start:end]) if g]
        if gold:
            shown = tuple(i for i in range(end - start) if i == gold[0] or i not in gold)
            positive = shown.index(gold[0])
            plans.append(WindowPlan((start, end), shown, gold_anchored(range(len(shown)), positive), positive))
    return plans


def rank_bucket(rank: int | None, depth: int) -> str:
    """A query's best gold rank (0-based, None when the gold was not ranked) as a histogram key."""
    if rank is None:
        return "unranked"
    return str(rank + 1) if rank < depth else f">{depth}"


# --------------------------------------------------------------------------- one repository


@dataclass(frozen=True)
class SourceRepo:
    """A training repository and its language; ``name`` is the ``owner/name`` the split and the records use
    (the ``mine`` stage's spelling, so ``--heldout-repo`` means the same repository everywhere)."""

    repo: TrainingRepo
    language: str = ""

    @property
    def name(self) -> str:
        return canonical_repo_name(self.repo.name)


@dataclass
class RepoStats:
    """What one repository gave: queries mined, how many had a changed function in the snapshot's index
    and in the top ``depth``, windows, and the best gold rank per query."""

    repo: str
    head: str
    license: str | None = None  # SPDX the licence gate read at ``head``
    snapshots: int = 0
    queries: int = 0
    queries_with_gold: int = 0
    gold_in_top: int = 0
    windows: int = 0
    gold_rank: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class RankedQuery:
    """One commit message ranked by the pipeline over the snapshot before it; ``gold`` holds the index
    rows of the functions the commit changed (never empty)."""

    snapshot: str
    commit: str
    text: str
    chunks: Sequence[Any]
    gold: frozenset[int]
    functions: list[int]
    function_scores: dict[int, float]
    files: tuple[str, ...] = ()  # the pipeline's file order (its top LIST_FILES)


def ranked_queries(source: SourceRepo, config: LocalizeConfig, mining: MiningConfig, depth: int,
                   stats: RepoStats) -> Iterator[RankedQuery]:
    """Every mined query of ``source`` whose changed functions are in its snapshot's index, ranked by the
    product's pipeline (``config``); ``stats`` counts snapshots, queries and best gold ranks (bucketed
    against the top ``depth``) as they go."""
    from indexer.history.build import HistoryConfig
    from localizer.pipeline import RankingPipeline

    from cornstack_train.ranker.mining import queries_after, snapshots

    repo = source.repo
    pipeline = RankingPipeline(config)
    history = config.history or HistoryConfig()  # the mining's bulk and size limits
    for snapshot in snapshots(repo.path, mining.offsets, repo.head):
        queries = queries_after(repo.path, snapshot, mining, history, repo.head)
        if not queries:
            continue
        stats.snapshots += 1
        index = pipeline.build_index(repo.path, rev=snapshot)
        chunks = index.chunks
        rows_by_key: dict[tuple[str, str], list[int]] = {}
        for row, chunk in enumerate(chunks):
            if chunk.is_function:
                rows_by_key.setdefault((chunk.path, chunk.name), []).append(row)
        for query in queries:
            stats.queries += 1
            gold = frozenset(row for key in query.functions for row in rows_by_key.get(key, ()))
            if not gold:
                continue
            stats.queries_with_gold += 1
            ranking = pipeline.rank(index, query.text)
            best = next((i for i, row in enumerate(ranking.functions) if row in gold), None)
            bucket = rank_bucket(best, depth)
            stats.gold_rank[bucket] = stats.gold_rank.get(bucket, 0) + 1
            yield RankedQuery(snapshot, query.commit, query.text, chunks, gold, ranking.functions,
                              ranking.function_scores, tuple(ranking.files[:LIST_FILES]))


def _window_record(source: SourceRepo, ranked: RankedQuery, span: tuple[int, int], target: list[int],
                   positive_index: int, kind: str, mode: str, gold: Sequence[int] = (),
                   shown: Sequence[int] | None = None) -> dict[str, Any]:
    """An instance record of ``ranked.functions[span]`` (its ``shown`` slots, default all), titled and
    texted as inference renders it."""
    from localizer.rerank.localize import function_candidates
    from localizer.rerank.reranker import candidate_text

    from cornstack_train.reranker.data import Instance, Window

    start, end = span
    chunks, rows = ranked.chunks, ranked.functions[start:end]
    if shown is not None:
        rows = [rows[i] for i in shown]
    first = chunks[rows[positive_index if positive_index >= 0 else 0]]
    window = Window(
        id=f"{source.name}@{ranked.snapshot[:12]}:{ranked.commit[:12]}:{start}-{end}", query=ranked.text,
        candidates=[candidate_text(c) for c in function_candidates(rows, chunks, ranked.function_scores)],
        candidate_ids=[chunks[row].key for row in rows],
        scores=[float(ranked.function_scores[row]) for row in rows], positive_index=positive_index,
        meta={"kind": kind, "language": source.language, "repo": source.name, "path": first.path,
              "name": first.name}, gold=tuple(gold))
    record = Instance(window, target, TEACHER, mode).record()
    if mode == LIST_MODE:
        record["gold"] = list(gold)
    return record


def repo_windows(source: SourceRepo, config: LocalizeConfig, mining: MiningConfig,
                 settings: WindowSettings) -> tuple[list[dict[str, Any]], RepoStats]:
    """(instance records, stats) of one repository at its pinned head."""
    started = time.perf_counter()
    stats = RepoStats(source.name, source.repo.head, source.repo.license)
    records: list[dict[str, Any]] = []
    for ranked in ranked_queries(source, config, mining, settings.depth, stats):
        head = ranked.functions[: settings.depth]
        plans = plan_windows([row in ranked.gold for row in head], settings)
        stats.gold_in_top += bool(plans)
        for plan in plans:
            records.append(_window_record(source, ranked, plan.span, plan.target, plan.positive_index, KIND,
                                          TEACHER_MODE, shown=plan.shown))
            stats.windows += 1
    stats.seconds = round(time.perf_counter() - started, 1)
    return records, stats


def heldout_lists(source: SourceRepo, config: LocalizeConfig, mining: MiningConfig,
                  settings: WindowSettings) -> tuple[list[dict[str, Any]], RepoStats]:
    """(list records, stats) of one held-out repository: per query, the pipeline's top ``depth`` as it is,
    every gold marked (``gold``; ``positive_index`` the first, -1 when none made the top): what
    ``eval-reranker`` reorders to measure the reranker where ``localize`` uses it."""
    started = time.perf_counter()
    stats = RepoStats(source.name, source.repo.head, source.repo.license)
    records: list[dict[str, Any]] = []
    for ranked in ranked_queries(source, config, mining, settings.depth, stats):
        head = ranked.functions[: settings.depth]
        gold = [i for i, row in enumerate(head) if row in ranked.gold]
        stats.gold_in_top += bool(gold)
        target = golds_anchored(range(len(head)), gold) if gold else list(range(len(head)))
        record = _window_record(source, ranked, (0, len(head)), target, gold[0] if gold else -1, LIST_KIND,
                                LIST_MODE, gold)
        record["files"] = list(ranked.files)
        record["gold_files"] = sorted({ranked.chunks[row].path for row in ranked.gold})
        records.append(record)
        stats.windows += 1
    stats.seconds = round(time.perf_counter() - started, 1)
    return records, stats


# --------------------------------------------------------------------------- the stage


def drop_benchmark_overlap(records: Sequence[dict[str, Any]], benchmark: Any) -> list[dict[str, Any]]:
    """``records`` less every window with a candidate whose code is a benchmark function.

    DEVELOPERS.md's rule for weights that ship: no benchmark code in the training data, whichever
    repository it came from (vendored and copied code included). A candidate is its title line and
    its code (:func:`localizer.rerank.reranker.candidate_text`); the code is hashed as ``mine``
    hashes positives (:func:`cornstack_train.data.denylist.overlapping`).
    """
    from cornstack_train.data.denylist import overlapping

    def code(candidate: str) -> str:
        return candidate.split("\n", 1)[1] if "\n" in candidate else candidate

    return [r for r in records if not any(overlapping([code(c) for c in r["candidates"]], benchmark))]


def is_list_stage(path: str | Path) -> bool:
    """Whether ``path`` is a ``repo-windows --heldout-lists`` stage (by its stats)."""
    from cornstack_train.data.records import load_stats

    try:
        return load_stats(path).get("config", {}).get("mode") == LIST_MODE
    except (OSError, ValueError, AttributeError):
        return False


def ranker_identity(config: LocalizeConfig) -> dict[str, Any]:
    """Which ranker orders the lists: its name and, for a model file, its sha256 (a resumed run must not
    mix the shards of two rankers)."""
    from localizer.learned.shipped import BOOSTS, HISTORY_ONLY, LEARNED, SHIPPED_RANKER

    if config.ranker in (BOOSTS, HISTORY_ONLY):
        return {"ranker": config.ranker, "sha256": None}
    from localizer.embedding.shipped import sha256_file

    path = SHIPPED_RANKER if config.ranker == LEARNED else Path(config.ranker).expanduser().resolve()
    return {"ranker": config.ranker, "sha256": sha256_file(path) if path.is_file() else None}


def golds_shown(lists: bool) -> str:
    """Which golds a record shows: every one in a held-out list, the first in a training window."""
    return "all" if lists else GOLDS_SHOWN


def run_identity(sources: Sequence[SourceRepo], config: LocalizeConfig, mining: MiningConfig,
                 settings: WindowSettings, split: RepoSplit, lists: bool = False) -> dict[str, Any]:
    """What the instances depend on; the index directory is only a cache and is left out."""
    index = config.index
    return {"repos": [[s.repo.name, s.repo.head, s.language] for s in sources], "settings": asdict(settings),
            "mining": asdict(mining), "history": asdict(config.history) if config.history else None,
            "index": {"max_file_size": index.max_file_size, "include_tests": index.include_tests,
                      "test_rule": index.test_rule, "max_chunk_chars": index.max_chunk_chars},
            "retriever": config.retriever, "ranker": ranker_identity(config), "split": split.describe(),
            "mode": LIST_MODE if lists else TEACHER_MODE, "golds_shown": golds_shown(lists)}


def stage_stats(per_repo: Sequence[RepoStats], heldout: Sequence[str], instances: int, config: LocalizeConfig,
                mining: MiningConfig, settings: WindowSettings, split: RepoSplit, computed: Sequence[str],
                seconds: float, lists: bool = False, repos_lists: Sequence[str] = ()) -> dict[str, Any]:
    """``stats.json``: teacher-rank's keys (what the adapter card reads) plus the per-repository figures."""
    queries = sum(s.queries for s in per_repo)
    ranks: dict[str, int] = {}
    for s in per_repo:
        for key, count in s.gold_rank.items():
            ranks[key] = ranks.get(key, 0) + count
    fresh = [s.seconds for s in per_repo if s.repo in computed]
    return {
        "stage": "repo-windows",
        "instances": instances,
        "by_kind": {LIST_KIND if lists else KIND: instances} if instances else {},
        "repos": sum(s.windows > 0 for s in per_repo),
        "repos_ranked": len(per_repo),
        "heldout_repos": list(heldout),
        "teacher": TEACHER,
        "config": {"mode": LIST_MODE if lists else TEACHER_MODE, "golds_shown": golds_shown(lists),
                   **asdict(settings), "mining": asdict(mining),
                   "history": asdict(config.history) if config.history else None, "retriever": config.retriever,
                   "ranker": ranker_identity(config), "repos_lists": [str(p) for p in repos_lists]},
        "split": split.describe(),
        "queries": queries,
        "queries_with_gold": sum(s.queries_with_gold for s in per_repo),
        "gold_in_top": sum(s.gold_in_top for s in per_repo),
        "gold_in_top_share": round(sum(s.gold_in_top for s in per_repo) / max(queries, 1), 4),
        "windows": sum(s.windows for s in per_repo),
        "gold_rank": dict(sorted(ranks.items(), key=lambda kv: _bucket_order(kv[0]))),
        "per_repo": {s.repo: asdict(s) for s in per_repo},
        "resumed": len(per_repo) - len(computed),
        "seconds_per_repo": round(sum(fresh) / len(fresh), 1) if fresh else None,
        "seconds": round(seconds, 1),
    }


def _bucket_order(key: str) -> tuple[int, int]:
    return (0, int(key)) if key.isdigit() else (1, 0 if key.startswith(">") else 1)


OnRepo = Callable[[RepoStats, bool], None]  # (the repository's stats, taken from its shard)


def repo_windows_stage(sources: Sequence[SourceRepo], out_dir: str | Path, config: LocalizeConfig,
                       split: RepoSplit, settings: WindowSettings = WindowSettings(),
                       mining: MiningConfig | None = None, max_repos: int | None = None, overwrite: bool = False,
                       on_repo: OnRepo | None = None, lists: bool = False,
                       benchmark: Any = None, repos_lists: Sequence[str] = ()) -> dict[str, Any]:
    """Rank every training repository's commit queries and write the windows as a stage; returns its stats.

    Held-out repositories are left out before anything is ranked; ``max_repos`` takes the first N of
    the others, in the order given. ``mining`` defaults to the learned ranker's (MiningConfig()).
    ``overwrite`` discards an unfinished run as well as a finished stage.

    ``lists``: the opposite side of the split, for evaluation: only the held-out repositories are
    ranked, and each query gives one record, its whole top ``depth`` with every gold marked
    (:func:`heldout_lists`).

    ``benchmark`` (``cornstack_train.data.denylist.BenchmarkHashes``): drop every window that shows
    a benchmark function (:func:`drop_benchmark_overlap`), and record the check in the stats. It
    applies when the stage is written, so the shards of a resumed run serve either way.
    ``repos_lists``: the docs/ lists that pinned ``sources``, recorded for ``ship-reranker``'s pin check.
    """
    from datasets import Dataset

    from cornstack_train.data.records import StageError, save_stage
    from cornstack_train.reranker.teacher import WorkFile, work_dir

    mining = mining if mining is not None else MiningConfig()
    if Path(out_dir).exists() and not overwrite:
        raise StageError(f"{out_dir} already exists; pass --overwrite to replace it")
    started = time.perf_counter()
    heldout = sorted(s.name for s in sources if split.is_heldout(s.name))
    training = [s for s in sources if split.is_heldout(s.name) == lists][:max_repos]
    if not training:
        raise StageError("no held-out repositories among those given" if lists else
                         "no training repositories: every one given is held out")
    rank_repo = heldout_lists if lists else repo_windows
    work = WorkFile(work_dir(out_dir))
    with work.claimed():
        if overwrite:
            work.remove()
        work.start(run_identity(training, config, mining, settings, split, lists))
        records: list[dict[str, Any]] = []
        per_repo: list[RepoStats] = []
        computed: list[str] = []
        for source in training:
            shard = work.root / SHARDS / f"{source.repo.name}.json"
            if shard.is_file():
                stored = json.loads(shard.read_text())
                found, stats = stored["instances"], RepoStats(**stored["stats"])
            else:
                found, stats = rank_repo(source, config, mining, settings)
                payload = {"stats": asdict(stats), "instances": found}
                atomic_write_bytes(shard, (json.dumps(payload, ensure_ascii=False) + "\n").encode())
                computed.append(stats.repo)
            records.extend(found)
            per_repo.append(stats)
            if on_repo:
                on_repo(stats, stats.repo not in computed)
        if not records:
            raise StageError(f"no windows: no query of the {len(training)} repositories had a changed function in "
                             f"its top {settings.depth}")
        overlap: dict[str, Any] = {}
        if benchmark is not None:
            kept = drop_benchmark_overlap(records, benchmark)
            overlap = {"benchmark_repos": list(benchmark.repos), "benchmark_function_hashes": len(benchmark.hashes),
                       "dropped_benchmark_overlap": len(records) - len(kept)}
            records = kept
            if not records:
                raise StageError("no windows left after the benchmark content-overlap check")
        stats = {**stage_stats(per_repo, heldout, len(records), config, mining, settings, split, computed,
                               time.perf_counter() - started, lists, repos_lists), **overlap}
        save_stage(Dataset.from_list(records), out_dir, stats, overwrite=overwrite)
        work.remove()
    return stats
