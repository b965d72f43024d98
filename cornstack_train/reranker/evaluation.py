"""Stage ``eval-reranker``: the retriever alone, the zero-shot LLM and the trained reranker, side by side.

Held-out set: docstring pairs from the repositories ``splits.RepoSplit`` holds out (the ones
``teacher-rank`` excluded from training). Each query's candidate list is its positive plus its
hardest negatives in first-stage order (``reranker.data.first_stage_window``: negatives by
embedder score, the positive in a slot seeded by its id). Every system reorders that same list;
MRR@10, Recall@1 and the mean rank of the positive are reported as JSON and a markdown table.

Those lists come from the *filtered* stage, whose pairs all have their positive in the filter
model's top 2: a retriever looks strong there by construction. :func:`retrieved_windows` builds
the lists a real first stage would: every held-out query of an unfiltered (``mine``) stage is
searched over all held-out codes and its top ``depth`` becomes the list, whether or not the
positive made it. A query whose positive is missing scores 0 for every system and costs no LLM
call; the reranker can only move the positive within the list.

Systems are named ``retriever`` (the first-stage order), and any number of LLM rerankers
(``NAME`` -> a ``RerankConfig``, e.g. ``zero-shot`` with no adapter, ``trained`` with one);
``NAME+rrf`` (:func:`fused_ranker`) fuses a reranker's stored orders with the first stage's.
Each system's per-query ranks are stored in ``out/ranks/NAME.jsonl`` as they are computed,
so an interrupted or extended run only computes what is missing.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from indexer.storage.atomic import atomic_write_text
from localizer.rerank.fusion import RRF_K
from cornstack_train.embedder.evaluation import mrr_at_k, recall_at_k
from cornstack_train.reranker.data import Window, candidate_text, first_stage_window, window_meta
from cornstack_train.data.splits import RepoSplit

log = logging.getLogger("cornstack_train.reranker.evaluation")

RETRIEVER = "retriever"


@dataclass(frozen=True)
class EvalConfig:
    depth: int = 10
    max_queries: int | None = 40
    kinds: tuple[str, ...] = ("docstring",)
    seed: int = 0
    shuffle: bool = False  # show candidates in a random order: measures the reranker free of the retriever's order


def shuffled(window: Window, rng: random.Random) -> Window:
    """``window`` with its candidates in a random order (ids, scores and the positive follow)."""
    perm = list(range(len(window.candidates)))
    rng.shuffle(perm)
    return replace(window, candidates=[window.candidates[i] for i in perm],
                   candidate_ids=[window.candidate_ids[i] for i in perm], scores=[window.scores[i] for i in perm],
                   positive_index=perm.index(window.positive_index) if window.positive_index >= 0 else -1,
                   gold=tuple(sorted(perm.index(g) for g in window.gold)))


def heldout_sample(rows: Sequence[dict[str, Any]], split: RepoSplit, config: EvalConfig) -> list[dict[str, Any]]:
    """Held-out rows of the wanted kinds: a seeded sample of ``max_queries`` (growing the sample keeps
    the queries already evaluated, so their stored ranks are reused)."""
    picked = [r for r in rows if r["kind"] in config.kinds and split.is_heldout(r["repo"])]
    picked.sort(key=lambda r: r["id"])
    random.Random(config.seed).shuffle(picked)  # a sample of k is a prefix of a sample of k + 1
    return picked if config.max_queries is None else picked[: config.max_queries]


def heldout_windows(rows: Sequence[dict[str, Any]], split: RepoSplit, config: EvalConfig) -> list[Window]:
    """Windows of a ``negatives`` stage: the positive at its filter rank among its hardest negatives."""
    by_id = {r["id"]: r for r in rows}
    picked = heldout_sample(rows, split, config)
    windows = [w for w in (first_stage_window(r, by_id, config.depth) for r in picked) if w is not None]
    if config.shuffle:
        windows = [shuffled(w, random.Random(f"{config.seed}:{w.id}")) for w in windows]
    return windows


def list_windows(rows: Sequence[dict[str, Any]], split: RepoSplit, config: EvalConfig) -> list[Window]:
    """Windows of a ``repo-windows --heldout-lists`` stage: each query's top ``depth`` as ``localize``'s
    pipeline ranked it over a held-out repository, every gold marked. A list whose golds all fell below
    the top counts as a miss for every system (``positive_index`` -1, no model call)."""
    from cornstack_train.reranker.repo_windows import LIST_KIND

    trained_on = sum(not split.is_heldout(r["repo"]) for r in rows)
    if trained_on:
        raise ValueError(f"{trained_on} of the lists are from repositories this split trains on: "
                         "give eval-reranker the split repo-windows --heldout-lists was built with")
    picked = heldout_sample(rows, split, replace(config, kinds=(LIST_KIND,)))
    windows = []
    for r in picked:
        depth = min(config.depth, len(r["candidates"]))
        gold = tuple(g for g in r["gold"] if g < depth)
        windows.append(Window(r["id"], r["query"], r["candidates"][:depth], r["candidate_ids"][:depth],
                              r["first_stage_scores"][:depth], gold[0] if gold else -1, list_meta(r), gold))
    if config.shuffle:
        windows = [shuffled(w, random.Random(f"{config.seed}:{w.id}")) if needs_order(w) else w for w in windows]
    return windows


def needs_order(window: Window) -> bool:
    """Whether a system must order ``window``: it holds the positive, or it carries a file order (a list
    whose changed functions all fell below the top can still move their file, in ``localize`` too)."""
    return window.positive_index >= 0 or window.meta.get("files") is not None


def list_meta(row: dict[str, Any]) -> dict[str, Any]:
    """A held-out list's meta, plus its file order and gold files where the stage recorded them."""
    meta = window_meta(row)
    if row.get("files") is not None:
        meta["files"], meta["gold_files"] = list(row["files"]), list(row.get("gold_files") or ())
    return meta


