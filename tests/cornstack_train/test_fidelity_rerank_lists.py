"""Reranker lists do not depend on whether the ``filter`` stage ran.

The same ``negatives`` rows, once with the filter's columns (``filter_score``, ``filter_rank``)
and once without (a ``negatives`` stage run on the ``mine`` output), must give the same
windows, the same teacher instances and the same evaluation lists.
"""

from __future__ import annotations

from collections import Counter

import pytest

from cornstack_train.data.records import FILTER_COLUMNS
from cornstack_train.data.splits import RepoSplit
from cornstack_train.reranker.data import embedder_order, first_stage_window, positive_slot
from cornstack_train.reranker.evaluation import EvalConfig, heldout_windows
from cornstack_train.reranker.teacher import TeacherConfig, rank_windows, select_windows
from tests.cornstack_train import stage_rows

HELD = "held/out"
SPLIT = RepoSplit(heldout_repos=(HELD,))


def filtered_rows(per_repo: int = 8) -> list[dict]:
    """Rows as the ``negatives`` stage writes them after ``filter``: varied filter ranks and scores."""
    return stage_rows.negatives_rows(
        ("a/one", "b/two", HELD), per_repo,
        lambda repo, k: {"query": f"Return the value times {k}.", "positive": f"def mul_{k}(x):\n    return x * {k}",
                         "kind": "docstring" if k % 3 else "commit", "path": f"pkg/m{k}.py", "name": f"mul_{k}",
                         "filter_score": 0.5 + 0.05 * k, "filter_rank": 1 + k % 4},
        lambda k, j: round(0.7 - 0.07 * ((j * 3 + k) % 7), 3))


def unfiltered(rows: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key not in FILTER_COLUMNS} for row in rows]


@pytest.mark.parametrize("depth", [2, 4, 8])
def test_windows_are_the_same_with_and_without_filter_columns(depth):
    with_filter = filtered_rows()
    without = unfiltered(with_filter)
    assert all("filter_rank" not in row for row in without)
    by_id_with = {r["id"]: r for r in with_filter}
    by_id_without = {r["id"]: r for r in without}
    for a, b in zip(with_filter, without):
        assert first_stage_window(a, by_id_with, depth) == first_stage_window(b, by_id_without, depth)


def test_teacher_instances_and_eval_lists_are_the_same_with_and_without_filter_columns():
    with_filter, without = filtered_rows(), unfiltered(filtered_rows())
    config = TeacherConfig(depth=5)

    def instances(rows):
        windows = select_windows(rows, {r["id"]: r for r in rows}, config, SPLIT)
        return [inst.record() for inst in rank_windows(windows, config, None)]

    assert instances(with_filter) == instances(without) != []
    eval_config = EvalConfig(depth=5, max_queries=None, kinds=("docstring", "commit"))
    assert heldout_windows(with_filter, SPLIT, eval_config) == heldout_windows(without, SPLIT, eval_config) != []


def test_the_positive_slot_is_spread_and_the_scores_follow_the_list():
    """No position prior (the positive is not always first, as by score it would be), and the list is in
    first-stage score order, as a retriever's is."""
    rows = filtered_rows(per_repo=40)
    by_id = {r["id"]: r for r in rows}
    windows = [first_stage_window(r, by_id, 5) for r in rows]
    slots = Counter(w.positive_index for w in windows)
    assert set(slots) == set(range(5)) and max(slots.values()) < 0.4 * len(windows), slots
    for w, row in zip(windows, rows):
        assert w.positive_index == positive_slot(row["id"], 5) and w.candidate_ids[w.positive_index] == row["id"]
        assert embedder_order(w.scores) == list(range(len(w.scores)))
