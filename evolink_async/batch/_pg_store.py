"""The PostgreSQL journal: the same per-input facts as the SQLite one, shared by a fleet of workers.

Work is handed out with the standard claim pattern: a worker takes a few rows with
``SELECT ... FOR UPDATE SKIP LOCKED`` and stamps them with its id, a lease expiry and a new
``lease_epoch``, renews the lease while it works, and loses the rows at expiry if it dies. Global
bounds live in one row (``evolink_fleet``): a claim (the server-side ``evolink_claim_v4``, one
statement) locks it, counts the batch's held slots (inputs whose task may be unfinished) and the
credits reserved, and takes new inputs only within both bounds, so no two workers overshoot.

Every write about an input is fenced: it applies only where ``lease_owner`` and ``lease_epoch``
are still the writer's, and says whether it applied. A worker paused past its lease finds its
writes refused (counted in ``fenced_refused``) instead of overwriting its successor's. The one
exception is a task id: a fact about money spent, recorded wherever nobody else holds the input.
A slot is freed only when the input's task is terminal or provably never created. Every
statement is retry-safe (``run`` repeats it after a lost connection): a refused fenced write
whose epoch is still on the row, with no one else holding it, was this worker's own first try.

An input found with a begun submit, no task id and an expired lease had a submit whose outcome
nobody knows; it becomes ``uncertain`` (keeping its slot) instead of being submitted again, until
a task id turns up (the submitting worker's write-ahead file) or the operator settles it.

The pool, meta, planning and reads are in ``_pg_base``, the uploaded files in ``_pg_uploads``; here
is the claim protocol, whose credit and slot accounting (claim, begin/record/release a submit,
outcomes) must be read together.
``asyncpg`` is imported by ``_pg_base`` only, and these modules only when a ``postgresql://``
journal is opened.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from ..errors import DuplicateTaskError
from ._entries import OUTCOMES, EntryStatus
from ._pg_base import _COLUMNS, Claim, Claimed, PlanResult, _claimed
from ._pg_uploads import PgJournalUploads

__all__ = ["Claim", "Claimed", "PgJournal", "PlanResult"]

_UNCERTAIN_MESSAGE = (
    "a submit began but its worker's lease expired before a task id was recorded: the server may or may "
    "not have the task; settle it (or resubmit it under the same idempotency key, against a server that "
    "honours Idempotency-Key) before paying for it again"
)


class PgJournal(PgJournalUploads):
    """A fleet journal in PostgreSQL: ``async with PgJournal("postgresql://host/db") as journal``.

    ``connections`` bounds the pool (one per concurrent journal call; 4 suits a worker);
    ``outage`` is how long calls retry an unreachable journal; ``session_timeout`` bounds how
    long any session may wait for a lock or sit idle inside a transaction.
    """

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        #: Fenced writes this process made that were refused: the input was no longer its own.
        self.fenced_refused = 0

    # --- claims and leases --------------------------------------------------------------------

    async def claim(self, owner: str, *, limit: int, lease: float,
                    inside: Callable[[], None] | None = None) -> Claim:  # fmt: skip
        """Take up to ``limit`` inputs for ``owner``: expired leases first, then new inputs within the bounds.

        ``inside`` (a fault hook for tests) runs before the claim commits, the fleet row still locked.
        """

        async def claim(conn: Any) -> list[Any]:
            query = "SELECT * FROM evolink_claim_v4($1, $2, $3, $4)"
            if inside is None:
                return list(await conn.fetch(query, owner, limit, lease, _UNCERTAIN_MESSAGE))
            async with conn.transaction():
                rows = list(await conn.fetch(query, owner, limit, lease, _UNCERTAIN_MESSAGE))
                inside()
            return rows

        rows = await self.run(claim, what="a claim")
        *taken, why = rows  # the last row, without a key, says why the claim took no more
        budget_exhausted, at_share, bound_full = bool(why[16]), bool(why[17]), bool(why[18])
        return Claim(items=tuple(_claimed(row) for row in taken), budget_exhausted=budget_exhausted,
                     at_share=at_share, bound_full=bound_full,
                     nothing_left=len(taken) < limit and not (budget_exhausted or at_share or bound_full))  # fmt: skip

    async def renew(self, owner: str, *, lease: float, held: Mapping[str, int] | None = None) -> set[str]:
        """Extend ``owner``'s leases on ``held`` (key -> epoch); returns the keys it still holds.

        Only leases the worker knows it holds: an input claimed by a call whose answer was lost
        (a dropped connection) is left to expire and be claimed again, never kept unseen.
        Without ``held``: every lease of ``owner`` (tests, tools). The heartbeat carries this
        process's journal health, for ``evolink batch status``.
        """
        keys = None if held is None else list(held)
        epochs = None if held is None else [held[k] for k in keys or ()]
        health = self.health
        rows = await self.run(lambda c: c.fetch(
            "WITH beat AS (UPDATE evolink_workers SET heartbeat_at = now(), journal_outages = $5,"
            " seconds_without_journal = $6, fenced_refused = $7 WHERE id = $1)"
            " UPDATE evolink_entries SET lease_expires = now() + $2 * interval '1 second' WHERE lease_owner = $1"
            " AND ($3::text[] IS NULL OR (key, lease_epoch) IN (SELECT * FROM unnest($3::text[], $4::bigint[])))"
            " RETURNING key",
            owner, lease, keys, epochs, health.outages, health.seconds_without, self.fenced_refused,
        ), what="a lease renewal")  # fmt: skip
        return {row[0] for row in rows}

    async def taken_over(self, key: str, *, epoch: int) -> bool:
        """Whether ``key`` was handed to someone else since ``epoch`` (this worker's own release keeps the epoch)."""
        changed = await self.run(lambda c: c.fetchval(
            "SELECT lease_epoch <> $2 FROM evolink_entries WHERE key = $1", key, epoch
        ), what="a lease check")  # fmt: skip
        return bool(changed)

    async def claim_downloads(self, owner: str, *, limit: int, lease: float, failed_before: datetime) -> list[Claimed]:
        """Take up to ``limit`` inputs whose task completed but whose download failed before ``failed_before``.

        Only failures from before the worker's start (the database's clock, see ``register_worker``):
        a run retries what earlier runs could not download, never in a loop what it just failed itself.
        No slot and no credits: the task is finished and paid for; only its results are fetched again.
        """
        rows = await self.run(lambda c: c.fetch(
            "UPDATE evolink_entries SET lease_owner = $1, lease_expires = now() + $2 * interval '1 second',"  # noqa: S608
            " lease_epoch = lease_epoch + 1, updated_at = now() WHERE key IN (SELECT key FROM evolink_entries"
            " WHERE status = 'completed' AND error_code IS NOT NULL AND lease_owner IS NULL AND finished_at < $4"
            f" ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING {_COLUMNS}",
            owner, lease, limit, failed_before,
        ), what="a claim of downloads")  # fmt: skip
        return [_claimed(row) for row in rows]

    async def register_worker(self, owner: str, *, host: str, pid: int) -> datetime:
        """Record the worker; returns the database's time of its start (what ``claim_downloads`` compares with)."""
        started: datetime = await self.run(lambda c: c.fetchval(
            "WITH added AS (INSERT INTO evolink_workers (id, host, pid) VALUES ($1, $2, $3)"
            " ON CONFLICT (id) DO NOTHING) SELECT now()",
            owner, host, pid,
        ))  # fmt: skip
        return started

    async def stop_worker(self, owner: str) -> None:
        """A clean exit: unsubmitted inputs go back to the pool, those with a task id can be taken over at once.

        An input whose submit began without a recorded task id keeps its lease to the end: this
        worker cannot prove the task does not exist, so its slot is not freed early.
        """
        await self.run(lambda c: c.execute(
            "WITH freed AS (UPDATE evolink_entries SET slot = false, lease_owner = NULL, lease_expires = NULL,"
            " credits_reserved = 0, updated_at = now() WHERE lease_owner = $1 AND status = 'pending_submit'"
            " AND submit_started_at IS NULL RETURNING credits_estimate),"
            " handed AS (UPDATE evolink_entries SET lease_expires = now() WHERE lease_owner = $1"
            " AND task_id IS NOT NULL),"
            " refund AS (UPDATE evolink_fleet SET credits_reserved = credits_reserved"
            " - (SELECT coalesce(sum(credits_estimate), 0) FROM freed) WHERE id = 1)"
            " UPDATE evolink_workers SET stopped_at = now(), journal_outages = $2, seconds_without_journal = $3,"
            " fenced_refused = $4 WHERE id = $1",
            owner, self.health.outages, self.health.seconds_without, self.fenced_refused,
        ), what="the worker's exit")  # fmt: skip

    async def remaining(self, owner: str) -> dict[str, int]:
        """``pending``: unclaimed inputs; ``others``: inputs leased by other workers (alive or not yet expired)."""
        row = await self.run(lambda c: c.fetchrow(
            "SELECT (SELECT count(*) FROM evolink_entries WHERE status = 'pending_submit' AND NOT slot"
            " AND lease_owner IS NULL) AS pending, (SELECT count(*) FROM evolink_entries WHERE lease_owner"
            " IS NOT NULL AND lease_owner <> $1) AS others",
            owner,
        ))  # fmt: skip
        return {"pending": int(row["pending"]), "others": int(row["others"])}

    async def mark_not_submitted(self, reason: str) -> int:
        """Give every unclaimed input the outcome ``not_submitted`` (it stays claimable by a later run)."""
        result = await self.run(lambda c: c.execute(
            "UPDATE evolink_entries SET error_code = 'not_submitted', error_message = $1, updated_at = now()"
            " WHERE status = 'pending_submit' AND NOT slot AND lease_owner IS NULL",
            reason,
        ))  # fmt: skip
        return int(str(result).split()[-1])

    async def requeue_uncertain(self) -> int:
        """Return ``uncertain`` inputs to the pool, to be resubmitted with their *same* idempotency key.

        Their slots are given up here and taken again by the claim that resubmits them (the
        server answers a replay with the task it may already run).
        """
        result = await self.run(lambda c: c.execute(
            "UPDATE evolink_entries SET status = 'pending_submit', slot = false, error_code = NULL,"
            " error_message = NULL, finished_at = NULL, updated_at = now() WHERE status = 'uncertain'"
            " AND task_id IS NULL AND lease_owner IS NULL"
        ))
        return int(str(result).split()[-1])

    # --- per-input facts (every one fenced by the lease's owner and epoch) ---------------------

    async def _fenced(self, statement: str, key: str, owner: str, epoch: int, *args: Any, what: str) -> bool:
        """Run a fenced write; True if it applied (now, or in a first try whose answer was lost)."""
        attempts = 0

        async def write(conn: Any) -> bool:
            nonlocal attempts
            attempts += 1
            if int(await conn.fetchval(statement, key, owner, epoch, *args)):
                return True
            # A retry after a lost answer: the epoch is still ours and no one else holds the
            # input, so the first try applied (each hand-over to another worker bumps the epoch).
            return attempts > 1 and bool(await conn.fetchval(
                "SELECT count(*) FROM evolink_entries WHERE key = $1 AND lease_epoch = $3"
                " AND (lease_owner IS NULL OR lease_owner = $2)",
                key, owner, epoch,
            ))  # fmt: skip

        applied = await self.run(write, what=what)
        if not applied:
            self.fenced_refused += 1
        return applied

    async def begin_submit(self, key: str, owner: str, body: str, *, epoch: int) -> str | None:
        """Fence and record a submit: the body to send, or None if ``owner`` lost the input's lease.

        A body stored earlier (a resubmit under the same key) wins: the key must carry the same body.
        """
        body_sent: list[str] = []

        async def begin(conn: Any) -> int:
            value = await conn.fetchval(
                "UPDATE evolink_entries SET submit_started_at = now(), request_body = coalesce(request_body, $4),"
                " submitted_by = $2, updated_at = now() WHERE key = $1 AND lease_owner = $2 AND lease_epoch = $3"
                " AND lease_expires > now() AND status = 'pending_submit' AND task_id IS NULL RETURNING request_body",
                key, owner, epoch, body,
            )  # fmt: skip
            if value is not None:
                body_sent[:] = [str(value)]
            return 0 if value is None else 1

        applied = await self.run(begin, what="a submit's start")
        if not applied:
            self.fenced_refused += 1
            return None
        return body_sent[0]

    async def record_submitted(
        self, key: str, task_id: str, *, owner: str, epoch: int, lease: float,
        idempotency_key: str | None = None, credits: float | None = None,
    ) -> int | None:  # fmt: skip
        """Record the task id; returns the epoch ``owner`` now holds the input under, None if refused.

        Recorded where ``owner`` holds the input's lease, and also (a task id is a fact about money
        spent: never dropped) where nobody holds it and no task id is recorded yet, given the
        input's ``idempotency_key``: an input that became ``uncertain`` while its worker was away,
        or a write-ahead record replayed by a later run. Then ``owner`` takes it (a new epoch).
        Refused where another worker holds it: the worker keeps the id in its write-ahead file.
        Raises :class:`DuplicateTaskError` where another input has that task id.
        """
        import asyncpg

        try:
            row = await self._record_submitted(key, task_id, owner=owner, epoch=epoch, lease=lease,
                                               idempotency_key=idempotency_key, credits=credits)  # fmt: skip
        except asyncpg.UniqueViolationError:
            # The id is another input's (``task_id`` is unique): a server that answered two submits
            # with one task. This input fails alone; its own billing is unknown.
            holder = await self.run(lambda c: c.fetchval("SELECT key FROM evolink_entries WHERE task_id = $1",
                                                         task_id), what="a task id's owner")  # fmt: skip
            raise DuplicateTaskError(task_id, holder) from None
        if row is None:
            self.fenced_refused += 1
            return None
        return int(row[0])

    async def _record_submitted(self, key: str, task_id: str, *, owner: str, epoch: int, lease: float,
                                idempotency_key: str | None, credits: float | None) -> Any:  # fmt: skip
        return await self.run(lambda c: c.fetchrow(
            "WITH target AS (SELECT key, credits_reserved AS old, (lease_owner = $3 AND (lease_epoch = $4"
            " OR task_id = $2)) AS mine FROM evolink_entries WHERE key = $1 AND ((lease_owner = $3 AND"
            " lease_epoch = $4 AND task_id IS NULL AND status = 'pending_submit')"
            # a retry of this very record, whose first try (taking the input back, maybe) went through
            " OR (lease_owner = $3 AND task_id = $2 AND status = 'submitted')"
            " OR (task_id IS NULL AND idempotency_key = $6 AND status IN ('pending_submit', 'uncertain')"
            " AND (lease_owner IS NULL OR lease_expires < now()))) FOR UPDATE),"
            " recorded AS (UPDATE evolink_entries e SET task_id = $2, status = 'submitted', slot = true,"
            " error_code = NULL, error_message = NULL, finished_at = NULL, finished_by = NULL,"
            " submitted_at = coalesce(e.submitted_at, now()), updated_at = now(),"
            " lease_epoch = CASE WHEN t.mine THEN e.lease_epoch ELSE e.lease_epoch + 1 END, lease_owner = $3,"
            " lease_expires = CASE WHEN t.mine THEN e.lease_expires ELSE now() + $5 * interval '1 second' END,"
            " credits_reserved = coalesce($7, e.credits_reserved) FROM target t WHERE e.key = t.key"
            " RETURNING e.lease_epoch, e.credits_reserved - t.old AS change),"
            " fleet AS (UPDATE evolink_fleet SET credits_reserved = credits_reserved"
            " + (SELECT coalesce(sum(change), 0) FROM recorded) WHERE id = 1)"
            " SELECT lease_epoch FROM recorded",
            key, task_id, owner, epoch, lease, idempotency_key, credits,
        ), what="a task id's record")  # fmt: skip

    async def record_outcome(
        self,
        key: str,
        status: EntryStatus | str,
        *,
        owner: str,
        epoch: int,
        error_code: str | None = None,
        error_message: str | None = None,
        result_urls: Iterable[str] = (),
        final: bool = True,
    ) -> bool:
        """How the task (or, for ``submit_failed``, the submit) ended; frees its slot. False: fenced off.

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
        return await self._fenced(
            "WITH target AS (SELECT key, credits_reserved AS old FROM evolink_entries WHERE key = $1"
            " AND lease_owner = $2 AND lease_epoch = $3 AND status <> 'downloaded' FOR UPDATE),"
            " done AS (UPDATE evolink_entries e SET status = $4, error_code = $5, error_message = $6,"
            " result_urls = $7, slot = false, updated_at = now(),"
            " lease_owner = CASE WHEN $8 THEN NULL ELSE e.lease_owner END,"
            " lease_expires = CASE WHEN $8 THEN NULL ELSE e.lease_expires END,"
            " finished_at = CASE WHEN $8 THEN now() ELSE e.finished_at END,"
            " finished_by = CASE WHEN $8 THEN $2 ELSE e.finished_by END,"
            " credits_reserved = CASE WHEN $9 AND e.task_id IS NULL THEN 0 ELSE e.credits_reserved END"
            " FROM target t WHERE e.key = t.key RETURNING CASE WHEN $9 AND e.task_id IS NULL THEN t.old ELSE 0"
            " END AS refund),"
            " refund AS (UPDATE evolink_fleet SET credits_reserved = credits_reserved"
            " - (SELECT coalesce(sum(refund), 0) FROM done) WHERE id = 1)"
            " SELECT count(*) FROM done",
            key, owner, epoch, new.value, error_code, error_message, json.dumps(list(result_urls)), done,
            new is EntryStatus.SUBMIT_FAILED, what="an outcome's record",
        )  # fmt: skip

    async def release_submit(self, key: str, *, owner: str, epoch: int, error_code: str, error_message: str) -> bool:
        """A submit the server definitely did not take (rate limited, no credits): back to the pool, refunded."""
        return await self._fenced(
            "WITH released AS (UPDATE evolink_entries SET slot = false, lease_owner = NULL, lease_expires = NULL,"
            " submit_started_at = NULL, credits_reserved = 0, error_code = $4, error_message = $5,"
            " updated_at = now() WHERE key = $1 AND lease_owner = $2 AND lease_epoch = $3 AND task_id IS NULL"
            " AND status = 'pending_submit' RETURNING credits_estimate),"
            " refund AS (UPDATE evolink_fleet SET credits_reserved = credits_reserved"
            " - (SELECT coalesce(sum(credits_estimate), 0) FROM released) WHERE id = 1)"
            " SELECT count(*) FROM released",
            key, owner, epoch, error_code, error_message, what="a submit's release",
        )  # fmt: skip

    async def mark_uncertain(self, key: str, *, owner: str, epoch: int, message: str) -> bool:
        """A submit that got no answer: the task may exist; the input keeps its slot and credits until settled."""
        return await self._fenced(
            "WITH marked AS (UPDATE evolink_entries SET status = 'uncertain', lease_owner = NULL,"
            " lease_expires = NULL, error_code = 'uncertain', error_message = $4, finished_at = now(),"
            " finished_by = $2, updated_at = now() WHERE key = $1 AND lease_owner = $2 AND lease_epoch = $3"
            " AND status = 'pending_submit' AND task_id IS NULL RETURNING 1) SELECT count(*) FROM marked",
            key, owner, epoch, f"{message}; {_UNCERTAIN_MESSAGE}", what="an uncertain submit's record",
        )  # fmt: skip

    async def record_downloads(self, key: str, paths: Iterable[str | os.PathLike[str]], *, owner: str,
                               epoch: int) -> bool:  # fmt: skip
        return await self._fenced(
            "WITH saved AS (UPDATE evolink_entries SET status = 'downloaded', result_paths = $4, lease_owner = NULL,"
            " lease_expires = NULL, slot = false, error_code = NULL, error_message = NULL, finished_at = now(),"
            " finished_by = $2, updated_at = now() WHERE key = $1 AND lease_owner = $2 AND lease_epoch = $3"
            " AND status IN ('completed', 'downloaded') RETURNING 1) SELECT count(*) FROM saved",
            key, owner, epoch, json.dumps([os.fspath(p) for p in paths]), what="a download's record",
        )  # fmt: skip

    async def holds(self, key: str, *, owner: str, epoch: int, lease: float) -> bool:
        """Renew one lease and say whether ``owner`` still holds it (checked before work that costs)."""
        return await self._fenced(
            "WITH held AS (UPDATE evolink_entries SET lease_expires = now() + $4 * interval '1 second'"
            " WHERE key = $1 AND lease_owner = $2 AND lease_epoch = $3 RETURNING 1) SELECT count(*) FROM held",
            key, owner, epoch, lease, what="a lease check",
        )  # fmt: skip
