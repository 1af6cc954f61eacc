"""The PostgreSQL journal's schema, created and migrated by the SDK, safe to run concurrently.

Every worker, plan and status command calls :func:`migrate` on connect. It runs in one
transaction under a transaction-scoped advisory lock, so two processes starting at once never
both create the tables (``CREATE TABLE IF NOT EXISTS`` alone races on the catalog), and one that
finds a *newer* schema refuses to touch the journal instead of misreading it.

Version 2 (added to a version 1 journal in place, rows kept) brings fencing and one-statement
claims: ``lease_epoch`` grows at each hand-over of an input (claim, take-over, ``uncertain``), and
every write a worker makes about an input names the epoch it holds, so a worker that lost the
input (paused past its lease) writes nothing over its successor. ``evolink_claim`` takes the
batch-wide bounds and the inputs in one server-side statement: no lock is ever held across a
client round trip. An ``uncertain`` input keeps its slot for ``uncertain_slot_hold`` seconds
(its task may be running), not only until a lease expires.

Version 3 journals the uploads (``evolink_uploads``, the SQLite journal's ``uploads`` table) and
shares the Files API quota among the workers: ``evolink_fleet.upload_room`` is the most files the
batch may have alive at once, ``evolink_workers.uploads_in_flight`` the room each worker took for
uploads not yet recorded, and ``evolink_take_upload_room`` takes room under the fleet row's lock
(see ``_pg_uploads``).

Version 4 makes the claim say why it took no more (``evolink_claim_v4``: a last row with no key):
this worker is at its fair share of the in-flight bound, or the bound is full, or the budget
stopped it. A worker at its share waits for one of its own inputs to end instead of asking again
every poll interval. ``evolink_claim`` stays, now a view of the new claim, for workers of the
version before that are still running while a newer one migrates the journal.
"""

from __future__ import annotations

from typing import Any

from ._entries import JournalError

__all__ = ["PG_SCHEMA_VERSION", "migrate"]

PG_SCHEMA_VERSION = 4
#: Any constant works; it only has to be the same in every process ("evolink" in ASCII).
_ADVISORY_LOCK = 0x65766F6C696E6B

#: The columns a claim hands back (``_pg_base._claimed`` reads them in this order); the version 4
#: claim adds two after them (see ``CLAIM_FUNCTION``).
_CLAIMED = """o_key text, o_fingerprint text, o_idempotency_key text, o_status text, o_task_id text,
    o_request_body text, o_error_code text, o_error_message text, o_result_urls text, o_result_paths text,
    o_created double precision, o_updated double precision, o_submitted double precision, o_line text,
    o_submit_started boolean, o_epoch bigint, o_out_of_budget boolean"""
_RETURNED = """e.key, e.fingerprint, e.idempotency_key, e.status, e.task_id, e.request_body, e.error_code,
    e.error_message, e.result_urls, e.result_paths, extract(epoch FROM e.created_at)::float8,
    extract(epoch FROM e.updated_at)::float8, extract(epoch FROM e.submitted_at)::float8, e.line,
    e.submit_started_at IS NOT NULL, e.lease_epoch"""

