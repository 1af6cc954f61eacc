"""The PostgreSQL journal: the same per-input facts as the SQLite one, shared by a fleet of workers.

Work is handed out with the standard claim pattern: a worker takes a few rows with
``SELECT ... FOR UPDATE SKIP LOCKED`` and stamps them with its id and a lease expiry, renews the
lease while it works, and loses the rows at expiry if it dies. Global bounds live in one row
(``evolink_fleet``): a claim locks it, counts the batch's held slots (inputs claimed for submit
whose task is not finished) and the credits reserved, and takes new inputs only within both
bounds, in the same transaction, so no two workers can overshoot together.

A submit is fenced: ``begin_submit`` stamps ``submit_started_at`` only if this worker still holds
an unexpired lease. An input found with that stamp, no task id and an expired lease had a submit
whose outcome nobody knows; it becomes ``uncertain`` instead of being submitted again.

The pool, meta, planning and reads are in ``_pg_base``; here is the claim protocol, whose credit
and slot accounting (claim, begin/record/release a submit, outcomes) must be read together.
``asyncpg`` is imported by ``_pg_base`` only, and these modules only when a ``postgresql://``
journal is opened.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ._entries import OUTCOMES, Entry, EntryStatus, JournalError
from ._pg_base import _COLUMNS, Claim, Claimed, PgJournalBase, PlanResult, _claimed, _entry

__all__ = ["Claim", "Claimed", "PgJournal", "PlanResult"]

_UNCERTAIN_MESSAGE = (
    "a submit began but its worker's lease expired before a task id was recorded: the server may or may "
    "not have the task; settle it (or `evolink batch work --resubmit-uncertain` against a server that honours "
    "Idempotency-Key) before paying for it again"
)


class PgJournal(PgJournalBase):
    """A fleet journal in PostgreSQL: ``async with PgJournal("postgresql://host/db") as journal``.

    ``connections`` bounds the pool (one per concurrent journal call; 4 suits a worker).
    """

    # --- claims and leases --------------------------------------------------------------------

    async def claim(self, owner: str, *, limit: int, lease: float) -> Claim:
        """Take up to ``limit`` inputs for ``owner``: expired leases first, then new inputs within the bounds."""
        items: list[Claimed] = []
        budget_exhausted = False
        async with self.pool.acquire() as conn, conn.transaction():
            fleet = await conn.fetchrow(
                "SELECT max_in_flight, max_credits, credits_reserved FROM evolink_fleet WHERE id = 1 FOR UPDATE"
            )
            # Submits whose outcome is unknown: never handed out again as if nothing had happened.
            await conn.execute(
                "UPDATE evolink_entries SET status = 'uncertain', slot = false, lease_owner = NULL, "
                "lease_expires = NULL, error_code = 'uncertain', error_message = $1, finished_at = now(),"
                " updated_at = now() WHERE lease_owner IS NOT NULL AND lease_expires < now()"
                " AND status = 'pending_submit' AND submit_started_at IS NOT NULL AND task_id IS NULL",
                _UNCERTAIN_MESSAGE,
            )
            rows = await conn.fetch(
                f"UPDATE evolink_entries SET lease_owner = $1, lease_expires = now() + $2 * interval '1 second',"  # noqa: S608
                " updated_at = now() WHERE key IN (SELECT key FROM evolink_entries WHERE lease_owner IS NOT NULL"
                " AND lease_expires < now() ORDER BY lease_expires LIMIT $3 FOR UPDATE SKIP LOCKED)"
                f" RETURNING {_COLUMNS}",
                owner, lease, limit,
            )  # fmt: skip
            items.extend(_claimed(row) for row in rows)
            in_flight = await conn.fetchval("SELECT count(*) FROM evolink_entries WHERE slot")
            room = min(limit - len(items), fleet["max_in_flight"] - in_flight)
            if room > 0:
                candidates = await conn.fetch(
                    "SELECT key, credits_estimate, credits_reserved FROM evolink_entries"
                    " WHERE status = 'pending_submit' AND NOT slot AND lease_owner IS NULL"
                    " ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
                    room,
                )  # fmt: skip
                reserved = float(fleet["credits_reserved"])
                budget = fleet["max_credits"]
                chosen: list[str] = []
                added = 0.0
                for key, estimate, already in candidates:
                    extra = 0.0 if already > 0 else float(estimate)
                    if budget is not None and reserved + added + extra > budget + 1e-9:
                        budget_exhausted = True
                        break
                    added += extra
                    chosen.append(key)
                if chosen:
                    rows = await conn.fetch(
                        "UPDATE evolink_entries SET slot = true, lease_owner = $1, lease_expires = now() + $2 *"  # noqa: S608
                        " interval '1 second', credits_reserved = CASE WHEN credits_reserved > 0 THEN"
                        " credits_reserved ELSE credits_estimate END, error_code = NULL, error_message = NULL,"
                        f" updated_at = now() WHERE key = ANY($3::text[]) RETURNING {_COLUMNS}",
                        owner, lease, chosen,
                    )  # fmt: skip
                    items.extend(_claimed(row) for row in rows)
                    await conn.execute("UPDATE evolink_fleet SET credits_reserved = credits_reserved + $1", added)
        return Claim(items=tuple(items), budget_exhausted=budget_exhausted)

    async def renew(self, owner: str, *, lease: float) -> set[str]:
        """Extend every lease ``owner`` holds; returns the keys it still holds (others were taken over)."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "UPDATE evolink_entries SET lease_expires = now() + $2 * interval '1 second'"
                " WHERE lease_owner = $1 RETURNING key",
                owner, lease,
            )  # fmt: skip
            await conn.execute("UPDATE evolink_workers SET heartbeat_at = now() WHERE id = $1", owner)
        return {row[0] for row in rows}

    async def claim_downloads(self, owner: str, *, limit: int, lease: float, failed_before: datetime) -> list[Claimed]:
        """Take up to ``limit`` inputs whose task completed but whose download failed before ``failed_before``.

        Only failures from before the worker's start (the database's clock, see ``register_worker``):
        a run retries what earlier runs could not download, never in a loop what it just failed itself.
        No slot and no credits: the task is finished and paid for; only its results are fetched again.
        """
        rows = await self.pool.fetch(
            "UPDATE evolink_entries SET lease_owner = $1, lease_expires = now() + $2 * interval '1 second',"  # noqa: S608
            " updated_at = now() WHERE key IN (SELECT key FROM evolink_entries WHERE status = 'completed'"
            " AND error_code IS NOT NULL AND lease_owner IS NULL AND finished_at < $4 ORDER BY seq LIMIT $3"
            f" FOR UPDATE SKIP LOCKED) RETURNING {_COLUMNS}",
            owner, lease, limit, failed_before,
        )  # fmt: skip
        return [_claimed(row) for row in rows]

    async def register_worker(self, owner: str, *, host: str, pid: int) -> datetime:
        """Record the worker; returns the database's time of its start (what ``claim_downloads`` compares with)."""
        started: datetime = await self.pool.fetchval(
            "WITH added AS (INSERT INTO evolink_workers (id, host, pid) VALUES ($1, $2, $3)"
            " ON CONFLICT (id) DO NOTHING) SELECT now()",
            owner, host, pid,
        )  # fmt: skip
        return started

    async def stop_worker(self, owner: str) -> None:
        """A clean exit: unsubmitted inputs go back to the pool, the rest can be taken over at once."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM evolink_fleet WHERE id = 1 FOR UPDATE")
            refund = await conn.fetchval(
                "WITH freed AS (UPDATE evolink_entries SET slot = false, lease_owner = NULL, lease_expires = NULL,"
                " credits_reserved = 0, updated_at = now() WHERE lease_owner = $1 AND status = 'pending_submit'"
                " AND submit_started_at IS NULL RETURNING credits_estimate)"
                " SELECT coalesce(sum(credits_estimate), 0) FROM freed",
                owner,
            )  # fmt: skip
            await conn.execute("UPDATE evolink_fleet SET credits_reserved = credits_reserved - $1", float(refund))
            await conn.execute("UPDATE evolink_entries SET lease_expires = now() WHERE lease_owner = $1", owner)
            await conn.execute("UPDATE evolink_workers SET stopped_at = now() WHERE id = $1", owner)

    async def remaining(self, owner: str) -> dict[str, int]:
        """``pending``: unclaimed inputs; ``others``: inputs leased by other workers (alive or not yet expired)."""
        row = await self.pool.fetchrow(
            "SELECT (SELECT count(*) FROM evolink_entries WHERE status = 'pending_submit' AND NOT slot"
            " AND lease_owner IS NULL) AS pending, (SELECT count(*) FROM evolink_entries WHERE lease_owner"
            " IS NOT NULL AND lease_owner <> $1) AS others",
            owner,
        )  # fmt: skip
        return {"pending": int(row["pending"]), "others": int(row["others"])}

    async def mark_not_submitted(self, reason: str) -> int:
        """Give every unclaimed input the outcome ``not_submitted`` (it stays claimable by a later run)."""
        result = await self.pool.execute(
            "UPDATE evolink_entries SET error_code = 'not_submitted', error_message = $1, updated_at = now()"
            " WHERE status = 'pending_submit' AND NOT slot AND lease_owner IS NULL",
            reason,
        )  # fmt: skip
        return int(str(result).split()[-1])

    async def requeue_uncertain(self) -> int:
        """Return ``uncertain`` inputs to the pool, to be resubmitted with their *same* idempotency key."""
        result = await self.pool.execute(
            "UPDATE evolink_entries SET status = 'pending_submit', error_code = NULL, error_message = NULL,"
            " finished_at = NULL, updated_at = now() WHERE status = 'uncertain' AND task_id IS NULL"
        )
        return int(str(result).split()[-1])

    # --- per-input facts ----------------------------------------------------------------------

    async def begin_submit(self, key: str, owner: str, body: str) -> str | None:
        """Fence and record a submit: the body to send, or None if ``owner`` lost the input's lease.

        A body stored earlier (a resubmit under the same key) wins: the key must carry the same body.
        """
        value = await self.pool.fetchval(
            "UPDATE evolink_entries SET submit_started_at = now(), request_body = coalesce(request_body, $3),"
            " submitted_by = $2, updated_at = now() WHERE key = $1 AND lease_owner = $2 AND lease_expires > now()"
            " AND status = 'pending_submit' RETURNING request_body",
            key, owner, body,
        )  # fmt: skip
        return None if value is None else str(value)

    async def record_submitted(self, key: str, task_id: str, *, owner: str, lease: float,
                               credits: float | None = None) -> Entry:  # fmt: skip
        """Record the task id (a fact, kept even if the lease lapsed meanwhile; then this worker takes it back)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE evolink_entries SET task_id = $2, status = 'submitted', slot = true, error_code = NULL,"  # noqa: S608
                " error_message = NULL, finished_at = NULL, submitted_at = now(), updated_at = now(),"
                " lease_owner = coalesce(lease_owner, $3), lease_expires = CASE WHEN lease_owner IS NULL THEN now()"
                " + $4 * interval '1 second' ELSE lease_expires END"
                " WHERE key = $1 AND task_id IS NULL AND status IN ('pending_submit', 'uncertain')"
                f" RETURNING {_COLUMNS}, credits_reserved",
                key, task_id, owner, lease,
            )  # fmt: skip
            if row is None:
                return await self._require(conn, key)
            if credits is not None and abs(credits - row["credits_reserved"]) > 1e-9:
                await conn.execute("SELECT 1 FROM evolink_fleet WHERE id = 1 FOR UPDATE")
                await conn.execute("UPDATE evolink_entries SET credits_reserved = $2 WHERE key = $1", key, credits)
                await conn.execute("UPDATE evolink_fleet SET credits_reserved = credits_reserved + $1",
                                   credits - row["credits_reserved"])  # fmt: skip
            return _entry(row)

    async def record_outcome(
        self,
        key: str,
        status: EntryStatus | str,
        *,
        owner: str,
        error_code: str | None = None,
        error_message: str | None = None,
        result_urls: Iterable[str] = (),
        final: bool = True,
    ) -> None:
        """How the task (or, for ``submit_failed``, the submit) ended; frees its slot.

        ``final=False`` for ``completed`` with a download still to do: the lease stays with ``owner``.
        ``completed`` with an error is a download that failed (as the one-machine journal, the state
        stays ``completed``, "not downloaded yet"); status and export show it as ``download_failed``
        and a later run's ``claim_downloads`` fetches it again.
        A ``submit_failed`` input gets its reserved credits back (the server refused it, nothing was billed).
        """
        new = EntryStatus(status)
        if new not in OUTCOMES:
            raise ValueError(f"status must be one of {sorted(OUTCOMES)}, got {new.value!r}")
        done = final or new is not EntryStatus.COMPLETED
        async with self.pool.acquire() as conn, conn.transaction():
            if new is EntryStatus.SUBMIT_FAILED:
                await conn.execute("SELECT 1 FROM evolink_fleet WHERE id = 1 FOR UPDATE")
                refund = await conn.fetchval("SELECT credits_reserved FROM evolink_entries WHERE key = $1"
                                             " AND task_id IS NULL FOR UPDATE", key)  # fmt: skip
                if refund:
                    await conn.execute("UPDATE evolink_fleet SET credits_reserved = credits_reserved - $1", refund)
                    await conn.execute("UPDATE evolink_entries SET credits_reserved = 0 WHERE key = $1", key)
            await conn.execute(
                "UPDATE evolink_entries SET status = $2, error_code = $3, error_message = $4, result_urls = $5,"
                " slot = false, updated_at = now(), lease_owner = CASE WHEN $6 THEN NULL ELSE lease_owner END,"
                " lease_expires = CASE WHEN $6 THEN NULL ELSE lease_expires END,"
                " finished_at = CASE WHEN $6 THEN now() ELSE finished_at END,"
                " finished_by = CASE WHEN $6 THEN $7 ELSE finished_by END"
                " WHERE key = $1 AND status NOT IN ('downloaded')",
                key, new.value, error_code, error_message, json.dumps(list(result_urls)), done, owner,
            )  # fmt: skip

    async def release_submit(self, key: str, *, owner: str, error_code: str, error_message: str) -> None:
        """A submit the server definitely did not take (rate limited, no credits): back to the pool, refunded."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM evolink_fleet WHERE id = 1 FOR UPDATE")
            refund = await conn.fetchval(
                "UPDATE evolink_entries SET slot = false, lease_owner = NULL, lease_expires = NULL,"
                " submit_started_at = NULL, credits_reserved = 0, error_code = $3, error_message = $4,"
                " updated_at = now() WHERE key = $1 AND lease_owner = $2 AND task_id IS NULL"
                " AND status = 'pending_submit' RETURNING credits_estimate",
                key, owner, error_code, error_message,
            )  # fmt: skip
            if refund:
                await conn.execute("UPDATE evolink_fleet SET credits_reserved = credits_reserved - $1", refund)

    async def mark_uncertain(self, key: str, *, owner: str, message: str) -> None:
        """A submit that got no answer: the task may exist; the input waits to be settled, keeps its credits."""
        await self.pool.execute(
            "UPDATE evolink_entries SET status = 'uncertain', slot = false, lease_owner = NULL, lease_expires = NULL,"
            " error_code = 'uncertain', error_message = $3, finished_at = now(), finished_by = $2, updated_at = now()"
            " WHERE key = $1 AND status = 'pending_submit' AND task_id IS NULL",
            key, owner, f"{message}; {_UNCERTAIN_MESSAGE}",
        )  # fmt: skip

    async def record_downloads(self, key: str, paths: Iterable[str | os.PathLike[str]], *, owner: str) -> None:
        await self.pool.execute(
            "UPDATE evolink_entries SET status = 'downloaded', result_paths = $2, lease_owner = NULL,"
            " lease_expires = NULL, slot = false, error_code = NULL, error_message = NULL, finished_at = now(),"
            " finished_by = $3, updated_at = now()"
            " WHERE key = $1 AND status IN ('completed', 'downloaded')",
            key, json.dumps([os.fspath(p) for p in paths]), owner,
        )  # fmt: skip

    async def _require(self, conn: Any, key: str) -> Entry:
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM evolink_entries WHERE key = $1", key)  # noqa: S608
        if row is None:
            raise JournalError(f"no journal entry for {key!r}; plan it first")
        return _entry(row)
