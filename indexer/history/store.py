"""Where history records live: the index's own content-addressed store, keyed by commit SHA.

Records share the SQLite store (and its locking, permissions and corruption handling) with the
parse cache and the embeddings; ``--no-cache`` keeps them in memory for one run.
"""

from __future__ import annotations

from indexer.index import IndexConfig
from indexer.storage.store import MemoryStore, SQLiteStore


def open_history_store(config: IndexConfig) -> MemoryStore | SQLiteStore:
    """The store ``build_history`` reads and writes; close it when done."""
    if not config.use_cache:
        return MemoryStore()
    return SQLiteStore(config.resolved_index_dir())