#: One claim, one statement: the fleet row is locked only while this function runs on the server.
#: 1. Inputs whose submit began and whose lease expired without a task id become ``uncertain``
#:    (never handed out again as if nothing had been sent); they keep their slot.
#: 2. Other expired leases are taken over (re-attached by task id, or submitted if never begun).
#: 3. New inputs, within the in-flight bound, this worker's fair share of it (the bound divided
#:    among the live workers, so no worker starves another), and the credit budget.
#: Always a last row with a NULL key: why the claim took no more. ``o_out_of_budget``: the budget
#: stopped it; ``o_bound_full``: the batch holds ``max_in_flight`` slots (any input ending frees
#: one); ``o_at_share``: this worker holds its fair share, so only its own inputs ending (or fewer
#: live workers) give it room: its share rounded up, or rounded down while the bound is full (the
#: share is rounded up, so when 64 slots are shared by 6 workers some hold 11 and others 10: a slot
#: an 11 frees is for that worker to take again, and the 10s need not race it for the slot).
CLAIM_FUNCTION = f"""
CREATE OR REPLACE FUNCTION evolink_claim_v4(p_owner text, p_limit int, p_lease double precision,
                                            p_uncertain text)
RETURNS TABLE ({_CLAIMED}, o_at_share boolean, o_bound_full boolean) LANGUAGE plpgsql AS $fn$
DECLARE
    fleet record;
    cand record;
    taken int := 0;
    in_flight int;
    mine int;
    workers int;
    share_room int;
    bound_room int;
    room int;
    added double precision := 0;
    extra double precision;
    chosen text[] := '{{}}';
    exhausted boolean := false;
BEGIN
    SELECT f.max_in_flight, f.max_credits, f.credits_reserved, f.uncertain_slot_hold INTO fleet
        FROM evolink_fleet f WHERE f.id = 1 FOR UPDATE;
    UPDATE evolink_entries e SET status = 'uncertain', lease_owner = NULL, lease_expires = NULL,
        lease_epoch = e.lease_epoch + 1, error_code = 'uncertain', error_message = p_uncertain,
        finished_at = now(), updated_at = now()
        WHERE e.key IN (SELECT x.key FROM evolink_entries x WHERE x.lease_owner IS NOT NULL
            AND x.lease_expires < now() AND x.status = 'pending_submit' AND x.submit_started_at IS NOT NULL
            AND x.task_id IS NULL FOR UPDATE SKIP LOCKED);
    RETURN QUERY UPDATE evolink_entries e SET lease_owner = p_owner,
        lease_expires = now() + p_lease * interval '1 second', lease_epoch = e.lease_epoch + 1, updated_at = now()
        WHERE e.key IN (SELECT x.key FROM evolink_entries x WHERE x.lease_owner IS NOT NULL
            AND x.lease_expires < now() ORDER BY x.lease_expires LIMIT p_limit FOR UPDATE SKIP LOCKED)
        RETURNING {_RETURNED}, false, false, false;
    GET DIAGNOSTICS taken = ROW_COUNT;
    SELECT count(*) FILTER (WHERE x.lease_owner = p_owner), count(*) INTO mine, in_flight
        FROM evolink_entries x WHERE x.slot AND (x.status <> 'uncertain'
            OR x.finished_at > now() - fleet.uncertain_slot_hold * interval '1 second');
    SELECT greatest(1, count(*)) INTO workers FROM evolink_workers w
        WHERE w.stopped_at IS NULL AND (w.heartbeat_at > now() - p_lease * interval '1 second' OR w.id = p_owner);
    share_room := ceil(fleet.max_in_flight::float8 / workers)::int - mine;
    bound_room := fleet.max_in_flight - in_flight;
    room := least(p_limit - taken, bound_room, share_room);
    IF room > 0 THEN
        FOR cand IN SELECT x.key, x.credits_estimate, x.credits_reserved FROM evolink_entries x
                WHERE x.status = 'pending_submit' AND NOT x.slot AND x.lease_owner IS NULL
                ORDER BY x.seq LIMIT room FOR UPDATE SKIP LOCKED LOOP
            extra := CASE WHEN cand.credits_reserved > 0 THEN 0 ELSE cand.credits_estimate END;
            IF fleet.max_credits IS NOT NULL AND fleet.credits_reserved + added + extra > fleet.max_credits + 1e-9 THEN
                exhausted := true;
                EXIT;
            END IF;
            added := added + extra;
            chosen := chosen || cand.key;
        END LOOP;
    END IF;
    IF cardinality(chosen) > 0 THEN
        RETURN QUERY UPDATE evolink_entries e SET slot = true, lease_owner = p_owner,
            lease_expires = now() + p_lease * interval '1 second', lease_epoch = e.lease_epoch + 1,
            credits_reserved = CASE WHEN e.credits_reserved > 0 THEN e.credits_reserved ELSE e.credits_estimate END,
            error_code = NULL, error_message = NULL, updated_at = now()
            WHERE e.key = ANY(chosen) RETURNING {_RETURNED}, false, false, false;
        UPDATE evolink_fleet f SET credits_reserved = f.credits_reserved + added WHERE f.id = 1;
    END IF;
    RETURN QUERY SELECT NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text,
        NULL::text, NULL::text, NULL::text, NULL::float8, NULL::float8, NULL::float8, NULL::text, false,
        NULL::bigint, exhausted, share_room - cardinality(chosen) <= 0 OR (bound_room - cardinality(chosen) <= 0
            AND mine + cardinality(chosen) >= floor(fleet.max_in_flight::float8 / workers)),
        bound_room - cardinality(chosen) <= 0;
END
$fn$;
"""  # noqa: S608 - built from constants only

