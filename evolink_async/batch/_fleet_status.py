"""Watching a fleet: one snapshot of a PostgreSQL journal (counts by state, per worker, credits, rate, ETA).

>>> status = await fleet_status(journal)
>>> print("\\n".join(status.lines()))
"""

from __future__ import annotations

from typing import Any

import attrs

from ..errors import Remedy
from ._pg_store import PgJournal

__all__ = ["FINISHED_STATES", "UNCERTAIN_ADVICE", "FleetStatus", "fleet_status"]

#: States after which nothing is left to do for an input in this batch.
#: ``download_failed`` and ``not_submitted`` too, like the one-machine batch: a later run takes them up again.
FINISHED_STATES = frozenset({"downloaded", "completed", "failed", "cancelled", "timed_out", "submit_failed",
                             "uncertain", "not_submitted", "download_failed"})  # fmt: skip
#: What an operator can do about an ``uncertain`` input (a submit whose answer nobody received).
#: Names the library's option (``resubmit_uncertain=True``); the command line names its flag.
UNCERTAIN_ADVICE = (
    "a submit was sent and its answer lost: the task may exist and be billed. Run a worker again on the "
    "machine that sent it (its write-ahead file may hold the task id; the worker is named below), or, against "
    f"a server that honours Idempotency-Key, resubmit it under the same key ({Remedy.RESUBMIT_UNCERTAIN}: no "
    "second charge). Otherwise check the provider's billing before paying for it again. Its in-flight slot is "
    "held for a while meanwhile (the task may be running)."
)
#: Uncertain inputs listed by name (the count covers the rest).
_UNCERTAIN_LISTED = 20


@attrs.frozen(kw_only=True)
class FleetStatus:
    """A snapshot. ``states``: inputs per state (``claimed`` = leased, not yet submitted; ``completed``
    counts only those left with URLs; ``download_failed``: completed, but the results could not be
    saved); ``rate``: inputs finished per second over the last ``window``."""

    total: int
    states: dict[str, int]
    in_flight: int
    max_in_flight: int
    credits_reserved: float
    max_credits: float | None
    workers: list[dict[str, Any]]
    rate: float
    window: float
    #: The first uncertain inputs: key, idempotency key, the worker that sent the submit, and since when.
    uncertain: list[dict[str, Any]] = attrs.field(factory=list)

    @property
    def finished(self) -> int:
        return sum(n for state, n in self.states.items() if state in FINISHED_STATES)

    @property
    def remaining(self) -> int:
        return self.total - self.finished

    @property
    def eta(self) -> float | None:
        """Seconds until every input is finished at the current rate (None before any rate)."""
        if self.remaining == 0:
            return 0.0
        return self.remaining / self.rate if self.rate > 0 else None

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data.update(finished=self.finished, remaining=self.remaining, eta=self.eta)
        return data

    def lines(self) -> list[str]:
        budget = "" if self.max_credits is None else f" of {self.max_credits:g}"
        # Uncertain inputs count as finished (nothing more happens to them by itself) but are not done:
        # said beside the count. A finished batch has no rate or ETA to show (it read "0.0/min").
        uncertain = self.states.get("uncertain", 0)
        unsure = f" ({uncertain} uncertain)" if uncertain else ""
        eta = "-" if self.eta is None else f"{self.eta:.0f} s"
        pace = "done" if self.remaining == 0 else f"{self.rate * 60:.1f}/min, ETA {eta}"
        lines = [
            f"{self.finished}/{self.total} finished{unsure}, {self.in_flight} in flight (max {self.max_in_flight}), "
            f"credits {self.credits_reserved:g}{budget}, {pace}",
            "  " + ", ".join(f"{state} {n}" for state, n in sorted(self.states.items()) if n),
        ]
        for worker in self.workers:
            alive = "stopped" if worker["stopped"] else f"seen {worker['seen_ago']:.0f} s ago"
            journal = ""
            if worker["journal_outages"] or worker["fenced_refused"]:
                journal = (f"; journal: {worker['journal_outages']} outage(s) survived, "
                           f"{worker['seconds_without_journal']:.1f} s without it, "
                           f"{worker['fenced_refused']} fenced write(s) refused")  # fmt: skip
            lines.append(f"  worker {worker['id']}: holds {worker['held']}, finished {worker['finished']} "
                         f"({alive}{journal})")  # fmt: skip
        if self.uncertain:
            lines.append(f"  uncertain {self.states.get('uncertain', len(self.uncertain))}: {UNCERTAIN_ADVICE}")
            for item in self.uncertain:
                lines.append(f"    {item['key']}  sent by {item['submitted_by'] or '?'}, "
                             f"Idempotency-Key {item['idempotency_key']}")  # fmt: skip
        return lines


