"""One journal interface, two stores: the embedded SQLite file (one machine, the default) and
PostgreSQL (a fleet of workers on many machines).

Both hold the same facts per input (key, request, idempotency key written before the submit, task
id after it, status, result URLs and files); :class:`JournalStore` is what they share, and what
the parts of the pipeline that both a one-machine batch and a fleet worker run (uploads, status,
export) use. The steps of an input differ by design: a one-machine run writes them plainly
(:class:`RunJournal`, the SQLite store), a fleet worker fenced by its lease's epoch (the fleet's
claims and leases exist only in PostgreSQL, :class:`~evolink_async.batch.PgJournal`).

>>> journal = await open_journal("out/evolink-journal.sqlite3")      # a Journal
>>> journal = await open_journal("postgresql://db.internal/edits")   # a PgJournal (needs asyncpg)
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ._entries import Entry, EntryStatus
from ._journal_uploads import JournalUpload
from ._pg_url import check_postgres_url, is_postgres_url, shown_url

if TYPE_CHECKING:
    from ._pg_store import PgJournal
    from ._sqlite_store import Journal

__all__ = ["JournalStore", "RunJournal", "check_postgres_url", "is_postgres_url", "open_journal", "shown_url"]


class JournalStore(Protocol):
    """What every journal store answers (``Journal`` and ``PgJournal`` both satisfy it)."""

    async def get(self, key: str) -> Entry | None: ...

    async def find_task(self, task_id: str) -> Entry | None: ...

    async def counts(self) -> dict[EntryStatus, int]: ...

    async def get_meta(self, name: str) -> str | None: ...

    async def set_meta(self, name: str, value: str) -> None: ...

    async def ensure_meta(self, values: Mapping[str, str]) -> None: ...

    async def find_idempotency_key(self, idempotency_key: str) -> Entry | None: ...

    async def uploads(self, key: str | None = None) -> list[JournalUpload]:
        """Files recorded as uploaded for inputs and not known to be deleted (of ``key``, or all)."""
        ...

    async def record_upload(self, key: str, idempotency_key: str, file_id: str, file_url: str) -> None: ...

    async def forget_uploads(self, file_ids: Iterable[str]) -> None: ...

    async def aclose(self) -> None: ...


class RunJournal(JournalStore, Protocol):
    """The steps of an input in a one-machine run (each committed before the next starts)."""

    async def reserve(self, key: str, fingerprint: str, *, restart_on_mismatch: bool = False) -> Entry: ...

    async def restart(self, key: str, *, fingerprint: str | None = None) -> Entry: ...

    async def record_request(self, key: str, body: str, *, upload: JournalUpload | None = None) -> str: ...

    async def record_submitted(self, key: str, task_id: str) -> Entry: ...

    async def record_outcome(
        self, key: str, status: EntryStatus | str, *, error_code: str | None = None,
        error_message: str | None = None, result_urls: Iterable[str] = (),
    ) -> Entry: ...  # fmt: skip

    async def record_downloads(self, key: str, paths: Iterable[str | os.PathLike[str]]) -> Entry: ...

    async def record_found_results(self, key: str, fingerprint: str,
                                   paths: Iterable[str | os.PathLike[str]]) -> Entry: ...  # fmt: skip

    def entries(self, *, status: EntryStatus | str | Iterable[EntryStatus | str] | None = None,
                page_size: int = 500) -> AsyncIterator[Entry]: ...  # fmt: skip


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

    def _both_stores_fit(sqlite: Journal, postgres: PgJournal) -> tuple[JournalStore, JournalStore, RunJournal]:
        return sqlite, postgres, sqlite
