"""The PostgreSQL journal's foundation: the connection pool, meta and limits, planning, reads.

Everything here is a plain read or an idempotent load; the claim protocol, whose credit and
slot accounting must be read as one, is ``_pg_store.PgJournal`` (built on this class).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import attrs

from .._core.idempotency import new_idempotency_key
from ._entries import Entry, EntryStatus, JournalError, JournalMismatchError
from ._manifest import ManifestInput
from ._pg_schema import migrate

__all__ = ["Claim", "Claimed", "PgJournalBase", "PlanResult"]

_SCHEMES = ("postgresql://", "postgres://")

_COLUMNS = (
    "key, fingerprint, idempotency_key, status, task_id, request_body, error_code, error_message, result_urls,"
    " result_paths, extract(epoch FROM created_at), extract(epoch FROM updated_at),"
    " extract(epoch FROM submitted_at), line, submit_started_at IS NOT NULL"
)
@attrs.frozen(kw_only=True)
class Claimed:
    """A claimed input: its entry, its manifest line, and whether a submit had already begun."""

    entry: Entry
    line: str | None
    submit_started: bool


@attrs.frozen(kw_only=True)
class Claim:
    """What one claim gave this worker, and why it gave no more."""

    items: tuple[Claimed, ...]
    budget_exhausted: bool = False


@attrs.frozen(kw_only=True)
class PlanResult:
    """What a plan did: ``added`` new inputs, ``already`` planned before with identical lines."""

    inputs: int
    added: int
    already: int


def _entry(row: Sequence[Any]) -> Entry:
    return Entry(
        key=row[0], fingerprint=row[1], idempotency_key=row[2], status=EntryStatus(row[3]), task_id=row[4],
        request_body=row[5], error_code=row[6], error_message=row[7], result_urls=tuple(json.loads(row[8])),
        result_paths=tuple(json.loads(row[9])), created_at=float(row[10]), updated_at=float(row[11]),
        submitted_at=None if row[12] is None else float(row[12]),
    )  # fmt: skip


def _claimed(row: Sequence[Any]) -> Claimed:
    return Claimed(entry=_entry(row), line=row[13], submit_started=bool(row[14]))


class PgJournalBase:
    """The pool, meta, limits, planning and reads of :class:`~evolink_async.batch.PgJournal`."""

    def __init__(self, url: str, *, connections: int = 4, command_timeout: float = 30.0) -> None:
        if not url.startswith(_SCHEMES):
            raise ValueError("a PostgreSQL journal needs a postgresql:// URL")
        self.url = url
        self._connections = connections
        self._command_timeout = command_timeout
        self._pool: Any = None

    @classmethod
    async def open(cls, url: str, **options: Any) -> Self:
        journal = cls(url, **options)
        await journal.__aenter__()
        return journal

    async def __aenter__(self) -> Self:
        try:
            import asyncpg
        except ImportError:  # pragma: no cover - the extra is part of dev
            raise JournalError("a postgresql:// journal needs asyncpg: pip install 'evolink-async[postgres]'") from None
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=self._connections, command_timeout=self._command_timeout, timeout=15
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise JournalError(f"cannot connect to the journal: {exc}") from exc
        try:
            async with self._pool.acquire() as conn:
                await migrate(conn)
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await pool.close()
            except BaseException:
                pool.terminate()
                raise

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise JournalError("journal is not open")
        return self._pool

    # --- meta and limits ----------------------------------------------------------------------

    async def get_meta(self, name: str) -> str | None:
        value = await self.pool.fetchval("SELECT value FROM evolink_meta WHERE name = $1", name)
        return None if value is None else str(value)

    async def set_meta(self, name: str, value: str) -> None:
        await self.pool.execute(
            "INSERT INTO evolink_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = $2",
            name, value,
        )  # fmt: skip

    async def ensure_meta(self, values: Mapping[str, str]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            for name, value in values.items():
                await conn.execute(
                    "INSERT INTO evolink_meta (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING", name, value
                )
                stored = await conn.fetchval("SELECT value FROM evolink_meta WHERE name = $1", name)
                if stored != value:
                    raise JournalMismatchError(f"meta:{name}", stored=stored, given=value,
                                               hint="this journal belongs to another batch")  # fmt: skip

    async def set_limits(self, *, max_in_flight: int | None = None, max_credits: float | None = None) -> None:
        """Set the batch-wide bounds every worker's claims obey (a later call replaces them)."""
        if max_in_flight is not None:
            await self.pool.execute("UPDATE evolink_fleet SET max_in_flight = $1", max_in_flight)
        if max_credits is not None:
            await self.pool.execute("UPDATE evolink_fleet SET max_credits = $1", max_credits)

    async def limits(self) -> dict[str, Any]:
        row = await self.pool.fetchrow("SELECT max_in_flight, max_credits, credits_reserved FROM evolink_fleet")
        return dict(row)

    # --- planning -----------------------------------------------------------------------------

    async def plan(
        self, inputs: Iterable[ManifestInput], *, root: str | os.PathLike[str] | None = None, chunk: int = 1000
    ) -> PlanResult:
        """Load inputs once; re-planning identical lines is a no-op, a changed line raises (nothing loaded).

        One transaction: a refused plan leaves nothing behind, and two plans racing on the same
        keys wait for each other on the primary key, then find identical lines. ``root`` (where
        manifest paths live on the shared file system) is recorded for workers that give none.
        """
        total = added = 0
        async with self.pool.acquire() as conn, conn.transaction():
            if root is not None:
                await conn.execute("INSERT INTO evolink_meta (name, value) VALUES ('root', $1)"
                                   " ON CONFLICT (name) DO UPDATE SET value = $1", os.fspath(root))  # fmt: skip
            batch: list[ManifestInput] = []
            for item in inputs:
                batch.append(item)
                if len(batch) >= chunk:
                    added += await self._plan_chunk(conn, batch)
                    total += len(batch)
                    batch = []
            if batch:
                added += await self._plan_chunk(conn, batch)
                total += len(batch)
        return PlanResult(inputs=total, added=added, already=total - added)

    @staticmethod
    async def _plan_chunk(conn: Any, items: list[ManifestInput]) -> int:
        inserted = await conn.fetch(
            "INSERT INTO evolink_entries (key, fingerprint, line, idempotency_key, status, credits_estimate)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[])"
            " ON CONFLICT (key) DO NOTHING RETURNING key",
            [i.key for i in items], [i.fingerprint for i in items], [i.canonical() for i in items],
            [new_idempotency_key() for _ in items], [EntryStatus.PENDING_SUBMIT.value] * len(items),
            [i.credits_estimate for i in items],
        )  # fmt: skip
        new = {row[0] for row in inserted}
        if len(new) < len(items):
            old = [i for i in items if i.key not in new]
            rows = await conn.fetch("SELECT key, fingerprint, line FROM evolink_entries WHERE key = ANY($1::text[])",
                                    [i.key for i in old])  # fmt: skip
            stored = {row[0]: (row[1], row[2]) for row in rows}
            for item in old:
                fingerprint, line = stored[item.key]
                if fingerprint != item.fingerprint:
                    raise JournalMismatchError(item.key, stored=line or fingerprint, given=item.canonical(),
                                               hint="this input was planned with another request; give it a new "
                                               "key, or plan into another journal")  # fmt: skip
        return len(new)

    # --- reading ------------------------------------------------------------------------------

    async def get(self, key: str) -> Entry | None:
        row = await self.pool.fetchrow(f"SELECT {_COLUMNS} FROM evolink_entries WHERE key = $1", key)  # noqa: S608
        return None if row is None else _entry(row)

    async def find_task(self, task_id: str) -> Entry | None:
        row = await self.pool.fetchrow(f"SELECT {_COLUMNS} FROM evolink_entries WHERE task_id = $1", task_id)  # noqa: S608
        return None if row is None else _entry(row)

    async def counts(self) -> dict[EntryStatus, int]:
        rows = await self.pool.fetch("SELECT status, count(*) FROM evolink_entries GROUP BY status")
        return dict.fromkeys(EntryStatus, 0) | {EntryStatus(status): int(n) for status, n in rows}

    async def entries(self, *, page_size: int = 1000) -> AsyncIterator[dict[str, Any]]:
        """Every input's row as a dict, in plan order, one query per page (flat memory)."""
        after = 0
        while True:
            rows = await self.pool.fetch(
                "SELECT seq, key, status, task_id, error_code, error_message, result_urls, result_paths,"
                " credits_reserved, line, submitted_by, finished_by FROM evolink_entries WHERE seq > $1"
                " ORDER BY seq LIMIT $2",
                after, page_size,
            )  # fmt: skip
            for row in rows:
                yield dict(row)
            if len(rows) < page_size:
                return
            after = rows[-1]["seq"]
