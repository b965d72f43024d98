"""#26 case 2: only real corruption moves the shared store aside; other SQLite errors leave it in place."""

import os
import sqlite3
from pathlib import Path

import pytest

from indexer.errors import StoreAccessError, StoreError
from indexer.index import IndexConfig, build_index
from indexer.storage.store import SQLiteStore

from tests.conftest import HashingEncoder

_REAL_CONNECT = sqlite3.connect

ENVIRONMENT_ERRORS = [
    "disk I/O error",
    "database or disk is full",
    "unable to open database file",
    "attempt to write a readonly database",
    "database is locked",
]


def _build(repo, index_dir):
    return build_index(repo, encoder=HashingEncoder(), config=IndexConfig(index_dir=index_dir))


class _FaultyConnection:
    """A real connection whose statements starting with ``trigger`` fail with ``error``."""

    def __init__(self, conn: sqlite3.Connection, trigger: str, error: sqlite3.Error) -> None:
        self._conn, self._trigger, self._error = conn, trigger, error

    def execute(self, sql, *args):
        if sql.startswith(self._trigger):
            raise self._error
        return self._conn.execute(sql, *args)

    def executemany(self, sql, rows):
        return self._conn.executemany(sql, rows)

    def close(self):
        self._conn.close()


def _inject(monkeypatch, trigger: str, error: sqlite3.Error) -> None:
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: _FaultyConnection(_REAL_CONNECT(*a, **k), trigger, error))


def _error(message: str, code: int | None = None) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    if code is not None:
        error.sqlite_errorcode = code
    return error


def _assert_left_in_place(index_dir: Path) -> None:
    assert (index_dir / SQLiteStore.FILENAME).exists()
    assert not list(index_dir.glob("*.broken-*"))


@pytest.mark.parametrize("message", ENVIRONMENT_ERRORS)
@pytest.mark.parametrize("trigger", ["PRAGMA journal_mode", "SELECT key, data FROM parsed"])
def test_environment_errors_are_one_line_and_leave_the_store_in_place(
    trigger, message, sample_repo, index_dir, monkeypatch
):
    _build(sample_repo, index_dir)
    _inject(monkeypatch, trigger, _error(message))
    with pytest.raises(StoreAccessError, match="its data is left in place") as failure:
        _build(sample_repo, index_dir)
    assert message in str(failure.value) and "\n" not in str(failure.value)
    monkeypatch.undo()
    _assert_left_in_place(index_dir)
    assert _build(sample_repo, index_dir).stats.parsed_files == 0  # the healthy cache is still used


@pytest.mark.parametrize("code", [10, 13, 14, 8, 5, 10 | (3 << 8)])  # IOERR, FULL, CANTOPEN, READONLY, BUSY, IOERR_WRITE
def test_environment_errors_are_recognized_by_their_result_code(code, sample_repo, index_dir, monkeypatch):
    _build(sample_repo, index_dir)
    _inject(monkeypatch, "SELECT key, data FROM parsed", _error("an error in other words", code))
    with pytest.raises(StoreAccessError):
        _build(sample_repo, index_dir)
    monkeypatch.undo()
    _assert_left_in_place(index_dir)


def test_an_unexplained_error_on_a_store_that_passes_its_check_leaves_it_in_place(sample_repo, index_dir, monkeypatch):
    _build(sample_repo, index_dir)
    _inject(monkeypatch, "SELECT key, data FROM parsed", _error("something unexpected"))
    with pytest.raises(StoreAccessError):
        _build(sample_repo, index_dir)
    monkeypatch.undo()
    _assert_left_in_place(index_dir)


def test_a_store_missing_its_tables_is_wrong_schema_and_rebuilt(sample_repo, index_dir, caplog):
    _build(sample_repo, index_dir)
    with sqlite3.connect(index_dir / SQLiteStore.FILENAME) as conn:
        conn.execute("DROP TABLE parsed")
    with caplog.at_level("WARNING"):
        index = _build(sample_repo, index_dir)
    assert "no such table: parsed" in caplog.text and list(index_dir.glob("*.broken-*"))
    assert index.stats.parsed_files == index.stats.files
    assert _build(sample_repo, index_dir).stats.parsed_files == 0


def test_a_corrupt_store_that_cannot_be_moved_aside_is_a_one_line_error(sample_repo, index_dir, monkeypatch):
    """On a read-only index dir the rename in ``_move_aside`` leaked a PermissionError traceback."""
    _build(sample_repo, index_dir)
    for suffix in ("-wal", "-shm"):
        (index_dir / (SQLiteStore.FILENAME + suffix)).unlink(missing_ok=True)
    (index_dir / SQLiteStore.FILENAME).write_bytes(b"this is not a database" * 100)

    def refuse(self, target):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "replace", refuse)
    with pytest.raises(StoreError, match="cannot move the corrupt index store .* aside: .*Permission denied"):
        _build(sample_repo, index_dir)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores directory permissions")
def test_a_read_only_index_dir_never_leaks_a_traceback(sample_repo, index_dir):
    _build(sample_repo, index_dir)
    index_dir.chmod(0o500)
    try:
        try:
            _build(sample_repo, index_dir)
        except StoreError as exc:
            assert "\n" not in str(exc)
        _assert_left_in_place(index_dir)
    finally:
        index_dir.chmod(0o700)
    assert _build(sample_repo, index_dir).stats.parsed_files == 0
