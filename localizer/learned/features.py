"""The learned ranker's features: every signal the pipeline has, per candidate file and function.

Pure: an issue, the retriever's scores, the snapshot's chunks and (optionally) the history signals
in; a feature matrix per level out. The same function builds the training rows
(``cornstack-train ranker``) and the rows ``localize`` ranks, so the model sees at run time
exactly what it was fitted on.

Only a head of candidates is featurized: the retriever's top items, plus whatever the issue names
and whatever a similar past fix changed (the items history can lift from far down the list).
Everything below the head keeps the retriever's order, under the head.

History features are NaN when there is no history (``--no-history``, a plain directory, a
shallow clone); the ranker is trained with history hidden on a share of its queries, so it ranks
sensibly either way.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Sequence

import numpy as np

from localizer.retrieval.query import IssueQuery
from localizer.retrieval.ranking import mentioned_files, mentioned_function, min_max, order

if TYPE_CHECKING:
    from indexer.chunking.chunk import Chunk

    from localizer.history.signals import HistorySignals
    from localizer.retrieval.retrievers import Scores

FILE_HISTORY = ("hist_sim_max", "hist_sim_sum", "hist_sim_rank", "hist_changes", "hist_fixes", "hist_age",
                "hist_cochange")
FUNCTION_HISTORY = ("fn_hist_sim_max", "fn_hist_sim_sum", "fn_hist_sim_rank", "fn_hist_changes", "fn_hist_fixes",
                    "fn_hist_age", *FILE_HISTORY)
FILE_FEATURES = ("retr_score", "retr_rank", "fn_best_score", "fn_best_rank", "mention", "fn_mention_max", "depth",
                 "is_test", "is_init", "is_docs", "n_functions", *FILE_HISTORY)
FUNCTION_FEATURES = ("retr_score", "retr_rank", "mention", "file_retr_score", "file_retr_rank", "file_mention",
                     "lines", "is_method", "is_private", "is_dunder", "depth", "is_test", *FUNCTION_HISTORY)

# Heads: measured on held-out training repositories (docs/history.md): past the top 100 files and
# 200 functions, the gold item is almost never lifted into the top 10 by anything but history.
FILE_HEAD = 100
FUNCTION_HEAD = 200

_TEST_PATH = re.compile(r"(^|/)(tests?|testing|spec|__tests__)/|(^|/)test_[^/]*$|_test\.\w+$|\.(spec|test)\.\w+$")
_DOCS_PATH = re.compile(r"(^|/)(docs?|examples?|doc_src|benchmarks?|scripts?)/")


@dataclass
class LevelRows:
    """The candidates of one level, in the retriever's order, and their feature matrix."""

    items: list  # file paths, or chunk rows
    matrix: np.ndarray  # (len(items), len(features)) float32


@dataclass
class Candidates:
    """Both levels' rows plus the retriever's full orders, which the ranker keeps below the heads."""

    files: LevelRows
    functions: LevelRows
    file_order: list[str]
    function_order: list[int]


def tied_ranks(ordered: Sequence, scores: dict) -> dict:
    """0-based competition ranks: items with equal scores share the best rank among them.

    Positions would tell the model that of eight identical files, one ranks 0 and another 7, and it
    would rank them apart with confidence it does not have; tied items must look tied.
    """
    ranks = {}
    previous, rank = None, 0
    for position, item in enumerate(ordered):
        score = scores[item]
        if score != previous:
            rank, previous = position, score
        ranks[item] = rank
    return ranks


def _rank_feature(rank: int | None) -> float:
    return math.log1p(rank) if rank is not None else math.log1p(10_000)


def _path_features(path: str) -> dict[str, float]:
    parts = PurePosixPath(path).parts
    return {"depth": float(len(parts)), "is_test": float(bool(_TEST_PATH.search(path))),
            "is_init": float(parts[-1] in ("__init__.py", "index.js", "index.ts", "mod.rs") if parts else 0.0),
            "is_docs": float(bool(_DOCS_PATH.search(path)))}


