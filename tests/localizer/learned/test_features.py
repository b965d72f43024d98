"""Feature extraction on a hand-made case: every value is one a person can check by eye."""

from __future__ import annotations

import math

import numpy as np

from indexer.chunking.chunk import Chunk
from indexer.history.build import History
from indexer.history.records import CommitRecord
from localizer.history.signals import NEVER_DAYS, history_signals
from localizer.history.view import HistoryView
from localizer.learned.features import FILE_FEATURES, FILE_HISTORY, FUNCTION_FEATURES, build_candidates
from localizer.retrieval.query import build_query
from localizer.retrieval.retrievers import Scores

CHUNKS = [
    Chunk("pkg/a.py", "", "file", 1, 10, "python", ""),
    Chunk("pkg/a.py", "Parser.parse", "method", 2, 6, "python", ""),
    Chunk("pkg/b.py", "", "file", 1, 5, "python", ""),
    Chunk("pkg/b.py", "render", "function", 1, 5, "python", ""),
]
SCORES = Scores(functions={1: 3.0, 3: 1.0}, files={"pkg/a.py": 2.0, "pkg/b.py": 1.0})
DAY = 86400


def _row(level, item, features):
    """One candidate's features by name, rounded past float32's noise."""
    return {name: round(value, 5) for name, value in zip(features, level.matrix[level.items.index(item)].tolist())}


def log1p(x):
    return round(math.log1p(x), 5)


def test_retriever_mention_and_path_features_without_history():
    query = build_query("render crashes\n\nSee pkg/b.py when rendering empty input.")
    candidates = build_candidates(query, SCORES, CHUNKS)
    assert candidates.files.items == ["pkg/a.py", "pkg/b.py"]  # the retriever's order
    a, b = (_row(candidates.files, p, FILE_FEATURES) for p in ("pkg/a.py", "pkg/b.py"))
    assert (a["retr_score"], b["retr_score"]) == (1.0, 0.0)
    assert b["retr_rank"] == log1p(1) and b["mention"] == 1.0 and a["mention"] == 0.0
    assert a["fn_best_score"] == 1.0 and a["depth"] == 2.0 and a["n_functions"] == log1p(1)
    assert all(math.isnan(b[name]) for name in FILE_HISTORY)  # no history: NaN, not 0
    render = _row(candidates.functions, 3, FUNCTION_FEATURES)
    assert render["file_mention"] == 1.0 and render["is_method"] == 0.0 and render["lines"] == log1p(5)


def test_history_features_credit_what_similar_past_fixes_changed():
    now = 1_700_000_000
    records = [
        CommitRecord("c3", now, "Speed up parser", ("speed", "parser"), ("pkg/a.py",),
                     functions=(("pkg/a.py", "Parser.parse"),)),
        CommitRecord("c2", now - 10 * DAY, "Fix render crash on empty input", ("fix", "render", "crash", "empty", "input"),
                     ("pkg/b.py", "pkg/a.py"), functions=(("pkg/b.py", "render"),)),
        CommitRecord("c1", now - 400 * DAY, "Initial", ("initial",)),
    ]
    view = HistoryView(History("c3", records))
    query = build_query("render crashes on empty input")
    signals = history_signals(view, query.terms, {"pkg/a.py": 1.0})
    assert [c.sha for c in signals.similar] == ["c2"]
    candidates = build_candidates(query, SCORES, CHUNKS, signals)
    b = _row(candidates.files, "pkg/b.py", FILE_FEATURES)
    assert b["hist_sim_max"] == 1.0 and b["hist_sim_sum"] == 0.5  # c2 split its credit over two files
    assert b["hist_sim_rank"] == 0.0 and b["hist_changes"] == log1p(1) and b["hist_fixes"] == log1p(1)
    assert b["hist_age"] == log1p(10.0)
    assert b["hist_cochange"] == log1p(1)  # changed once together with pkg/a.py, which the issue names
    a = _row(candidates.files, "pkg/a.py", FILE_FEATURES)
    assert a["hist_changes"] == log1p(2) and a["hist_fixes"] == log1p(1) and a["hist_age"] == 0.0
    render = _row(candidates.functions, 3, FUNCTION_FEATURES)
    assert render["fn_hist_sim_max"] == 1.0 and render["fn_hist_changes"] == log1p(1)
    parse = _row(candidates.functions, 1, FUNCTION_FEATURES)
    assert parse["fn_hist_sim_max"] == 0.0 and parse["fn_hist_fixes"] == 0.0
    assert signals.file_evidence["pkg/b.py"][0].subject == "Fix render crash on empty input"
    assert np.isfinite(candidates.files.matrix).all()


def test_renamed_files_keep_their_older_history():
    now = 1_700_000_000
    records = [
        CommitRecord("c3", now, "Move parser", ("move", "parser"), ("pkg/headers.py",),
                     renames=(("pkg/parser.py", "pkg/headers.py"),)),
        CommitRecord("c2", now - DAY, "Fix header parsing", ("fix", "header", "parsing"), ("pkg/parser.py",),
                     functions=(("pkg/parser.py", "parse"),)),
    ]
    view = HistoryView(History("c3", records))
    assert view.file_stats["pkg/headers.py"].changes == 2
    assert view.file_stats["pkg/headers.py"].fixes == 1
    assert ("pkg/headers.py", "parse") in view.function_stats
    assert "pkg/parser.py" not in view.file_stats


def test_a_file_history_never_touched_reads_as_never():
    view = HistoryView(History("c1", [CommitRecord("c1", 0, "x", ("x",), ("other.py",))]))
    signals = history_signals(view, ["unrelated"], {})
    assert signals.file_features("pkg/a.py")["hist_age"] == math.log1p(NEVER_DAYS)


def test_tied_items_share_their_rank():
    from localizer.learned.features import tied_ranks

    scores = {"a": 1.0, "b": 0.5, "c": 0.5, "d": 0.5, "e": 0.1}
    assert tied_ranks(["a", "b", "c", "d", "e"], scores) == {"a": 0, "b": 1, "c": 1, "d": 1, "e": 4}
    tied = Scores(functions={1: 1.0, 3: 1.0}, files={"pkg/a.py": 2.0, "pkg/b.py": 2.0})
    candidates = build_candidates(build_query("anything"), tied, CHUNKS)
    ranks = candidates.files.matrix[:, FILE_FEATURES.index("retr_rank")]
    assert ranks[0] == ranks[1] == 0.0