Encode = Callable[[list[str]], np.ndarray]  # texts -> L2-normalized vectors, one row each


def retrieved_windows(rows: Sequence[dict[str, Any]], split: RepoSplit, config: EvalConfig,
                      encode_queries: Encode, encode_codes: Encode) -> list[Window]:
    """Windows as a first stage hands them over: each sampled held-out query's top ``depth`` codes among
    all distinct held-out positives (every kind), by inner product. ``positive_index`` is -1 where the
    positive is not in the list."""
    from cornstack_train.embedder.evaluation import top_ids

    pool_rows = [r for r in rows if split.is_heldout(r["repo"])]
    first_row: dict[str, dict[str, Any]] = {}
    for r in pool_rows:
        first_row.setdefault(r["positive"], r)
    codes = list(first_row)
    picked = heldout_sample(rows, split, config)
    if not picked or not codes:
        return []
    where = {code: i for i, code in enumerate(codes)}
    query_vectors = encode_queries([r["query"] for r in picked])
    code_vectors = encode_codes(codes)
    ranked = top_ids(query_vectors, code_vectors, config.depth)
    windows = []
    for q, (row, ids) in enumerate(zip(picked, ranked.tolist())):
        ids = [i for i in ids if i >= 0]
        listed = [first_row[codes[i]] for i in ids]
        gold = where[row["positive"]]
        windows.append(Window(row["id"], row["query"], [candidate_text(r) for r in listed], [r["id"] for r in listed],
                              [float(code_vectors[i] @ query_vectors[q]) for i in ids],
                              ids.index(gold) if gold in ids else -1, window_meta(row)))
    if config.shuffle:
        windows = [shuffled(w, random.Random(f"{config.seed}:{w.id}")) if w.positive_index >= 0 else w for w in windows]
    return windows


def positive_rank(order: Sequence[int], positive_index: int, gold: Sequence[int] = ()) -> int:
    """1-based rank of the positive (the best-placed of ``gold`` when given) in a best-first order of
    window positions; 0 when the list lacks it."""
    if positive_index < 0:
        return 0
    order = list(order)
    return min(order.index(g) for g in (*gold, positive_index)) + 1


def paired_wins(base: Sequence[int], other: Sequence[int]) -> dict[str, int]:
    """Per query, whether ``other`` placed the positive better or worse than ``base`` (by reciprocal rank; rank
    0 is a miss), and whether it gained or lost first place: the paired view beside the means."""
    def rr(rank: int) -> float:
        return 1.0 / rank if rank > 0 else 0.0

    return {"better": sum(rr(o) > rr(b) for b, o in zip(base, other)),
            "worse": sum(rr(o) < rr(b) for b, o in zip(base, other)),
            "first_gained": sum(o == 1 and b != 1 for b, o in zip(base, other)),
            "first_lost": sum(b == 1 and o != 1 for b, o in zip(base, other))}


