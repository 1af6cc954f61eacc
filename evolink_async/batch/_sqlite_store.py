"""The one-machine batch's SQLite store (its journal): a file that makes a crashed batch resumable, never paid twice.

Per input, each step is committed before the next one starts: ``reserve`` (a fresh
``Idempotency-Key``), ``record_request`` (the exact body to send), the submit itself,
``record_submitted`` (the task id), ``record_outcome`` and ``record_downloads``. A resumed run reads
the rows back: ``needs_submit`` rows are submitted again with the *same* key and body (the server
answers a replay, not a new bill), ``needs_watch`` rows are re-attached by task id, and
``needs_download`` rows are only downloaded. Example::

    async with Journal(out_dir / "evolink-journal.sqlite3") as journal:
        await journal.ensure_meta({"model": "qwen-image-edit", "prompt": prompt})
        entry = await journal.reserve("cats/tom.png", request_fingerprint(body))
        if entry.needs_submit:
            wire_body = await journal.record_request(entry.key, json.dumps(body))
            task = await submit(wire_body, idempotency_key=entry.idempotency_key)
            await journal.record_submitted(entry.key, task.id)

Durability: WAL. A committed transaction survives the process being killed (-9 included) in every
mode, as the commit is in the WAL file (the OS page cache) when ``COMMIT`` returns. A power cut is
another matter: only an fsynced commit survives it. The default, ``synchronous="full"``, fsyncs
the WAL at every commit: the body (and the idempotency key before it) written before a submit and
the task id written after it survive a power cut; lose either and the resume pays again. It also
keeps SQLite's index of the log (``-shm``) from ever running ahead of what is on disk, which is
what lets a batch tell a log cut short by something else (``_evidence.wal_problem``).
``"submits"`` fsyncs only those two commits (the rows a resume redoes for free ride on the next
fsync): half the cost, but after a power cut the index may run ahead of the log over rows that
were never fsynced, and the batch then refuses a resume it could have done. ``"normal"`` fsyncs
none, for a caller who accepts losing the last commits to a power cut. benchmarks/journal.py
measures the three side by side (per input of five commits, on a shared 2-core VM's disk, two
runs: 4.9 / 2.9 / 1.2 ms and 21.8 / 11.1 / 3.0 ms), to be read against one HTTP submit per input.

Fingerprint policy: reserving a key with a different fingerprint (same input, new prompt or model)
raises :class:`JournalMismatchError` unless ``restart_on_mismatch=True``. Reusing the old task
would return results for a request the user no longer made; silently restarting would abandon a
task that may already be paid for. Both are the user's decision, so the default is to stop.

SQLite runs in worker threads via ``anyio.to_thread.run_sync`` behind a ``CapacityLimiter(1)``:
one connection, used by one thread at a time, and the event loop never waits on disk (invariant 6).
A ``threading.Lock`` held by every job, and by the close, backs the limiter up: a task cancelled
from outside AnyIO (``task.cancel()``, as an event loop's shutdown does) leaves the limiter while
its thread is still mid-``COMMIT``, and closing the connection under it crashes the interpreter.

A damaged file (not SQLite, malformed pages, rows this module could not have written) raises
:class:`JournalCorruptError` naming the file, at open (``PRAGMA quick_check``) or when read.
The file format (schema, migrations, rows, connecting) is ``_sqlite_file``; this module the steps.

Why one module of ~400 lines: every step of a run's journal shares its one connection, the lock
and the close that must wait for a running statement.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from types import TracebackType
from typing import Self, TypeVar

import anyio
import anyio.to_thread

from .._core.idempotency import new_idempotency_key
from ._entries import (  # fmt: skip
    OUTCOMES,
    Entry,
    EntryStatus,
    JournalCorruptError,
    JournalError,
    JournalMismatchError,
    JournalStateError,
)
from ._journal_uploads import JournalUpload, delete_upload, insert_upload, select_uploads
from ._sqlite_file import (  # fmt: skip
    COLUMNS,
    SCHEMA_VERSION,
    DamagedRow,
    Synchronous,
    connect,
    corruption,
    entry_of,
    fetchall,
    in_transaction,
    require,
    restart_row,
    select,
    update,
)

__all__ = ["SCHEMA_VERSION", "Journal"]

T = TypeVar("T")


class Journal:
    """An async handle on one journal file: ``async with Journal(path)`` or ``await Journal.open(path)``.

    Example::

        async with Journal("out/evolink-journal.sqlite3") as journal:
            print(await journal.counts())
    """

    def __init__(
        self, path: str | os.PathLike[str], *, synchronous: Synchronous = "full", busy_timeout: float = 30.0
    ) -> None:
        if synchronous not in ("full", "submits", "normal"):
            raise ValueError(f"synchronous must be 'full', 'submits' or 'normal', got {synchronous!r}")
        self.path = os.fspath(path)
        self._synchronous = synchronous.upper()
        self._busy_timeout = busy_timeout
        self._limiter = anyio.CapacityLimiter(1)
        self._in_use = threading.Lock()  # see the module's note: the limiter alone is not enough
        self._conn: sqlite3.Connection | None = None

    @classmethod
    async def open(
        cls, path: str | os.PathLike[str], *, synchronous: Synchronous = "full", busy_timeout: float = 30.0
    ) -> Self:
        """Open (creating if needed) and return a journal; the caller must ``await journal.aclose()``."""
        journal = cls(path, synchronous=synchronous, busy_timeout=busy_timeout)
        await journal.__aenter__()
        return journal

    async def __aenter__(self) -> Self:
        if self._conn is not None:
            raise JournalError("journal is already open")
        args = (self.path, self._synchronous, self._busy_timeout)
        self._conn = await anyio.to_thread.run_sync(connect, *args, limiter=self._limiter)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection, after any call still running. Idempotent."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):  # a cancelled close must still release the file
                await anyio.to_thread.run_sync(self._exclusively, conn.close, limiter=self._limiter)

    def _exclusively(self, job: Callable[[], T]) -> T:
        with self._in_use:
            return job()

    async def _run(self, work: Callable[[sqlite3.Connection], T], *, write: bool = False, redo_free: bool = False) -> T:
        """Run ``work`` in the journal's thread; ``write``: in a transaction, committed with an fsync
        unless ``redo_free`` (a resume redoes what a power cut takes of it at no cost) under "submits"."""
        conn = self._conn
        if conn is None:
            raise JournalError("journal is not open")
        level = None if self._synchronous != "SUBMITS" else "NORMAL" if redo_free else "FULL"
        job = functools.partial(in_transaction, conn, work, level) if write else functools.partial(work, conn)
        try:
            # Not abandoned on cancellation: anyio waits for the thread, so a cancelled caller never
            # leaves a write whose fate it cannot know running behind the next call.
            return await anyio.to_thread.run_sync(self._exclusively, job, limiter=self._limiter)
        except (sqlite3.Error, DamagedRow) as exc:  # e.g. "database is locked" by another process past busy_timeout
            if (damage := corruption(exc)) is not None:
                raise JournalCorruptError(self.path, damage) from None
            raise JournalError(f"journal {self.path}: {exc}") from exc

    async def reserve(self, key: str, fingerprint: str, *, restart_on_mismatch: bool = False) -> Entry:
        """Return ``key``'s entry, first creating it with a fresh idempotency key (committed) if new.

        An existing entry comes back as it is, whatever its status; act on ``needs_submit``,
        ``needs_watch``, ``needs_download``. A different ``fingerprint`` raises
        :class:`JournalMismatchError`, or restarts the entry if ``restart_on_mismatch``.
        """

        def work(conn: sqlite3.Connection) -> Entry:
            entry = select(conn, key)
            if entry is None:
                conn.execute(
                    "INSERT INTO entries (key, fingerprint, idempotency_key, status, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (key, fingerprint, new_idempotency_key(), EntryStatus.PENDING_SUBMIT.value, *[time.time()] * 2),
                )
                return require(conn, key)
            if entry.fingerprint == fingerprint:
                return entry
            if restart_on_mismatch:
                return restart_row(conn, key, fingerprint)
            raise JournalMismatchError(
                key, stored=entry.fingerprint, given=fingerprint,
                hint="the request for this input changed; use another journal, or restart the entry "
                "(abandoning its earlier task, which may already be paid for)",
            )  # fmt: skip

        return await self._run(work, write=True, redo_free=True)

    async def restart(self, key: str, *, fingerprint: str | None = None) -> Entry:
        """Start ``key`` afresh: a new idempotency key, no task, no results (e.g. to retry a failure).

        Restarting an entry whose task is still running abandons that task, which may be billed.
        """
        return await self._run(functools.partial(restart_row, key=key, fingerprint=fingerprint), write=True)

    async def record_request(self, key: str, body: str, *, upload: JournalUpload | None = None) -> str:
        """Store the exact JSON ``body`` about to be submitted, and return the body to send.

        A retry under the same idempotency key must send the same body, or the server answers
        ``idempotency_conflict``; so if a body is already stored (a resume), that one is returned.
        ``upload``, the file the body sends, is recorded in the same commit (one fsync, not two).
        """

        def work(conn: sqlite3.Connection) -> str:
            entry = require(conn, key)
            if upload is not None:  # recorded whatever comes next: a stored file must be known to be deleted
                insert_upload(conn, key=upload.key, idempotency_key=upload.idempotency_key, file_id=upload.file_id,
                              file_url=upload.file_url)  # fmt: skip
            if entry.request_body is not None:
                return entry.request_body
            if not entry.needs_submit:
                raise JournalStateError(f"{key!r} is {entry.status}; its request can no longer change")
            update(conn, key, request_body=body)
            return body

        return await self._run(work, write=True)

    async def record_submitted(self, key: str, task_id: str) -> Entry:
        """Record the task id the server answered. Recording the same id again is a no-op."""
        if not task_id:
            raise ValueError("task_id must be a non-empty string")

        def work(conn: sqlite3.Connection) -> Entry:
            entry = require(conn, key)
            if entry.task_id == task_id:
                return entry
            if not entry.needs_submit:
                raise JournalStateError(f"{key!r} is {entry.status} (task {entry.task_id!r}); not taking {task_id!r}")
            owner = select(conn, task_id, column="task_id")
            if owner is not None:
                raise JournalStateError(f"task {task_id!r} already belongs to {owner.key!r}, not {key!r}")
            return update(conn, key, task_id=task_id, status=EntryStatus.SUBMITTED.value, submitted_at=time.time())

        return await self._run(work, write=True)

    async def record_outcome(
        self,
        key: str,
        status: EntryStatus | str,
        *,
        error_code: str | None = None,
        error_message: str | None = None,
        result_urls: Iterable[str] = (),
    ) -> Entry:
        """Record how the task (for ``submit_failed``: the submit) ended. Repeating an outcome is allowed.

        ``result_urls`` let a resume download without a query; they expire after 24 h, after
        which the caller queries ``task_id`` again.
        """
        new = EntryStatus(status)
        if new not in OUTCOMES:
            raise ValueError(f"status must be one of {sorted(OUTCOMES)}, got {new.value!r}")
        urls = json.dumps(list(result_urls))

        def work(conn: sqlite3.Connection) -> Entry:
            entry = require(conn, key)
            if entry.status is EntryStatus.DOWNLOADED and new is EntryStatus.COMPLETED:
                return entry  # a late duplicate (webhook after poll): the results are saved already
            ready = entry.needs_submit if new is EntryStatus.SUBMIT_FAILED else entry.needs_watch
            if not (ready or entry.status is new):
                raise JournalStateError(f"{key!r} is {entry.status} (task {entry.task_id!r}); cannot become {new}")
            values = {"status": new.value, "error_code": error_code, "error_message": error_message}
            return update(conn, key, **values, result_urls=urls)

        return await self._run(work, write=True, redo_free=True)

    async def record_downloads(self, key: str, paths: Iterable[str | os.PathLike[str]]) -> Entry:
        """Record where the results were saved; the entry becomes ``downloaded``."""
        stored = json.dumps([os.fspath(p) for p in paths])

        def work(conn: sqlite3.Connection) -> Entry:
            entry = require(conn, key)
            if entry.status not in (EntryStatus.COMPLETED, EntryStatus.DOWNLOADED):
                raise JournalStateError(f"{key!r} is {entry.status}; only completed tasks have downloads")
            return update(conn, key, status=EntryStatus.DOWNLOADED.value, result_paths=stored)

        return await self._run(work, write=True, redo_free=True)

    async def record_found_results(self, key: str, fingerprint: str, paths: Iterable[str | os.PathLike[str]]) -> Entry:
        """Record a new ``key`` as done from results already in the output folder (no task, nothing submitted).

        For a journal started again after the old one was lost: the results on disk are the
        evidence that the input was paid for. An existing entry is returned as it is.
        """
        stored = json.dumps([os.fspath(p) for p in paths])

        def work(conn: sqlite3.Connection) -> Entry:
            if (entry := select(conn, key)) is not None:
                return entry
            conn.execute(
                "INSERT INTO entries (key, fingerprint, idempotency_key, status, result_paths, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, fingerprint, new_idempotency_key(), EntryStatus.DOWNLOADED.value, stored, *[time.time()] * 2),
            )
            return require(conn, key)

        return await self._run(work, write=True, redo_free=True)

    async def record_upload(self, key: str, idempotency_key: str, file_id: str, file_url: str) -> None:
        """Record a file uploaded for ``key`` under ``idempotency_key`` (before its submit), so a later
        run can reuse or delete it."""
        upload = functools.partial(insert_upload, key=key, idempotency_key=idempotency_key, file_id=file_id,
                                   file_url=file_url)  # fmt: skip
        await self._run(upload, write=True)

    async def forget_uploads(self, file_ids: Iterable[str]) -> None:
        """These files were deleted (or found gone): forget them, in one commit.

        A forget lost to a crash costs only a second delete (answered "gone") on the resume, so
        callers may gather them.
        """
        gone = list(file_ids)

        def work(conn: sqlite3.Connection) -> None:
            for file_id in gone:
                delete_upload(conn, file_id)

        if gone:
            await self._run(work, write=True, redo_free=True)

    async def uploads(self, key: str | None = None) -> list[JournalUpload]:
        """Files recorded as uploaded and not yet deleted (of ``key``, or of every input), oldest first."""
        return await self._run(functools.partial(select_uploads, key=key))

    async def get(self, key: str) -> Entry | None:
        """The entry for ``key``, or None."""
        return await self._run(functools.partial(select, key=key))

    async def find_task(self, task_id: str) -> Entry | None:
        """The entry that owns ``task_id`` (e.g. to route a webhook), or None."""
        return await self._run(functools.partial(select, key=task_id, column="task_id"))

    async def find_idempotency_key(self, idempotency_key: str) -> Entry | None:
        """The entry whose current idempotency key is ``idempotency_key`` (e.g. to match an upload), or None."""
        return await self._run(functools.partial(select, key=idempotency_key, column="idempotency_key"))

    async def entries(
        self, *, status: EntryStatus | str | Iterable[EntryStatus | str] | None = None, page_size: int = 500
    ) -> AsyncIterator[Entry]:
        """Yield entries in key order, one query per ``page_size`` rows: memory stays flat at 100k rows.

        Pages continue after the last key seen (not OFFSET), so rows updated during the
        iteration are neither skipped nor repeated.
        """
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        statuses = () if status is None else (status,) if isinstance(status, str) else tuple(status)
        wanted = tuple(EntryStatus(s).value for s in statuses)
        where = f" AND status IN ({', '.join('?' * len(wanted))})" if wanted else ""
        query = f"SELECT {COLUMNS} FROM entries WHERE key > ?{where} ORDER BY key LIMIT ?"  # noqa: S608
        after = ""
        while True:
            rows = await self._run(functools.partial(fetchall, sql=query, params=(after, *wanted, page_size)))
            for row in rows:
                yield entry_of(row)
            if len(rows) < page_size:
                return
            after = rows[-1][0]

    async def counts(self) -> dict[EntryStatus, int]:
        """How many entries are in each status (every status present, zeros included)."""
        sql = "SELECT status, count(*) FROM entries GROUP BY status"
        rows = await self._run(functools.partial(fetchall, sql=sql))
        try:
            return dict.fromkeys(EntryStatus, 0) | {EntryStatus(status): n for status, n in rows}
        except ValueError:
            raise JournalCorruptError(self.path, "a row has a status this module never writes") from None

    async def set_meta(self, name: str, value: str) -> None:
        """Store one batch-level value (command line, model, prompt ...), replacing any earlier one."""
        sql = "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)"
        await self._run(functools.partial(fetchall, sql=sql, params=(name, value)), write=True)

    async def get_meta(self, name: str) -> str | None:
        """One batch-level value, or None."""
        sql = "SELECT value FROM meta WHERE name = ?"
        rows = await self._run(functools.partial(fetchall, sql=sql, params=(name,)))
        return str(rows[0][0]) if rows else None

    async def ensure_meta(self, values: Mapping[str, str]) -> None:
        """Store ``values`` in a new journal; in a resumed one, check they equal what is stored.

        Raises :class:`JournalMismatchError` naming ``meta:<name>``, and then writes nothing.
        """

        def work(conn: sqlite3.Connection) -> None:
            for name, value in values.items():
                row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
                if row is None:
                    conn.execute("INSERT INTO meta (name, value) VALUES (?, ?)", (name, value))
                elif row[0] != value:
                    raise JournalMismatchError(
                        f"meta:{name}", stored=row[0], given=value,
                        hint="this journal belongs to another batch; resume that one or use another output folder",
                    )  # fmt: skip

        await self._run(work, write=True)
