"""What a new snapshot of a repository takes over from the previous one it replaces.

A warm server (``localize serve``) refreshes the same repository again and again, and a refresh
after a one-file edit should cost that file, not the repository: on sympy, re-reading every
file's chunks from the cache took 0.9 s and rebuilding BM25 another 0.9 s, against a 2 s
edit-to-answer target (issue #27). A file whose parse key (blob SHA, path, chunker settings) is
unchanged has the same chunks, terms and vectors, so they are carried over by row; only the
rest is read, parsed or embedded. These are the pure row mappings; :func:`indexer.index.build_index`
and the BM25 retriever apply them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FileSpan:
    """Where one file's chunks sit in a snapshot: rows ``start:stop``, parsed from the bytes ``key`` names."""

    key: str
    start: int
    stop: int


def carried_rows(previous: dict[str, FileSpan], current: dict[str, FileSpan], previous_rows: int) -> np.ndarray:
    """For each row of the previous snapshot, its row in the current one, or -1 when its file changed or went.

    A file is carried when the same path has the same parse key in both; its rows keep their order.
    """
    mapping = np.full(previous_rows, -1, dtype=np.int64)
    for path, span in current.items():
        old = previous.get(path)
        if old is not None and old.key == span.key and old.stop - old.start == span.stop - span.start:
            mapping[old.start:old.stop] = np.arange(span.start, span.stop)
    return mapping


def row_pairs(mapping: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(new_rows, old_rows)`` of the carried rows of a :func:`carried_rows` mapping."""
    old_rows = np.flatnonzero(mapping >= 0)
    return mapping[old_rows], old_rows