def candidate_path(candidate_id: str) -> str:
    """The file of a ``path::name::line`` candidate id (``indexer.chunking.chunk.Chunk.key``)."""
    return candidate_id.rsplit("::", 2)[0]


def file_rank(window: Window, order: Sequence[int] | None, policy: str) -> int:
    """1-based rank of the best-placed gold file once files follow ``order`` (a best-first order of the
    window's candidates; None: the pipeline's own file order, nothing reranked) under ``policy``
    (``localizer.rerank.localize.reranked_files``); 0 when no gold file is ranked."""
    from localizer.rerank.localize import reranked_files

    files, gold = window.meta.get("files") or [], set(window.meta.get("gold_files") or ())
    ranked = files if order is None else reranked_files(
        policy, [candidate_path(window.candidate_ids[i]) for i in order], files)
    return next((i + 1 for i, path in enumerate(ranked) if path in gold), 0)


def file_results(windows: Sequence[Window], out: Path, systems: Sequence[str]) -> dict[str, dict[str, float]] | None:
    """File-level metrics of each system's stored orders under each way files follow functions, over every
    list (each one is reordered, a gold function in the top or not), beside the pipeline's own file order.
    None when the windows carry no file order (stages built before ``files`` was recorded)."""
    from localizer.rerank.localize import FILE_ORDERS

    ordered = [w for w in windows if w.meta.get("files") is not None]
    if not ordered:
        return None
    results = {"pipeline files": metrics([file_rank(w, None, "promote") for w in ordered])}
    for name in systems:
        stored = _read_ranks(out / "ranks" / f"{name}.jsonl")
        orders = [list(range(len(w.candidates))) if name == RETRIEVER else (stored.get(w.id) or {}).get("order")
                  for w in ordered]
        if any(o is None for o in orders):
            continue  # not evaluated on these lists (nothing stored)
        for policy in FILE_ORDERS:
            results[f"{name} [files: {policy}]"] = metrics([file_rank(w, o, policy) for w, o in zip(ordered, orders)])
    return results


def metrics(ranks: Sequence[int]) -> dict[str, float]:
    """Rank 0 (positive not in the list) counts as a miss; the mean rank is over the lists that hold it."""
    found = [r for r in ranks if r > 0]
    return {"mrr@10": round(mrr_at_k(ranks, 10), 4), "recall@1": round(recall_at_k(ranks, 1), 4),
            "mean_rank": round(sum(found) / len(found), 3) if found else 0.0, "queries": len(ranks),
            "in_list": len(found)}


