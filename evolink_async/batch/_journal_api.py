"""One journal interface, two stores: the embedded SQLite file (one machine, the default) and
PostgreSQL (a fleet of workers on many machines).

Both hold the same facts per input (key, request, idempotency key written before the submit, task
id after it, status, result URLs and files); :class:`JournalStore` is what they share. The fleet's
claims and leases exist only in PostgreSQL (:class:`~evolink_async.batch.PgJournal`).

>>> journal = await open_journal("out/evolink-journal.sqlite3")      # a Journal
>>> journal = await open_journal("postgresql://db.internal/edits")   # a PgJournal (needs asyncpg)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ._entries import Entry, EntryStatus
from ._pg_url import check_postgres_url, is_postgres_url, shown_url

if TYPE_CHECKING:
    from ._pg_store import PgJournal
    from ._sqlite_store import Journal

__all__ = ["JournalStore", "check_postgres_url", "is_postgres_url", "open_journal", "shown_url"]


class JournalStore(Protocol):
    """What every journal store answers (``Journal`` and ``PgJournal`` both satisfy it)."""

    async def get(self, key: str) -> Entry | None: ...

    async def find_task(self, task_id: str) -> Entry | None: ...

    async def counts(self) -> dict[EntryStatus, int]: ...

    async def get_meta(self, name: str) -> str | None: ...

    async def set_meta(self, name: str, value: str) -> None: ...

    async def ensure_meta(self, values: Mapping[str, str]) -> None: ...

    async def aclose(self) -> None: ...


async def open_journal(target: str | os.PathLike[str], **options: Any) -> Journal | PgJournal:
    """Open the journal ``target`` names: a PostgreSQL URL, else an SQLite file path.

    asyncpg is imported only for a PostgreSQL URL; the caller must ``await journal.aclose()``.
    """
    if is_postgres_url(target):
        from ._pg_store import PgJournal

        return await PgJournal.open(str(target), **options)
    from ._sqlite_store import Journal

    return await Journal.open(target, **options)


if TYPE_CHECKING:  # mypy proves both stores answer the interface

    def _both_stores_fit(sqlite: Journal, postgres: PgJournal) -> tuple[JournalStore, JournalStore]:
        return sqlite, postgres
