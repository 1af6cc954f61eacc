"""The PostgreSQL journal's schema, created and migrated by the SDK, safe to run concurrently.

Every worker, plan and status command calls :func:`migrate` on connect. It runs in one
transaction under a transaction-scoped advisory lock, so two processes starting at once never
both create the tables (``CREATE TABLE IF NOT EXISTS`` alone races on the catalog), and one that
finds a *newer* schema refuses to touch the journal instead of misreading it.
"""

from __future__ import annotations

from typing import Any

from ._entries import JournalError

__all__ = ["PG_SCHEMA_VERSION", "migrate"]

PG_SCHEMA_VERSION = 1
#: Any constant works; it only has to be the same in every process ("evolink" in ASCII).
_ADVISORY_LOCK = 0x65766F6C696E6B

_MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE evolink_meta (name text PRIMARY KEY, value text NOT NULL);
CREATE TABLE evolink_fleet (
    id int PRIMARY KEY CHECK (id = 1),
    max_in_flight int NOT NULL DEFAULT 8 CHECK (max_in_flight >= 1),
    max_credits double precision,
    credits_reserved double precision NOT NULL DEFAULT 0
);
INSERT INTO evolink_fleet (id) VALUES (1);
CREATE TABLE evolink_entries (
    seq bigserial UNIQUE,
    key text PRIMARY KEY,
    fingerprint text NOT NULL,
    line text,
    idempotency_key text NOT NULL UNIQUE,
    status text NOT NULL,
    task_id text UNIQUE,
    request_body text,
    error_code text,
    error_message text,
    result_urls text NOT NULL DEFAULT '[]',
    result_paths text NOT NULL DEFAULT '[]',
    credits_estimate double precision NOT NULL DEFAULT 0,
    credits_reserved double precision NOT NULL DEFAULT 0,
    slot boolean NOT NULL DEFAULT false,
    lease_owner text,
    lease_expires timestamptz,
    submit_started_at timestamptz,
    submitted_by text,
    finished_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    submitted_at timestamptz,
    finished_at timestamptz
);
CREATE INDEX evolink_entries_todo ON evolink_entries (seq)
    WHERE status = 'pending_submit' AND NOT slot AND lease_owner IS NULL;
CREATE INDEX evolink_entries_held ON evolink_entries (lease_expires) WHERE lease_owner IS NOT NULL;
CREATE INDEX evolink_entries_slots ON evolink_entries (key) WHERE slot;
CREATE INDEX evolink_entries_finished ON evolink_entries (finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE evolink_workers (
    id text PRIMARY KEY,
    host text NOT NULL,
    pid int NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz
);
""",
}


async def migrate(conn: Any) -> int:
    """Bring the schema up to :data:`PG_SCHEMA_VERSION`; returns the version found before."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _ADVISORY_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS evolink_schema (id int PRIMARY KEY CHECK (id = 1), version int NOT NULL)"
        )
        found = await conn.fetchval("SELECT version FROM evolink_schema WHERE id = 1")
        version = int(found or 0)
        if version > PG_SCHEMA_VERSION:
            raise JournalError(
                f"journal schema {version} is newer than this evolink_async's ({PG_SCHEMA_VERSION}); "
                "upgrade evolink-async on this machine before it joins the batch"
            )
        for step in range(version + 1, PG_SCHEMA_VERSION + 1):
            await conn.execute(_MIGRATIONS[step])
        if version < PG_SCHEMA_VERSION:
            await conn.execute(
                "INSERT INTO evolink_schema (id, version) VALUES (1, $1)"
                " ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
                PG_SCHEMA_VERSION,
            )
    return version