def markdown_table(results: dict[str, dict[str, float]]) -> str:
    lines = ["| system | MRR@10 | Recall@1 | mean rank (when listed) | queries | positive listed |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, m in results.items():
        lines.append(f"| {name} | {m['mrr@10']:.4f} | {m['recall@1']:.4f} | {m['mean_rank']:.2f} | {m['queries']} "
                     f"| {m['in_list']} |")
    return "\n".join(lines) + "\n"


Ranker = Callable[[Sequence[Window]], list[list[int]]]


def reranker_ranker(reranker) -> Ranker:
    """A ``localizer.rerank.ListwiseReranker`` as a function of windows (first-stage order in, order out)."""
    from localizer.rerank import Candidate

    def rank(windows: Sequence[Window]) -> list[list[int]]:
        lists = [[Candidate(docid=str(i), text=t, score=float(w.scores[i])) for i, t in enumerate(w.candidates)]
                 for w in windows]
        results = reranker.rerank_batch([w.query for w in windows], lists)
        return [[int(c.docid) for c in r.candidates] for r in results]

    return rank


def _list_key(window: Window) -> str:
    return "|".join(window.candidate_ids)


def _read_ranks(path: Path) -> dict[str, dict[str, Any]]:
    """Stored rows by query id (``rank``, ``order``, and ``list``: the candidate list they were computed
    on, absent in old files); the last row of a query wins."""
    if not path.exists():
        return {}
    done = {}
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
            done[row["id"]] = {"rank": int(row["rank"]), "order": row.get("order"), "list": row.get("list")}
        except (ValueError, KeyError):
            continue  # a line cut by an interruption: recompute it
    return done


def fused_ranker(name: str, out: str | Path, k: int = RRF_K) -> Ranker:
    """System ``name``'s stored orders fused with the first stage's (``localizer.rerank.fusion``): a
    row for fusion that costs no model call. ``name`` must have been evaluated on the same windows
    before this row runs; its file is read once, on the first call."""
    from localizer.rerank.fusion import fuse_with_first_stage

    path = Path(out) / "ranks" / f"{name}.jsonl"
    cache: dict[str, dict[str, dict[str, Any]]] = {}

    def rank(windows: Sequence[Window]) -> list[list[int]]:
        if "stored" not in cache:
            cache["stored"] = _read_ranks(path)
        stored = cache["stored"]
        orders = []
        for w in windows:
            row = stored.get(w.id)
            if row is None or row["order"] is None or row["list"] not in (None, _list_key(w)):
                raise ValueError(f"{path} has no order of query {w.id} on this list: evaluate {name} first")
            orders.append(fuse_with_first_stage(row["order"], k))
        return orders

    return rank


def system_ranks(name: str, windows: Sequence[Window], ranker: Ranker | None, out: Path,
                 batch_size: int = 1, progress: Callable[[str, int, int], None] | None = None) -> list[int]:
    """Ranks of the positive for one system; cached per query in ``out/ranks/NAME.jsonl``. A stored rank
    is reused only for the same candidate list (another retriever's list is ranked afresh)."""
    path = out / "ranks" / f"{name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = _read_ranks(path)
    done: dict[str, int] = {}
    for w in windows:
        if not needs_order(w):
            done[w.id] = 0  # no order of this list can find the positive: no model call
        elif w.id in stored and stored[w.id]["list"] in (None, _list_key(w)):
            done[w.id] = stored[w.id]["rank"]
    todo = [w for w in windows if w.id not in done]
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        started = time.perf_counter()
        orders = [list(range(len(w.candidates))) for w in chunk] if ranker is None else ranker(chunk)
        seconds = (time.perf_counter() - started) / len(chunk)
        with path.open("a") as handle:
            for w, order in zip(chunk, orders):
                done[w.id] = positive_rank(order, w.positive_index, w.gold)
                handle.write(json.dumps({"id": w.id, "rank": done[w.id], "order": list(order), "list": _list_key(w),
                                         "seconds": round(seconds, 2)}) + "\n")
        if progress:
            progress(name, sum(w.id in done for w in windows), len(windows))
    return [done[w.id] for w in windows]


def evaluate(rows: Sequence[dict[str, Any]], out: str | Path, systems: dict[str, Ranker | None], split: RepoSplit,
             config: EvalConfig, batch_size: int = 1, described: dict[str, Any] | None = None,
             progress: Callable[[str, int, int], None] | None = None,
             windows: Sequence[Window] | None = None) -> dict[str, Any]:
    """Run every system (``None`` = the retriever's own order) on the held-out windows (``windows``, else
    those of a ``negatives`` stage); write ``metrics.json`` and ``metrics.md`` in ``out`` and return the report."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if windows is None:
        windows = heldout_windows(rows, split, config)
    if not windows:
        raise ValueError("no held-out windows: raise --heldout-fraction or name repositories with --heldout-repo")
    ranks = {name: system_ranks(name, windows, ranker, out, batch_size, progress) for name, ranker in systems.items()}
    results = {name: metrics(r) for name, r in ranks.items()}
    report = {"results": results, "config": asdict(config), "split": split.describe(),
              "paired": {name: paired_wins(ranks[RETRIEVER], r) for name, r in ranks.items()
                         if name != RETRIEVER and RETRIEVER in ranks},
              "repos": sorted({w.meta.get("repo", "") for w in windows}),
              "positive_first_stage_rank": metrics([positive_rank(range(len(w.candidates)), w.positive_index, w.gold)
                                                    for w in windows]),
              "systems": described or {}}
    files = file_results(windows, out, list(systems))
    markdown = markdown_table(results)
    if report["paired"]:
        markdown += ("\nPaired against the retriever (queries placed better / worse; first place gained / lost):\n\n"
                     + "\n".join(f"- {name}: {c['better']} / {c['worse']}; {c['first_gained']} / {c['first_lost']}"
                                  for name, c in report["paired"].items()) + "\n")
    if files is not None:
        report["file_results"] = files
        markdown += ("\nFiles, over every list: the pipeline's file order, then each system's function order with files "
                     "following it each way (`localize --rerank-files rrf` fuses the model's own order, the rows "
                     "without `+rrf`):\n\n" + markdown_table(files))
    atomic_write_text(out / "metrics.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "metrics.md", markdown)
    return report
