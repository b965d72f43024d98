"""Where history records live: the index's own content-addressed store, keyed by commit SHA.

Records share the SQLite store (and its locking, permissions and corruption handling) with the
parse cache and the embeddings; ``--no-cache`` keeps them in memory for one run.
"""

from __future__ import annotations

from pathlib import Path

from indexer.history.build import History, HistoryConfig, Progress, build_history
from indexer.index import IndexConfig
from indexer.storage.store import MemoryStore, SQLiteStore


def open_history_store(config: IndexConfig) -> MemoryStore | SQLiteStore:
    """The store ``build_history`` reads and writes; close it when done."""
    if not config.use_cache:
        return MemoryStore()
    return SQLiteStore(config.resolved_index_dir())


def read_history(repo: str | Path, rev: str | None, index: IndexConfig, settings: HistoryConfig,
                 progress: Progress | None = None) -> History:
    """The history of ``repo`` at ``rev`` through the store of ``index``: what ``localize``, the hook and
    the server all read (the store is opened and closed here)."""
    store = open_history_store(index)
    try:
        return build_history(repo, rev, store, settings, progress)
    finally:
        store.close()
