"""What pipelines over one instance share (localizer.pipeline.SharedWork)."""

from __future__ import annotations

from indexer.index import IndexConfig, build_index
from localizer.pipeline import SharedWork

from tests.conftest import commit_all


def test_bm25_is_built_once_for_snapshots_of_the_same_commit(sample_repo):
    config = IndexConfig(use_cache=False)
    first, second = build_index(sample_repo, "HEAD", config=config), build_index(sample_repo, "HEAD", config=config)
    assert first is not second
    shared = SharedWork()
    assert shared.bm25(first) is shared.bm25(second)  # one model's snapshot serves another's
    assert set(shared.pop_timing()) == {"index:bm25-build"}

    (sample_repo / "shop" / "extra.py").write_text("def extra_helper():\n    return 1\n")
    commit_all(sample_repo, "add a helper")
    later = build_index(sample_repo, "HEAD", config=config)
    assert shared.bm25(later) is not shared.bm25(first)
