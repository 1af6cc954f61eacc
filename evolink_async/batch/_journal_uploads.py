"""The journal's record of uploaded files (schema 2): which input each live file belongs to.

A folder batch uploads one file per input and must delete it once the input's task has ended; a run
killed in between leaves files alive that only the journal knows about. Each upload's ``file_id`` is
committed here right after the Files API answers, before the submit, and removed once the file is
deleted, so a resumed run deletes what an earlier one left behind and reuses (never re-uploads) the
file of an input that still has one. Plain functions on a connection: ``Journal`` runs them off the
event loop like its other statements.
"""

from __future__ import annotations

import sqlite3
import time

import attrs

__all__ = ["UPLOADS_SCHEMA", "JournalUpload", "delete_upload", "insert_upload", "select_uploads"]

UPLOADS_SCHEMA = """
CREATE TABLE uploads (
    file_id TEXT PRIMARY KEY, key TEXT NOT NULL, idempotency_key TEXT NOT NULL, file_url TEXT NOT NULL,
    created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX uploads_by_key ON uploads (key);
"""


@attrs.frozen(kw_only=True)
class JournalUpload:
    """A file uploaded for input ``key`` (under its ``idempotency_key`` then) and not known to be deleted.

    An input started afresh (its content changed, ``--retry-failed``) has a new idempotency key: a
    file of its earlier key is not its current image.
    """

    key: str
    idempotency_key: str
    file_id: str
    file_url: str


def insert_upload(conn: sqlite3.Connection, *, key: str, idempotency_key: str, file_id: str, file_url: str) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO uploads (file_id, key, idempotency_key, file_url, created_at) VALUES (?, ?, ?, ?, ?)",
        (file_id, key, idempotency_key, file_url, time.time()),
    )


def delete_upload(conn: sqlite3.Connection, file_id: str) -> None:
    conn.execute("DELETE FROM uploads WHERE file_id = ?", (file_id,))


def select_uploads(conn: sqlite3.Connection, key: str | None = None) -> list[JournalUpload]:
    columns = "key, idempotency_key, file_id, file_url"
    if key is None:
        rows = conn.execute(f"SELECT {columns} FROM uploads ORDER BY created_at").fetchall()  # noqa: S608
    else:
        rows = conn.execute(f"SELECT {columns} FROM uploads WHERE key = ? ORDER BY created_at",  # noqa: S608
                            (key,)).fetchall()  # fmt: skip
    return [JournalUpload(key=k, idempotency_key=i, file_id=f, file_url=u) for k, i, f, u in rows]