async def fleet_status(journal: PgJournal, *, window: float = 60.0) -> FleetStatus:
    """Read one consistent snapshot (a repeatable-read transaction)."""
    async with journal.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await conn.fetch(
            "SELECT CASE WHEN status = 'pending_submit' AND lease_owner IS NOT NULL THEN 'claimed'"
            " WHEN status = 'pending_submit' AND error_code = 'not_submitted' THEN 'not_submitted'"
            " WHEN status = 'pending_submit' THEN 'pending'"
            " WHEN status = 'completed' AND error_code IS NOT NULL THEN 'download_failed' ELSE status END, count(*)"
            " FROM evolink_entries GROUP BY 1"
        )
        states = {str(state): int(n) for state, n in rows}
        fleet = await conn.fetchrow("SELECT max_in_flight, max_credits, credits_reserved FROM evolink_fleet")
        in_flight = await conn.fetchval("SELECT count(*) FROM evolink_entries WHERE slot")
        held = dict(await conn.fetch("SELECT lease_owner, count(*) FROM evolink_entries WHERE lease_owner IS NOT NULL"
                                     " GROUP BY 1"))  # fmt: skip
        done = dict(await conn.fetch("SELECT finished_by, count(*) FROM evolink_entries WHERE finished_by IS NOT"
                                     " NULL GROUP BY 1"))  # fmt: skip
        workers = [
            {"id": row["id"], "host": row["host"], "pid": row["pid"], "held": int(held.get(row["id"], 0)),
             "finished": int(done.get(row["id"], 0)), "seen_ago": float(row["ago"]), "stopped": row["stopped"],
             "journal_outages": row["journal_outages"], "seconds_without_journal": row["seconds_without_journal"],
             "fenced_refused": row["fenced_refused"]}
            for row in await conn.fetch(
                "SELECT id, host, pid, extract(epoch FROM now() - heartbeat_at) AS ago, stopped_at IS NOT NULL"
                " AS stopped, journal_outages, seconds_without_journal, fenced_refused FROM evolink_workers"
                " ORDER BY started_at"
            )
        ]  # fmt: skip
        recent, span = await conn.fetchrow(
            "SELECT count(*), extract(epoch FROM now() - min(finished_at)) FROM evolink_entries"
            " WHERE finished_at > now() - $1 * interval '1 second'",
            window,
        )
        uncertain = [dict(row) for row in await conn.fetch(
            "SELECT key, idempotency_key, submitted_by, extract(epoch FROM finished_at)::float8 AS since"
            " FROM evolink_entries WHERE status = 'uncertain' ORDER BY seq LIMIT $1",
            _UNCERTAIN_LISTED,
        )]  # fmt: skip
        # Early on, the window reaches back before the first finish: rate over the time actually covered.
        window = max(1.0, min(window, float(span or window)))
    return FleetStatus(
        total=sum(states.values()), states=states, in_flight=int(in_flight), max_in_flight=int(fleet["max_in_flight"]),
        credits_reserved=round(float(fleet["credits_reserved"]), 6), max_credits=fleet["max_credits"],
        workers=workers, rate=int(recent) / window, window=window, uncertain=uncertain,
    )  # fmt: skip
