"""The PostgreSQL journal's foundation: the connection pool, meta and limits, planning, reads.

Everything here is a plain read or an idempotent load; the claim protocol, whose credit and
slot accounting must be read as one, is ``_pg_store.PgJournal`` (built on this class).

A journal that goes away and comes back (a restart, a fail-over, a killed connection) is part of
a fleet's life: every operation goes through :meth:`PgJournalBase.run`, which retries the
transient failures (connection lost, "cannot connect now", admin shutdown, serialization
failures and deadlocks, lock and idle-transaction timeouts, asyncpg's interface errors) with
backoff through a fresh pool, for at most ``outage`` seconds of the journal being unreachable;
past that a :class:`JournalUnavailableError` names the cause. Every session gets
``lock_timeout`` and ``idle_in_transaction_session_timeout``: a worker frozen anywhere (even
inside a transaction) cannot hold a lock others wait for longer than ``session_timeout``.

Why one module of ~400 lines: the retrying ``run`` and the pool it renews are what every read and
load here goes through; the claim protocol (``_pg_store``), the schema (``_pg_schema``) and the
upload room (``_pg_uploads``) live apart.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import attrs

from .._core.checks import COUNT, SECONDS
from .._core.idempotency import new_idempotency_key
from .._core.logging import logger
from ..errors import Remedy
from ._entries import Entry, EntryStatus, JournalError, JournalMismatchError
from ._manifest import ManifestInput
from ._pg_schema import migrate
from ._pg_url import check_postgres_url, journal_address

__all__ = ["Claim", "Claimed", "JournalHealth", "JournalUnavailableError", "PgJournalBase", "PlanResult"]

T = TypeVar("T")


_COLUMNS = (
    "key, fingerprint, idempotency_key, status, task_id, request_body, error_code, error_message, result_urls,"
    " result_paths, extract(epoch FROM created_at), extract(epoch FROM updated_at),"
    " extract(epoch FROM submitted_at), line, submit_started_at IS NOT NULL, lease_epoch"
)
#: SQLSTATE classes and codes of failures that pass: connection (08), operator intervention (57:
#: shutdown, cannot connect now, cancel), transaction rollback (40: serialization, deadlock),
#: insufficient resources (53), lock timeout (55P03), idle-in-transaction timeout (25P03).
_TRANSIENT_CLASSES = ("08", "57", "40", "53")
_TRANSIENT_CODES = ("55P03", "25P03")


class JournalUnavailableError(JournalError):
    """The journal stayed unreachable longer than the worker's bound (``journal_outage``)."""

    remedy = Remedy.JOURNAL_OUTAGE


@attrs.define(kw_only=True)
class JournalHealth:
    """How the journal behaved for this process: outages survived, seconds spent without it."""

    outages: int = 0
    seconds_without: float = 0.0
    #: ``time.monotonic()`` when the current outage began; None while the journal answers.
    down_since: float | None = None
    #: What the journal answered last while away (``ConnectionDoesNotExistError: ...``).
    last_error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"outages": self.outages, "seconds_without": round(self.seconds_without, 3),
                "down": self.down_since is not None}  # fmt: skip


def is_transient(exc: BaseException) -> bool:
    """A failure a retry through a fresh connection can get past."""
    import asyncpg

    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        return state.startswith(_TRANSIENT_CLASSES) or state in _TRANSIENT_CODES
    return isinstance(exc, (asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError))


#: A transient failure's SQLSTATE class, in words for the operator (the worker's last line names it).
_CAUSE_BY_STATE = {
    "57P01": "PostgreSQL shut down (an administrator's or a restart's fast shutdown)",
    "57P02": "PostgreSQL crashed",
    "57P03": "PostgreSQL is starting up or shutting down",
    "57014": "a statement was cancelled (statement timeout or an administrator)",
    "53300": "PostgreSQL has no free connection slot",
    "55P03": "a lock was not granted within lock_timeout",
    "25P03": "a session idle in a transaction was ended (idle_in_transaction_session_timeout)",
}


