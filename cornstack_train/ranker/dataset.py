"""Feature rows for the learned ranker, built by the pipeline ``localize`` runs.

For every query (:mod:`cornstack_train.ranker.mining`) the snapshot is indexed and ranked by
:meth:`localizer.pipeline.RankingPipeline.signals` and :func:`localizer.learned.features.build_candidates`,
the very steps ``localize`` takes before its ranker, so the model is fitted on the rows it will
score. Labels mark the query commit's files and functions. Each repository's rows go to one
``.npz`` (plus a ``.json`` of per-query facts), written atomically, so an interrupted run resumes
at the next repository.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from indexer.storage.atomic import atomic_write_bytes, atomic_write_json

from localizer.config import LocalizeConfig
from localizer.learned.features import build_candidates
from localizer.pipeline import RankingPipeline
from localizer.retrieval.ranking import final_scores, order

from cornstack_train.ranker.mining import MiningConfig, queries_after, snapshots

log = logging.getLogger(__name__)


@dataclass
class LevelData:
    matrix: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    qids: list[np.ndarray] = field(default_factory=list)

    def add(self, matrix: np.ndarray, labels: np.ndarray, qid: int) -> None:
        self.matrix.append(matrix)
        self.labels.append(labels.astype(np.int8))
        self.qids.append(np.full(len(labels), qid, dtype=np.int32))

    def arrays(self, prefix: str, width: int) -> dict[str, np.ndarray]:
        if not self.matrix:
            return {f"{prefix}_X": np.zeros((0, width), np.float32), f"{prefix}_y": np.zeros(0, np.int8),
                    f"{prefix}_qid": np.zeros(0, np.int32)}
        return {f"{prefix}_X": np.concatenate(self.matrix), f"{prefix}_y": np.concatenate(self.labels),
                f"{prefix}_qid": np.concatenate(self.qids)}


def _ranks(ordered: list, gold: set) -> list[int]:
    return [i for i, item in enumerate(ordered) if item in gold]


@dataclass(frozen=True)
class TrainingRepo:
    """A repository of the corpus: where it is, its name (``owner__name``), the pinned commit mined and
    the licence the gate read there (SPDX; None when no gate ran)."""

    path: Path
    name: str
    head: str = "HEAD"
    license: str | None = None


def repo_rows(repo: TrainingRepo, config: LocalizeConfig, mining: MiningConfig, first_qid: int) -> tuple[dict, list[dict]]:
    """(arrays for the ``.npz``, one fact dict per query) for one repository at its pinned commit."""
    from localizer.learned.features import FILE_FEATURES, FUNCTION_FEATURES

    pipeline = RankingPipeline(config)
    files, functions = LevelData(), LevelData()
    facts: list[dict] = []
    qid = first_qid
    for snapshot in snapshots(repo.path, mining.offsets, repo.head):
        queries = queries_after(repo.path, snapshot, mining, config.history, repo.head)
        if not queries:
            continue
        index = pipeline.build_index(repo.path, rev=snapshot)
        chunks = index.chunks
        indexed_files = {c.path for c in chunks if c.kind == "file"}
        rows_by_key: dict[tuple[str, str], list[int]] = {}
        for row, chunk in enumerate(chunks):
            if chunk.is_function:
                rows_by_key.setdefault((chunk.path, chunk.name), []).append(row)
        for query in queries:
            gold_files = {f for f in query.files if f in indexed_files}
            if not gold_files:
                continue
            gold_rows = {row for key in query.functions for row in rows_by_key.get(key, ())}
            issue, scores, signals = pipeline.signals(index, query.text)
            candidates = build_candidates(issue, scores, chunks, signals)
            boost_files, boost_functions = final_scores(issue, scores, chunks, config.mention_boost)
            file_labels = np.array([p in gold_files for p in candidates.files.items])
            files.add(candidates.files.matrix, file_labels, qid)
            function_labels = np.array([r in gold_rows for r in candidates.functions.items])
            if gold_rows:
                functions.add(candidates.functions.matrix, function_labels, qid)
            facts.append({
                "qid": qid, "repo": repo.name, "head": repo.head, "snapshot": snapshot, "commit": query.commit, "is_fix": query.is_fix,
                "text": query.text[:300], "gold_files": len(gold_files), "gold_functions": len(gold_rows),
                "files_in_head": int(file_labels.sum()), "functions_in_head": int(function_labels.sum()),
                "history": signals is not None,
                "boosts_file_ranks": _ranks(order(boost_files), gold_files),
                "boosts_function_ranks": _ranks(order(boost_functions), gold_rows),
                "retriever_file_ranks": _ranks(candidates.file_order, gold_files),
                "retriever_function_ranks": _ranks(candidates.function_order, gold_rows),
            })
            qid += 1
    arrays = {**files.arrays("file", len(FILE_FEATURES)), **functions.arrays("function", len(FUNCTION_FEATURES))}
    return arrays, facts


def build_rows(repos: list[TrainingRepo], out: Path, config: LocalizeConfig, mining: MiningConfig) -> Iterator[tuple[str, int]]:
    """Rows for each repository not yet done under ``out``; yields (repository, queries) as each finishes."""
    out.mkdir(parents=True, exist_ok=True)
    for repo in sorted(repos, key=lambda r: r.name):
        target = out / f"{repo.name}.npz"
        if target.exists():
            continue
        arrays, facts = repo_rows(repo, config, mining, first_qid=0)  # ids are per file (load_rows)
        atomic_write_json(out / f"{repo.name}.json", {"repo": repo.name, "mining": asdict(mining),
                                                      "queries": facts})
        from io import BytesIO

        buffer = BytesIO()
        np.savez_compressed(buffer, **arrays)
        atomic_write_bytes(target, buffer.getvalue())
        yield repo.name, len(facts)


def load_rows(directory: Path) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Every repository's rows under ``directory``, concatenated, and their query facts.

    Query ids are only unique within one repository's file (each file numbers its own queries), so
    they are renumbered here, file after file: runs over different repository lists can never make
    two repositories' queries share an id.
    """
    arrays: dict[str, list[np.ndarray]] = {}
    facts: list[dict] = []
    for path in sorted(directory.glob("*.npz")):
        mine = json.loads(path.with_suffix(".json").read_text())["queries"]
        renumber = {fact["qid"]: len(facts) + i for i, fact in enumerate(mine)}
        facts.extend({**fact, "qid": renumber[fact["qid"]]} for fact in mine)
        with np.load(path) as data:
            for key in data.files:
                values = data[key]
                if key.endswith("_qid"):
                    values = np.array([renumber[int(q)] for q in values], dtype=np.int32)
                arrays.setdefault(key, []).append(values)
    return {k: np.concatenate(v) for k, v in arrays.items()}, facts
