"""The content-addressed cache behind every index.

Two tables, two keys, chosen by measurement on SWE-bench base commits:
- parsed chunks are keyed by the file's git blob SHA (plus path, chunker version and
  language), because parsing is per file;
- embeddings are keyed by a hash of the chunk's own text plus the model
  identity, because an edit elsewhere in a file leaves most chunks' text
  unchanged (about 72% reuse, against 25-33% when keyed by blob).

SQLite gives atomic transactions and safe concurrent access from several
processes. A store that is not a database, has the wrong schema, or returns a
malformed row is never trusted: rows are validated when read (vectors must be
finite) and a broken database file is moved aside and rebuilt, with a message
saying so. Errors of the environment (disk full, I/O error, permissions, locks)
say nothing about the data: they raise :class:`StoreAccessError` and the store
stays where it is.
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

from indexer.errors import StoreAccessError, StoreError
from indexer.storage.private import make_private_dir, touch_private_file

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_BATCH = 500
_TABLES = frozenset({"meta", "parsed", "embeddings"})

# SQLite primary result codes (https://sqlite.org/rescode.html): the file itself is broken...
_CORRUPTION_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB
# ...or the environment is: PERM, BUSY, LOCKED, NOMEM, READONLY, INTERRUPT, IOERR, FULL, CANTOPEN,
# PROTOCOL, NOLFS, AUTH.
_ENVIRONMENT_CODES = frozenset({3, 5, 6, 7, 8, 9, 10, 13, 14, 15, 22, 23})
# The same codes by message, for errors raised without one.
_CODES_BY_MESSAGE = (
    ("file is not a database", 26),
    ("database disk image is malformed", 11),
    ("disk i/o error", 10),
    ("database or disk is full", 13),
    ("unable to open database file", 14),
    ("readonly database", 8),
    ("database is locked", 5),
    ("database table is locked", 6),
    ("out of memory", 7),
)


def _result_code(exc: sqlite3.DatabaseError) -> int | None:
    """SQLite's primary result code for ``exc``, from the exception or else its message."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF
    message = str(exc).lower()
    return next((code for needle, code in _CODES_BY_MESSAGE if needle in message), None)


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
        self._commits: dict[str, bytes] = {}

    def get_parsed(self, keys: Sequence[str]) -> dict[str, ParsedBlob]:
        return {k: self._parsed[k] for k in keys if k in self._parsed}

    def put_parsed(self, items: Iterable[tuple[str, ParsedBlob]]) -> None:
        self._parsed.update(items)

    def get_commits(self, keys: Sequence[str]) -> dict[str, bytes]:
        return {k: self._commits[k] for k in keys if k in self._commits}

    def put_commits(self, items: Iterable[tuple[str, bytes]]) -> None:
        self._commits.update(items)

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
            make_private_dir(directory)
        except OSError as exc:
            raise StoreAccessError(f"cannot create index directory {directory}: {exc}") from exc
        self._conn = self._open_or_rebuild()

    def _connect(self) -> sqlite3.Connection:
        try:
            touch_private_file(self.path)  # SQLite would create it 0644; its WAL files copy its mode
        except OSError as exc:
            raise StoreAccessError(f"cannot create index store {self.path}: {exc}") from exc
        conn = sqlite3.connect(self.path, timeout=120, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        # History records came after schema 1; a store from before gains the table without a rebuild.
        conn.execute("CREATE TABLE IF NOT EXISTS commits (key TEXT PRIMARY KEY, data BLOB NOT NULL)")
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
            self._raise_unless_corrupt(exc)
            log.warning("index store %s is corrupt (%s): moving it aside and rebuilding", self.path, exc)
        return self._rebuild()

    def _rebuild(self) -> sqlite3.Connection:
        self._move_aside()
        try:
            return self._connect()
        except (sqlite3.DatabaseError, _SchemaMismatch) as exc:
            raise StoreError(f"cannot create index store at {self.path}: {exc}") from exc

    def _raise_unless_corrupt(self, exc: sqlite3.DatabaseError) -> None:
        """Only a broken file may be moved aside; any other error leaves the shared cache in place."""
        if not self._is_corrupt(exc):
            raise StoreAccessError(f"cannot use index store {self.path} ({exc}); its data is left in place") from exc

    def _is_corrupt(self, exc: sqlite3.DatabaseError) -> bool:
        """SQLite's result code decides; an error that names no cause is judged by a quick_check."""
        code = _result_code(exc)
        if code in _CORRUPTION_CODES:
            return True
        if code in _ENVIRONMENT_CODES:
            return False
        return self._fails_check()

    def _fails_check(self) -> bool:
        """SQLite's own verdict on a store whose error names no cause: quick_check and the tables."""
        try:
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=120)
            try:
                verdict = conn.execute("PRAGMA quick_check").fetchone()
                tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            return _result_code(exc) in _CORRUPTION_CODES
        return verdict != ("ok",) or not _TABLES <= tables

    def _move_aside(self) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            victim = Path(str(self.path) + suffix)
            try:
                if victim.exists():
                    victim.replace(victim.with_name(f"{victim.name}.broken-{stamp}"))
            except OSError as exc:
                raise StoreError(f"cannot move the corrupt index store {victim} aside: {exc}") from exc

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        self._raise_unless_corrupt(exc)
        log.warning("index store %s failed while reading (%s): rebuilding it", self.path, exc)
        self._conn.close()
        self._conn = self._rebuild()

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

    def get_commits(self, keys: Sequence[str]) -> dict[str, bytes]:
        """History records (:mod:`indexer.history`) by key: content-addressed by commit SHA, like blobs."""
        return dict(self._select("SELECT key, data FROM commits WHERE key IN ({})", keys))

    def put_commits(self, items: Iterable[tuple[str, bytes]]) -> None:
        self._write("INSERT OR REPLACE INTO commits VALUES (?, ?)", list(items))

    def get_embeddings(self, keys: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        """Vectors of the right size and finite only: a NaN row makes FAISS return no hits at all."""
        found: dict[str, np.ndarray] = {}
        non_finite = 0
        for key, stored_dim, blob in self._select("SELECT key, dim, vec FROM embeddings WHERE key IN ({})", keys):
            if stored_dim != dim or not isinstance(blob, bytes) or len(blob) != dim * 4:
                continue
            vector = np.frombuffer(blob, dtype=np.float32)
            if np.isfinite(vector).all():
                found[key] = vector
            else:
                non_finite += 1
        if non_finite:
            log.warning("index store %s holds %d non-finite embeddings: embedding them again", self.path, non_finite)
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