def failure_cause(exc: BaseException) -> str:
    """A journal failure as the operator reads it: asyncpg's own text for a lost connection
    ("cannot switch to state 12; another operation is in progress") describes its internals."""
    import asyncpg

    state = str(getattr(exc, "sqlstate", "") or "")
    if state in _CAUSE_BY_STATE:
        return _CAUSE_BY_STATE[state]
    if state.startswith("08") or isinstance(exc, asyncpg.InterfaceError | asyncpg.InternalClientError):
        return "the connection to PostgreSQL was lost"
    if state.startswith("40"):
        return "a transaction was rolled back (serialization failure or deadlock)"
    if isinstance(exc, TimeoutError):
        return "PostgreSQL did not answer in time"
    if isinstance(exc, OSError):  # its own text names the address or socket: "Connect call failed ..."
        return f"PostgreSQL cannot be reached: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"
@attrs.frozen(kw_only=True)
class Claimed:
    """A claimed input: its entry, its manifest line, and whether a submit had already begun."""

    entry: Entry
    line: str | None
    submit_started: bool
    #: The fencing token of this worker's lease: every write about the input names it.
    epoch: int = 0


@attrs.frozen(kw_only=True)
class Claim:
    """What one claim gave this worker, and why it gave no more."""

    items: tuple[Claimed, ...]
    budget_exhausted: bool = False
    #: This worker holds its fair share of ``max_in_flight`` (with these items; rounded down while the
    #: bound is full): only its own inputs ending, or fewer live workers, give it room for more.
    at_share: bool = False
    #: The batch holds ``max_in_flight`` slots: one frees when any worker's input ends.
    bound_full: bool = False
    #: No bound stopped the claim short: there was no input left to take (none pending, no lease
    #: expired). More appear only when a worker gives one back, a lease expires or a plan adds some.
    nothing_left: bool = False


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
    return Claimed(entry=_entry(row), line=row[13], submit_started=bool(row[14]), epoch=int(row[15]))


async def _no_session_state(connection: Any) -> None:
    """The pool's reset of a released connection: nothing to undo (see ``_new_pool``)."""


