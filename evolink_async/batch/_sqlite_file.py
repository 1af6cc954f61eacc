"""The SQLite journal's file: its schema and migrations, how a row reads back as an :class:`Entry`
(a damaged one named as such), and the connection and transaction rules. ``Journal``
(``_sqlite_store``) holds the steps of a batch; this module the file format beneath them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from .._core.idempotency import new_idempotency_key
from ._entries import Entry, EntryStatus, JournalCorruptError, JournalError
from ._journal_uploads import UPLOADS_SCHEMA

__all__ = [
    "COLUMNS", "SCHEMA_VERSION", "DamagedRow", "Synchronous", "connect", "corruption", "entry_of", "fetchall",
    "in_transaction", "require", "restart_row", "select", "update",
]  # fmt: skip

T = TypeVar("T")
SCHEMA_VERSION = 2  # 2: the uploads table
Synchronous = Literal["full", "submits", "normal"]


_SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE entries (
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, idempotency_key TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL, task_id TEXT, request_body TEXT, error_code TEXT, error_message TEXT,
    result_urls TEXT NOT NULL DEFAULT '[]', result_paths TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL, updated_at REAL NOT NULL, submitted_at REAL
);
CREATE INDEX entries_by_status ON entries (status, key);
-- Two inputs never share a task: that would count one paid task twice.
CREATE UNIQUE INDEX entries_by_task ON entries (task_id) WHERE task_id IS NOT NULL;
"""
COLUMNS = (
    "key, fingerprint, idempotency_key, status, task_id, request_body, error_code, error_message,"
    " result_urls, result_paths, created_at, updated_at, submitted_at"
)


class DamagedRow(Exception):
    """A row whose values cannot be what this module wrote (overwritten bytes): the file is damaged."""


def entry_of(row: Sequence[Any]) -> Entry:
    try:
        return Entry(
            key=row[0], fingerprint=row[1], idempotency_key=row[2], status=EntryStatus(row[3]), task_id=row[4],
            request_body=row[5], error_code=row[6], error_message=row[7], result_urls=tuple(json.loads(row[8])),
            result_paths=tuple(json.loads(row[9])), created_at=row[10], updated_at=row[11], submitted_at=row[12],
        )  # fmt: skip
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise DamagedRow(f"the row of {str(row[0])[:200]!r} cannot be read ({type(exc).__name__})") from None


def corruption(exc: BaseException) -> str | None:
    """What is damaged, if ``exc`` says the file is (not merely busy, locked or read-only), else None."""
    if isinstance(exc, DamagedRow):
        return str(exc)
    # SQLITE_CORRUPT and SQLITE_NOTADB come as DatabaseError itself; busy, locked, I/O as its subclasses.
    if type(exc) is sqlite3.DatabaseError:
        return str(exc)
    if isinstance(exc, sqlite3.OperationalError) and str(exc).startswith("Could not decode"):
        return "a text value is not UTF-8"
    return None


def fetchall(conn: sqlite3.Connection, *, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    return conn.execute(sql, params).fetchall()


def select(
    conn: sqlite3.Connection, key: str, *, column: Literal["key", "task_id", "idempotency_key"] = "key"
) -> Entry | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM entries WHERE {column} = ?", (key,)).fetchone()  # noqa: S608
    return None if row is None else entry_of(row)


def require(conn: sqlite3.Connection, key: str) -> Entry:
    entry = select(conn, key)
    if entry is None:
        raise JournalError(f"no journal entry for {key!r}; reserve it first")
    return entry


def update(conn: sqlite3.Connection, key: str, **values: Any) -> Entry:
    values["updated_at"] = time.time()
    assignments = ", ".join(f"{name} = ?" for name in values)  # column names are ours, never the caller's
    conn.execute(f"UPDATE entries SET {assignments} WHERE key = ?", (*values.values(), key))  # noqa: S608
    return require(conn, key)


def restart_row(conn: sqlite3.Connection, key: str, fingerprint: str | None) -> Entry:
    entry = require(conn, key)
    return update(
        conn, key, fingerprint=fingerprint or entry.fingerprint, idempotency_key=new_idempotency_key(),
        status=EntryStatus.PENDING_SUBMIT.value, task_id=None, request_body=None, error_code=None,
        error_message=None, result_urls="[]", result_paths="[]", submitted_at=None,
    )  # fmt: skip


def in_transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T], level: str | None = None) -> T:
    if level is not None:  # this commit's durability (``synchronous="submits"``); applies from the next COMMIT
        conn.execute(f"PRAGMA synchronous = {level}")
    # IMMEDIATE takes the write lock up front: a read-then-write never meets SQLITE_BUSY half-way.
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise JournalError(f"journal schema {version} is newer than this evolink_async's ({SCHEMA_VERSION})")
    if version == 0:
        if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise JournalError("the file is an SQLite database, but not an evolink journal")
        for statement in filter(str.strip, _SCHEMA.split(";")):
            conn.execute(statement)
    if version < 2:  # in the same transaction: a journal of 0.x gains the table on its first resume
        for statement in filter(str.strip, UPLOADS_SCHEMA.split(";")):
            conn.execute(statement)
    if version < SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def connect(path: str, synchronous: str, busy_timeout: float) -> sqlite3.Connection:
    # check_same_thread=False: anyio may pick another worker thread per call; Journal's
    # CapacityLimiter(1) guarantees only one thread uses the connection at any moment.
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise JournalError(f"journal {path}: the file system refused WAL mode (got {mode!r})")
        conn.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'SUBMITS' else synchronous}")
        # A damaged page is found now, naming the file, not halfway through the batch. One
        # pass over the pages (benchmarks/journal.py measures it), once per run.
        verdict = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        if verdict != "ok":
            raise JournalCorruptError(path, " ".join(str(verdict).split()))
        in_transaction(conn, _migrate)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if (damage := corruption(exc)) is not None:
            raise JournalCorruptError(path, damage) from None
        raise JournalError(f"{path} is not a usable journal: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