#: The version 2 claim's name and answer, for a worker of that version still running when a newer
#: one migrates the journal: the same claim, its last row only where the budget stopped it.
CLAIM_FUNCTION_V2_VIEW = f"""
CREATE OR REPLACE FUNCTION evolink_claim(p_owner text, p_limit int, p_lease double precision, p_uncertain text)
RETURNS TABLE ({_CLAIMED}) LANGUAGE sql AS $fn$
    SELECT c.o_key, c.o_fingerprint, c.o_idempotency_key, c.o_status, c.o_task_id, c.o_request_body,
        c.o_error_code, c.o_error_message, c.o_result_urls, c.o_result_paths, c.o_created, c.o_updated,
        c.o_submitted, c.o_line, c.o_submit_started, c.o_epoch, c.o_out_of_budget
    FROM evolink_claim_v4(p_owner, p_limit, p_lease, p_uncertain) c
    WHERE c.o_key IS NOT NULL OR c.o_out_of_budget
$fn$;
"""  # noqa: S608 - built from constants only

#: Room for one more uploaded file, if the batch has it: its recorded files plus the uploads live workers
#: have under way stay below ``upload_room`` (NULL: no room set yet, the server decides). A dead
#: worker's uploads under way stop counting with its heartbeat (a file it made, unrecorded, then
#: costs a 40003 wait at worst, until it expires).
TAKE_UPLOAD_ROOM_FUNCTION = """
CREATE OR REPLACE FUNCTION evolink_take_upload_room(p_owner text, p_lease double precision, p_force boolean)
RETURNS boolean LANGUAGE plpgsql AS $fn$
DECLARE
    room int;
    alive bigint;
BEGIN
    SELECT f.upload_room INTO room FROM evolink_fleet f WHERE f.id = 1 FOR UPDATE;
    IF room IS NOT NULL AND NOT p_force THEN
        SELECT (SELECT count(*) FROM evolink_uploads) + (SELECT coalesce(sum(w.uploads_in_flight), 0)
            FROM evolink_workers w WHERE w.stopped_at IS NULL
            AND (w.heartbeat_at > now() - p_lease * interval '1 second' OR w.id = p_owner)) INTO alive;
        IF alive >= room THEN
            RETURN false;
        END IF;
    END IF;
    UPDATE evolink_workers SET uploads_in_flight = uploads_in_flight + 1 WHERE id = p_owner;
    RETURN true;
END
$fn$;
"""

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
    2: """
ALTER TABLE evolink_entries ADD COLUMN lease_epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE evolink_fleet ADD COLUMN uncertain_slot_hold double precision NOT NULL DEFAULT 1800;
ALTER TABLE evolink_workers ADD COLUMN journal_outages int NOT NULL DEFAULT 0,
    ADD COLUMN seconds_without_journal double precision NOT NULL DEFAULT 0,
    ADD COLUMN fenced_refused int NOT NULL DEFAULT 0;
""",
    # Version 2 also made the claim ``evolink_claim``: its body is not kept here, since every
    # migration runs in one transaction and step 4 makes ``evolink_claim`` anew over version 4's.
    3: """
CREATE TABLE evolink_uploads (
    file_id text PRIMARY KEY,
    key text NOT NULL,
    idempotency_key text NOT NULL,
    file_url text NOT NULL,
    uploaded_by text,
    deleting boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX evolink_uploads_by_key ON evolink_uploads (key, created_at);
ALTER TABLE evolink_fleet ADD COLUMN upload_room int;
ALTER TABLE evolink_workers ADD COLUMN uploads_in_flight int NOT NULL DEFAULT 0;
""" + TAKE_UPLOAD_ROOM_FUNCTION,
    4: CLAIM_FUNCTION + CLAIM_FUNCTION_V2_VIEW,
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