class PgJournalBase:
    """The pool, meta, limits, planning and reads of :class:`~evolink_async.batch.PgJournal`."""

    def __init__(self, url: str, *, connections: int = 4, command_timeout: float = 30.0, outage: float = 60.0,
                 session_timeout: float = 5.0, connect_timeout: float | None = None) -> None:  # fmt: skip
        # The command line's checks, before any connection: a bad URL (a port out of range, ``[::1``,
        # ``sslmode=bogus``) is a ValidationError naming ``url`` (never its password), not asyncpg's
        # traceback; NaN or infinite bounds would make a wait that never ends.
        self.url = check_postgres_url("url", url)
        self._connections = COUNT.check("connections", connections)
        self._command_timeout = SECONDS.check("command_timeout", command_timeout)
        #: Seconds the journal may stay unreachable before operations give up.
        self.outage = SECONDS.check("outage", outage)
        self._session_timeout = SECONDS.check("session_timeout", session_timeout)
        #: Seconds the first connection may take, retries included (None: ``outage``, for a worker that
        #: may start while its server restarts). Given (a short command: plan, status, export), a
        #: refused connection, a socket file or host name that does not exist fails at once.
        self._connect_timeout = SECONDS.check_optional("connect_timeout", connect_timeout)
        self._pool: Any = None
        self._first_deadline: float | None = None
        self._pool_generation = 0
        self._reconnecting = anyio.Lock()
        self.health = JournalHealth()
        #: Told ``("down", health)`` when an outage begins and ``("back", health)`` when it ends.
        self.on_outage: Callable[[str, JournalHealth], None] | None = None

    async def _new_pool(self) -> Any:
        import asyncpg

        millis = str(max(1, int(self._session_timeout * 1000)))
        # min_size=0: connections are made on demand, so a pool never logs (with a traceback) its
        # own failed attempts to refill while the journal is away; ``run`` retries instead.
        # reset: the journal leaves no session state behind (no LISTEN, no session advisory lock, no
        # cursor, no SET: its one lock is transaction-scoped), so the pool's default reset on every
        # release (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) was a round trip and a
        # transaction per journal call for nothing. asyncpg still rolls back a transaction left open.
        return await asyncpg.create_pool(
            self.url, min_size=0, max_size=self._connections, command_timeout=self._command_timeout,
            timeout=min(15.0, max(1.0, self._connect_timeout or self.outage)), reset=_no_session_state,
            server_settings={"lock_timeout": millis, "idle_in_transaction_session_timeout": millis},
        )  # fmt: skip

    async def run(self, operation: Callable[[Any], Awaitable[T]], *, what: str = "a journal call",
                  first: bool = False) -> T:  # fmt: skip
        """Run ``operation(connection)``, retried through transient failures for up to ``outage`` seconds.

        An operation must be safe to run again: after a lost connection its first attempt may
        have committed unseen (the fenced writes of ``PgJournal`` recognise their own epoch).
        ``first``: the first connection, bounded by ``connect_timeout`` when one is given.
        """
        delay = 0.05
        short = first and self._connect_timeout is not None
        while True:
            generation = self._pool_generation
            try:
                async with self.pool.acquire() as conn:
                    result = await operation(conn)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if short:
                    await self._retry_first(exc, delay)
                    delay = min(delay * 2, 1.0)
                    continue
                now = time.monotonic()
                self.health.last_error = failure_cause(exc)
                if self.health.down_since is None:
                    self.health.down_since = now
                    logger.warning("the journal is unreachable (%s; %s: %s); retrying for up to %g s",
                                   failure_cause(exc), type(exc).__name__, exc, self.outage)  # fmt: skip
                    if self.on_outage is not None:
                        self.on_outage("down", self.health)
                if now - self.health.down_since >= self.outage:
                    raise JournalUnavailableError(
                        f"the journal was unreachable for {now - self.health.down_since:.0f} s during {what}: "
                        f"{failure_cause(exc)} (waited up to {Remedy.JOURNAL_OUTAGE}{self.outage:g} s)"
                    ) from None
                await anyio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)
                await self._reconnect(generation)
                continue
            if self.health.down_since is not None:
                self.health.seconds_without += time.monotonic() - self.health.down_since
                self.health.outages += 1
                self.health.down_since = None
                logger.warning("the journal is back after %d outage(s)", self.health.outages)
                if self.on_outage is not None:
                    self.on_outage("back", self.health)
            return result

    async def _retry_first(self, exc: Exception, delay: float) -> None:
        """A short command's first connection failed: at once when nothing answers there (no socket
        file, a refused connection, no such host: no point waiting), else retried within
        ``connect_timeout``; a ``JournalError`` naming the address (never the password)."""
        import socket

        if self._first_deadline is None:
            self._first_deadline = time.monotonic() + (self._connect_timeout or 0.0)
        nobody_there = isinstance(exc, FileNotFoundError | ConnectionRefusedError | socket.gaierror)
        if nobody_there or time.monotonic() + delay >= self._first_deadline:
            cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
            raise JournalError(f"cannot reach the journal at {journal_address(self.url)}: {cause}") from None
        await anyio.sleep(delay)
        await self._reconnect(self._pool_generation)

    async def _reconnect(self, generation: int) -> None:
        """Replace the pool (once per failure, however many calls saw it); connecting may fail: retried."""
        async with self._reconnecting:
            if generation != self._pool_generation:
                return
            old = self._pool
            if old is not None:  # kept in place (closed) meanwhile: calls fail fast and come back here
                old.terminate()
            try:
                new = await self._new_pool()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                return
            if self._pool is not old:  # closed meanwhile (aclose): not reopened behind its back
                await new.close()
                return
            self._pool = new
            self._pool_generation += 1

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
            self._pool = await self._new_pool()
            # Retried like every call (a worker may start while the server restarts); a missing
            # database or a refused login is no outage: said at once.
            try:
                await self.run(migrate, what=f"the first connection (to {journal_address(self.url)})",
                               first=True)  # fmt: skip
            except (asyncpg.InvalidCatalogNameError, asyncpg.InvalidAuthorizationSpecificationError,
                    asyncpg.InvalidPasswordError) as exc:  # fmt: skip
                raise JournalError(f"cannot connect to the journal: {exc}") from exc
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
        value = await self.run(lambda c: c.fetchval("SELECT value FROM evolink_meta WHERE name = $1", name))
        return None if value is None else str(value)

    async def set_meta(self, name: str, value: str) -> None:
        await self.run(lambda c: c.execute(
            "INSERT INTO evolink_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = $2",
            name, value,
        ))  # fmt: skip

    async def ensure_meta(self, values: Mapping[str, str]) -> None:
        async def ensure(conn: Any) -> None:
            async with conn.transaction():
                for name, value in values.items():
                    await conn.execute(
                        "INSERT INTO evolink_meta (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING", name, value
                    )
                    stored = await conn.fetchval("SELECT value FROM evolink_meta WHERE name = $1", name)
                    if stored != value:
                        raise JournalMismatchError(f"meta:{name}", stored=stored, given=value,
                                                   hint="this journal belongs to another batch")  # fmt: skip

        await self.run(ensure)

    async def set_limits(self, *, max_in_flight: int | None = None, max_credits: float | None = None,
                         uncertain_slot_hold: float | None = None) -> None:  # fmt: skip
        """Set the batch-wide bounds every worker's claims obey (a later call replaces them).

        ``uncertain_slot_hold``: seconds an ``uncertain`` input keeps its slot under ``max_in_flight``
        (its task may be running; default 1800).
        """
        if max_in_flight is not None:
            await self.run(lambda c: c.execute("UPDATE evolink_fleet SET max_in_flight = $1", max_in_flight))
        if max_credits is not None:
            await self.run(lambda c: c.execute("UPDATE evolink_fleet SET max_credits = $1", max_credits))
        if uncertain_slot_hold is not None:
            await self.run(lambda c: c.execute("UPDATE evolink_fleet SET uncertain_slot_hold = $1",
                                               uncertain_slot_hold))  # fmt: skip

    async def limits(self) -> dict[str, Any]:
        row = await self.run(lambda c: c.fetchrow(
            "SELECT max_in_flight, max_credits, credits_reserved, uncertain_slot_hold FROM evolink_fleet"
        ))
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
        row = await self.run(lambda c: c.fetchrow(f"SELECT {_COLUMNS} FROM evolink_entries WHERE key = $1", key))  # noqa: S608
        return None if row is None else _entry(row)

    async def find_task(self, task_id: str) -> Entry | None:
        row = await self.run(lambda c: c.fetchrow(f"SELECT {_COLUMNS} FROM evolink_entries WHERE task_id = $1",  # noqa: S608
                                                  task_id))  # fmt: skip
        return None if row is None else _entry(row)

    async def counts(self) -> dict[EntryStatus, int]:
        rows = await self.run(lambda c: c.fetch("SELECT status, count(*) FROM evolink_entries GROUP BY status"))
        return dict.fromkeys(EntryStatus, 0) | {EntryStatus(status): int(n) for status, n in rows}

    async def entries(self, *, page_size: int = 1000) -> AsyncIterator[dict[str, Any]]:
        """Every input's row as a dict, in plan order, one query per page (flat memory)."""
        after = 0

        async def page(conn: Any) -> list[Any]:
            return list(await conn.fetch(
                "SELECT seq, key, status, task_id, error_code, error_message, result_urls, result_paths,"
                " credits_reserved, line, submitted_by, finished_by FROM evolink_entries WHERE seq > $1"
                " ORDER BY seq LIMIT $2",
                after, page_size,
            ))  # fmt: skip

        while True:
            rows = await self.run(page)
            for row in rows:
                yield dict(row)
            if len(rows) < page_size:
                return
            after = rows[-1]["seq"]