def build_candidates(query: IssueQuery, scores: "Scores", chunks: Sequence["Chunk"],
                     signals: "HistorySignals | None" = None, *, file_head: int = FILE_HEAD,
                     function_head: int = FUNCTION_HEAD) -> Candidates:
    file_scores = min_max(scores.files)
    function_scores = min_max(scores.functions)
    file_order, function_order = order(file_scores), order(function_scores)
    file_rank = tied_ranks(file_order, file_scores)
    function_rank = tied_ranks(function_order, function_scores)
    file_mention = mentioned_files(query, file_scores)

    function_mention: dict[int, float] = {}
    best_in_file: dict[str, tuple[float, int]] = {}
    mention_in_file: dict[str, float] = {}
    count_in_file: dict[str, int] = {}
    for row, score in function_scores.items():
        chunk = chunks[row]
        mention = mentioned_function(query, chunk.path, chunk.name)
        if mention:
            function_mention[row] = mention
            mention_in_file[chunk.path] = max(mention_in_file.get(chunk.path, 0.0), mention)
        best = best_in_file.get(chunk.path)
        if best is None or score > best[0]:
            best_in_file[chunk.path] = (score, function_rank[row])
        count_in_file[chunk.path] = count_in_file.get(chunk.path, 0) + 1

    head_files = dict.fromkeys(file_order[:file_head])
    head_files.update(dict.fromkeys(p for p in file_mention))
    head_functions = dict.fromkeys(function_order[:function_head])
    head_functions.update(dict.fromkeys(function_mention))
    if signals is not None:
        head_files.update(dict.fromkeys(p for p in signals.file_credit if p in file_scores))
        rows_by_key = {(chunks[row].path, chunks[row].name): row for row in function_scores}
        head_functions.update(dict.fromkeys(rows_by_key[k] for k in signals.function_credit if k in rows_by_key))
    file_position = {path: i for i, path in enumerate(file_order)}
    function_position = {row: i for i, row in enumerate(function_order)}
    files = sorted(head_files, key=file_position.__getitem__)  # the retriever's order, ties by name
    functions = sorted(head_functions, key=function_position.__getitem__)

    file_rows = []
    for path in files:
        best_score, best_rank = best_in_file.get(path, (0.0, None))
        row = {"retr_score": file_scores[path], "retr_rank": _rank_feature(file_rank[path]),
               "fn_best_score": best_score, "fn_best_rank": _rank_feature(best_rank),
               "mention": file_mention.get(path, 0.0), "fn_mention_max": mention_in_file.get(path, 0.0),
               "n_functions": math.log1p(count_in_file.get(path, 0)), **_path_features(path)}
        row.update(signals.file_features(path) if signals is not None else {})
        file_rows.append(row)
    function_rows = []
    for row_id in functions:
        chunk = chunks[row_id]
        short = chunk.name.rsplit(".", 1)[-1]
        row = {"retr_score": function_scores[row_id], "retr_rank": _rank_feature(function_rank[row_id]),
               "mention": function_mention.get(row_id, 0.0), "file_retr_score": file_scores.get(chunk.path, 0.0),
               "file_retr_rank": _rank_feature(file_rank.get(chunk.path)),
               "file_mention": file_mention.get(chunk.path, 0.0),
               "lines": math.log1p(chunk.end_line - chunk.start_line + 1), "is_method": float(chunk.kind == "method"),
               "is_private": float(short.startswith("_") and not short.startswith("__")),
               "is_dunder": float(short.startswith("__") and short.endswith("__")), **_path_features(chunk.path)}
        if signals is not None:
            row.update(signals.function_features(chunk.path, chunk.name))
            row.update(signals.file_features(chunk.path))  # FUNCTION_HISTORY holds every FILE_HISTORY feature
        function_rows.append(row)
    return Candidates(LevelRows(files, _matrix(file_rows, FILE_FEATURES)),
                      LevelRows(functions, _matrix(function_rows, FUNCTION_FEATURES)), file_order, function_order)


def _matrix(rows: list[dict[str, float]], names: Sequence[str]) -> np.ndarray:
    """Rows of named features as a matrix in ``names`` order; a feature a row lacks is NaN."""
    out = np.full((len(rows), len(names)), np.nan, dtype=np.float32)
    for i, row in enumerate(rows):
        for j, name in enumerate(names):
            value = row.get(name)
            if value is not None:
                out[i, j] = value
    return out
