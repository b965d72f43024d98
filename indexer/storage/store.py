"""The content-addressed cache behind every index.

Two tables, two keys, chosen by measurement on SWE-bench base commits:
- parsed chunks are keyed by the file's git blob SHA (plus path, chunker version and
  language), because parsing is per file;
- embeddings are keyed by a hash of the chunk's own text plus the model
  identity, because an edit elsewhere in a file leaves most chunks' text
  unchanged (about 72% reuse, against 25-33% when keyed by blob).

SQLite gives atomic transactions and safe concurrent access from several
processes. A store that is not a database, has the wrong schema, or returns a
malformed row is never trusted: rows are validated when read and a broken
database file is moved aside and rebuilt, with a message saying so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Protocol, Sequence

import numpy as np

from indexer.errors import StoreError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_BATCH = 500


@dataclass(frozen=True)
class ParsedBlob:
    """What the chunker produced for one file version; the path is supplied when chunks are assembled."""

    status: str  # "ok", or why the file was skipped: "binary", "minified", ...
    chunks: list[dict]  # Chunk fields minus path, plus "terms" for BM25

    def encode(self) -> bytes:
        return zlib.compress(json.dumps({"status": self.status, "chunks": self.chunks}).encode(), 3)

    @classmethod
    def decode(cls, data: bytes) -> "ParsedBlob":
        payload = json.loads(zlib.decompress(data))
        return cls(status=str(payload["status"]), chunks=list(payload["chunks"]))


def embedding_key(model_identity: str, text: str) -> str:
    return hashlib.sha256(f"{model_identity}\0{text}".encode("utf-8", errors="surrogatepass")).hexdigest()[:40]


class ChunkStore(Protocol):
    def get_parsed(self, keys: Sequence[str]) -> dict[str, ParsedBlob]: ...

    def put_parsed(self, items: Iterable[tuple[str, ParsedBlob]]) -> None: ...

    def get_embeddings(self, keys: Sequence[str], dim: int) -> dict[str, np.ndarray]: ...

    def put_embeddings(self, keys: Sequence[str], vectors: np.ndarray) -> None: ...

    def close(self) -> None: ...


class MemoryStore:
    """The store behind ``--no-cache``: same interface, nothing read from or written to disk."""

    def __init__(self) -> None:
        self._parsed: dict[str, ParsedBlob] = {}
        self._vectors: dict[str, np.ndarray] = {}

    def get_parsed(self, keys: Sequence[str]) -> dict[str, ParsedBlob]:
        return {k: self._parsed[k] for k in keys if k in self._parsed}

    def put_parsed(self, items: Iterable[tuple[str, ParsedBlob]]) -> None:
        self._parsed.update(items)

    def get_embeddings(self, keys: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        return {k: v for k in keys if (v := self._vectors.get(k)) is not None and v.shape == (dim,)}

    def put_embeddings(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        for key, vector in zip(keys, vectors):
            self._vectors[key] = np.asarray(vector, dtype=np.float32)

    def close(self) -> None:
        pass


class SQLiteStore:
    """The persistent cache, one database file shared by every repository under an index dir."""

    FILENAME = "cache.sqlite3"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / self.FILENAME
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create index directory {directory}: {exc}") from exc
        self._conn = self._open_or_rebuild()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=120, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            conn.execute("BEGIN IMMEDIATE")
            # Re-check inside the write lock: another process may have just created it.
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS parsed (key TEXT PRIMARY KEY, data BLOB NOT NULL)"
                )
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, dim INTEGER NOT NULL, vec BLOB NOT NULL)"
                )
                conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('created', ?)", (str(time.time()),))
            conn.execute("COMMIT")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row[0] != str(SCHEMA_VERSION):
            conn.close()
            raise _SchemaMismatch(row[0])
        return conn

    def _open_or_rebuild(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except _SchemaMismatch as exc:
            log.warning("index store %s has schema v%s, this localizer uses v%s: rebuilding it", self.path, exc.found, SCHEMA_VERSION)
        except sqlite3.DatabaseError as exc:
            log.warning("index store %s is corrupt (%s): moving it aside and rebuilding", self.path, exc)
        self._move_aside()
        try:
            return self._connect()
        except (sqlite3.DatabaseError, _SchemaMismatch) as exc:
            raise StoreError(f"cannot create index store at {self.path}: {exc}") from exc

    def _move_aside(self) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            victim = Path(str(self.path) + suffix)
            if victim.exists():
                victim.replace(victim.with_name(f"{victim.name}.broken-{stamp}"))

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        log.warning("index store %s failed while reading (%s): rebuilding it", self.path, exc)
        self._conn.close()
        self._move_aside()
        self._conn = self._connect()

    def _select(self, sql: str, keys: Sequence[str]) -> list[tuple]:
        rows: list[tuple] = []
        for start in range(0, len(keys), _BATCH):
            batch = list(keys[start : start + _BATCH])
            placeholders = ",".join("?" * len(batch))
            try:
                rows.extend(self._conn.execute(sql.format(placeholders), batch).fetchall())
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
                return []
        return rows

    def get_parsed(self, keys: Sequence[str]) -> dict[str, ParsedBlob]:
        found: dict[str, ParsedBlob] = {}
        for key, data in self._select("SELECT key, data FROM parsed WHERE key IN ({})", keys):
            try:
                found[key] = ParsedBlob.decode(data)
            except (zlib.error, ValueError, KeyError, TypeError):
                log.warning("discarding a corrupt parse-cache entry %s", key)
        return found

    def put_parsed(self, items: Iterable[tuple[str, ParsedBlob]]) -> None:
        self._write("INSERT OR REPLACE INTO parsed VALUES (?, ?)", [(k, v.encode()) for k, v in items])

    def get_embeddings(self, keys: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for key, stored_dim, blob in self._select("SELECT key, dim, vec FROM embeddings WHERE key IN ({})", keys):
            if stored_dim == dim and isinstance(blob, bytes) and len(blob) == dim * 4:
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_embeddings(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = int(vectors.shape[1]) if vectors.ndim == 2 else 0
        self._write(
            "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
            [(k, dim, v.tobytes()) for k, v in zip(keys, vectors)],
        )

    def _write(self, sql: str, rows: list[tuple]) -> None:
        if not rows:
            return
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(sql, rows)
            self._conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.DatabaseError:
                pass
            raise StoreError(f"cannot write to index store {self.path}: {exc}") from exc

    def close(self) -> None:
        self._conn.close()


class _SchemaMismatch(Exception):
    def __init__(self, found: str) -> None:
        super().__init__(found)
        self.found = found
