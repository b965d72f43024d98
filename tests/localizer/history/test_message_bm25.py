"""The history's message BM25 scores exactly as bm25s does, which the ranker's features were fitted on."""

import numpy as np

from localizer.history.view import MessageBM25

DOCS = [["fix", "parser", "crash"], ["render", "template", "fix", "fix"], ["\x00"], ["cache", "timeout", "stale"],
        ["parser", "parser", "error", "message", "long", "words", "here"]]


def test_scores_match_bm25s_duplicates_and_unknown_terms_included():
    import bm25s

    reference = bm25s.BM25()
    reference.index(DOCS, show_progress=False)
    ours = MessageBM25(DOCS)
    for query in (["fix"], ["parser", "parser", "crash"], ["unknown"], ["stale", "cache", "unknown", "fix"]):
        np.testing.assert_allclose(ours.scores(query), reference.get_scores(query), rtol=1e-5, atol=1e-7)
