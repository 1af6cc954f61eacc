"""The PostgreSQL journal's promises, one call at a time (no sandbox, no worker processes)."""

from __future__ import annotations

import json
import subprocess
import sys

import anyio
import asyncpg
import pytest

from evolink_async.batch import PG_SCHEMA_VERSION, ManifestInput, PgJournal, open_journal
from evolink_async.batch._entries import EntryStatus, JournalError, JournalMismatchError


def _inputs(count: int, prompt: str = "autumn") -> list[ManifestInput]:
    return [ManifestInput(key=f"k{i:03d}", model="qwen-image-edit", prompt=prompt,
                          image_urls=(f"https://img.example.com/{i}.png",)) for i in range(count)]  # fmt: skip


async def test_open_journal_picks_the_store_by_url(journal_url: str, tmp_path: object) -> None:
    journal = await open_journal(journal_url)
    try:
        assert isinstance(journal, PgJournal)
        assert (await journal.counts())[EntryStatus.PENDING_SUBMIT] == 0
    finally:
        await journal.aclose()


def test_the_sqlite_path_never_imports_asyncpg() -> None:
    code = ("import sys, evolink_async, evolink_async.batch, evolink_async.cli; "
            "assert 'asyncpg' not in sys.modules, 'asyncpg imported'")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_claims_hand_each_input_to_one_worker_within_the_bound(journal_url: str) -> None:
    async with PgJournal(journal_url) as journal:
        await journal.plan(_inputs(20))
        await journal.set_limits(max_in_flight=6)
        claims = await asyncio_gather(*(journal.claim(f"w{i}", limit=4, lease=30) for i in range(4)))
        keys = [c.entry.key for claim in claims for c in claim.items]
        assert len(keys) == len(set(keys)) == 6  # the batch-wide bound, not 4 workers x 4


async def asyncio_gather(*coroutines: object) -> list[object]:
    results: list[object] = [None] * len(coroutines)

    async def one(index: int, coroutine: object) -> None:
        results[index] = await coroutine  # type: ignore[misc]

    async with anyio.create_task_group() as group:
        for index, coroutine in enumerate(coroutines):
            group.start_soon(one, index, coroutine)
    return results


async def test_an_expired_submit_without_a_task_id_becomes_uncertain_not_resubmitted(journal_url: str) -> None:
    async with PgJournal(journal_url) as journal:
        await journal.plan(_inputs(2))
        # Leases long enough that a busy machine does not expire them between these steps.
        (first, second) = (await journal.claim("dead", limit=2, lease=1.5)).items
        assert await journal.begin_submit(first.entry.key, "dead", '{"model":"qwen-image-edit"}',
                                          epoch=first.epoch) is not None  # fmt: skip
        await journal.record_submitted(second.entry.key, "task-unified-1-abc", owner="dead", epoch=second.epoch,
                                       lease=1.5)  # fmt: skip
        with anyio.fail_after(30):  # the dead worker's leases run out
            while not (taken := (await journal.claim("alive", limit=5, lease=30)).items):
                await anyio.sleep(0.05)
        assert [c.entry.key for c in taken] == [second.entry.key]  # re-attached by its task id
        assert taken[0].entry.task_id == "task-unified-1-abc"
        uncertain = await journal.get(first.entry.key)
        assert uncertain is not None
        assert uncertain.status is EntryStatus.UNCERTAIN
        # The dead worker's late submit attempt is fenced off.
        assert await journal.begin_submit(first.entry.key, "dead", "{}", epoch=first.epoch) is None
        # Settling by resubmitting: back in the pool with the *same* idempotency key and body.
        assert await journal.requeue_uncertain() == 1
        (again,) = (await journal.claim("alive", limit=5, lease=30)).items
        assert again.entry.idempotency_key == first.entry.idempotency_key
        assert await journal.begin_submit(again.entry.key, "alive", '{"other":1}',
                                          epoch=again.epoch) == '{"model":"qwen-image-edit"}'  # fmt: skip


async def test_a_changed_line_is_refused_and_nothing_is_loaded(journal_url: str) -> None:
    async with PgJournal(journal_url) as journal:
        assert (await journal.plan(_inputs(5))).added == 5
        with pytest.raises(JournalMismatchError, match="k000"):
            await journal.plan([*_inputs(7)[5:], *_inputs(1, prompt="winter")])
        assert sum((await journal.counts()).values()) == 5  # k005, k006 rolled back with the refusal


async def test_the_budget_stops_claims_and_a_refused_submit_gives_credits_back(journal_url: str) -> None:
    async with PgJournal(journal_url) as journal:
        await journal.plan(_inputs(5))
        await journal.set_limits(max_in_flight=10, max_credits=2.5)
        claim = await journal.claim("w", limit=10, lease=30)
        assert len(claim.items) == 2
        assert claim.budget_exhausted
        first = claim.items[0]
        await journal.record_outcome(first.entry.key, EntryStatus.SUBMIT_FAILED, owner="w", epoch=first.epoch,
                                     error_code="invalid", error_message="bad")  # fmt: skip
        assert (await journal.limits())["credits_reserved"] == 1.0
        assert len((await journal.claim("w", limit=10, lease=30)).items) == 1


async def test_a_claim_says_when_the_worker_is_at_its_share_or_the_bound_is_full(journal_url: str) -> None:
    async with PgJournal(journal_url) as journal:
        await journal.plan(_inputs(10))
        await journal.set_limits(max_in_flight=4)
        await journal.register_worker("a", host="h", pid=1)
        # Alone, "a" may hold the whole bound: it takes 3 of it, then the last slot.
        first = await journal.claim("a", limit=3, lease=30)
        assert (len(first.items), first.at_share, first.bound_full) == (3, False, False)
        last = await journal.claim("a", limit=3, lease=30)
        assert (len(last.items), last.at_share, last.bound_full) == (1, True, True)
        # A second worker: the bound is full, and it is under its share (2 of 4): a slot that "a"
        # frees is for it, so it must keep asking.
        await journal.register_worker("b", host="h", pid=2)
        empty = await journal.claim("b", limit=3, lease=30)
        assert (empty.items, empty.at_share, empty.bound_full) == ((), False, True)
        # "a" holds more than its share now: only its own inputs ending can give it room, and they
        # give it none until it is under its share.
        over = await journal.claim("a", limit=3, lease=30)
        assert (over.items, over.at_share) == ((), True)
        for claimed in (*first.items, *last.items)[:2]:
            assert await journal.record_outcome(claimed.entry.key, EntryStatus.FAILED, owner="a", epoch=claimed.epoch,
                                                error_code="x", error_message="x")  # fmt: skip
        taken = await journal.claim("b", limit=3, lease=30)
        assert (len(taken.items), taken.at_share, taken.bound_full) == (2, True, True)
        assert (await journal.claim("a", limit=3, lease=30)).at_share


async def test_a_claim_says_when_no_input_was_left_to_take(journal_url: str) -> None:
    async with PgJournal(journal_url) as journal:
        await journal.plan(_inputs(3))
        await journal.set_limits(max_in_flight=10)
        cut_short = await journal.claim("a", limit=2, lease=30)  # its own limit, not the inputs, stopped it
        assert (len(cut_short.items), cut_short.nothing_left) == (2, False)
        last = await journal.claim("a", limit=2, lease=30)
        assert (len(last.items), last.nothing_left, last.at_share, last.bound_full) == (1, True, False, False)
        assert (await journal.claim("a", limit=2, lease=30)).nothing_left
        # Stopped by a bound, not by a lack of inputs: not "nothing left".
        await journal.plan(_inputs(5))
        await journal.set_limits(max_in_flight=3)
        full = await journal.claim("a", limit=2, lease=30)
        assert (full.items, full.nothing_left, full.bound_full) == ((), False, True)


async def test_with_the_bound_full_a_worker_holding_its_share_rounded_down_is_at_its_share(journal_url: str) -> None:
    async with PgJournal(journal_url) as journal:
        await journal.plan(_inputs(10))
        await journal.set_limits(max_in_flight=5)  # three workers: a share of 2 rounded up, 1 rounded down
        for number, worker in enumerate("abc"):
            await journal.register_worker(worker, host="h", pid=number)
        assert [len((await journal.claim(w, limit=5, lease=30)).items) for w in "ab"] == [2, 2]
        # "c" takes the last slot: it holds its share rounded down and the bound is full. A slot that
        # "a" or "b" frees is theirs to take again (each then holds less than its share): "c" waits
        # for its own input to end instead of racing them for it.
        last = await journal.claim("c", limit=5, lease=30)
        assert (len(last.items), last.at_share, last.bound_full) == (1, True, True)
        # Under its share rounded down, with the bound full, a worker keeps asking.
        await journal.set_limits(max_in_flight=4)  # a share of 2 rounded up, 1 rounded down, all 5 held
        (held,) = last.items
        assert await journal.record_outcome(held.entry.key, EntryStatus.FAILED, owner="c", epoch=held.epoch,
                                            error_code="x", error_message="x")  # fmt: skip
        empty = await journal.claim("c", limit=5, lease=30)
        assert (empty.items, empty.at_share, empty.bound_full) == ((), False, True)


async def test_a_worker_of_the_version_before_still_claims_from_a_migrated_journal(journal_url: str) -> None:
    """``evolink_claim`` answers as it did in schema versions 2 and 3: its items, and a last row
    without a key only where the budget stopped it (that version reads any such row so)."""
    from evolink_async.batch._pg_schema import _MIGRATIONS

    conn = await asyncpg.connect(journal_url)
    try:  # a version 3 journal, as the version before made it
        await conn.execute(_MIGRATIONS[1] + _MIGRATIONS[2] + _MIGRATIONS[3])
        await conn.execute("CREATE TABLE evolink_schema (id int PRIMARY KEY CHECK (id = 1), version int NOT NULL);"
                           "INSERT INTO evolink_schema VALUES (1, 3)")  # fmt: skip
    finally:
        await conn.close()
    async with PgJournal(journal_url) as journal:
        assert await journal.pool.fetchval("SELECT version FROM evolink_schema") == PG_SCHEMA_VERSION
        await journal.plan(_inputs(5))
        await journal.set_limits(max_in_flight=2, max_credits=2.5)
        query = "SELECT * FROM evolink_claim($1, $2, $3, $4)"
        rows = await journal.pool.fetch(query, "old", 1, 30.0, "uncertain")
        assert [len(row) for row in rows] == [17]
        assert rows[0]["o_key"] == "k000"
        assert rows[0]["o_out_of_budget"] is False
        rows = await journal.pool.fetch(query, "old", 5, 30.0, "uncertain")
        assert [row["o_key"] for row in rows] == ["k001"]  # the bound, not the budget: no budget row
        await journal.set_limits(max_in_flight=5)
        rows = await journal.pool.fetch(query, "old", 5, 30.0, "uncertain")
        assert [(row["o_key"], row["o_out_of_budget"]) for row in rows] == [(None, True)]


async def test_a_newer_schema_is_refused(journal_url: str) -> None:
    async with PgJournal(journal_url) as journal:
        await journal.pool.execute("UPDATE evolink_schema SET version = $1", PG_SCHEMA_VERSION + 1)
    with pytest.raises(JournalError, match=f"journal schema {PG_SCHEMA_VERSION + 1} is newer"):
        await PgJournal.open(journal_url)


async def test_concurrent_first_opens_create_the_schema_once(journal_url: str) -> None:
    journals = await asyncio_gather(*(PgJournal.open(journal_url) for _ in range(6)))
    for journal in journals:
        await journal.aclose()  # type: ignore[attr-defined]


async def test_a_failed_download_is_retried_by_a_later_worker_only_and_a_success_clears_its_error(
    journal_url: str,
) -> None:
    async with PgJournal(journal_url) as journal:
        await journal.plan(_inputs(2))
        first_start = await journal.register_worker("w1", host="h", pid=1)
        (one, two) = (await journal.claim("w1", limit=2, lease=30)).items
        for number, claimed in enumerate((one, two)):
            key = claimed.entry.key
            await journal.record_submitted(key, f"task-unified-1-{number}", owner="w1", epoch=claimed.epoch, lease=30)
            await journal.record_outcome(key, EntryStatus.COMPLETED, owner="w1", epoch=claimed.epoch,
                                         result_urls=["http://r/0.png"], final=False)  # fmt: skip
            await journal.record_outcome(key, EntryStatus.COMPLETED, owner="w1", epoch=claimed.epoch,
                                         result_urls=["http://r/0.png"], error_code="download_http_status",
                                         error_message="HTTP 404")  # fmt: skip
        # The worker that failed them does not take them again in the same run (no retry loop) ...
        assert await journal.claim_downloads("w1", limit=5, lease=30, failed_before=first_start) == []
        assert (await journal.claim("w1", limit=5, lease=30)).items == ()
        # ... a worker started later does, as completed tasks with their task ids: no submit, no slot.
        later_start = await journal.register_worker("w2", host="h", pid=2)
        retries = await journal.claim_downloads("w2", limit=5, lease=30, failed_before=later_start)
        assert sorted((c.entry.key, c.entry.status, c.entry.task_id) for c in retries) == [
            (one.entry.key, EntryStatus.COMPLETED, "task-unified-1-0"),
            (two.entry.key, EntryStatus.COMPLETED, "task-unified-1-1"),
        ]
        assert await journal.claim_downloads("w3", limit=5, lease=30, failed_before=later_start) == []  # held
        (retried_one,) = [c for c in retries if c.entry.key == one.entry.key]
        await journal.record_downloads(one.entry.key, ["out/k000.result-0.png"], owner="w2", epoch=retried_one.epoch)
        done = await journal.get(one.entry.key)
        assert done is not None
        assert (done.status, done.error_code, done.error_message) == (EntryStatus.DOWNLOADED, None, None)


async def test_writes_are_fenced_by_the_lease_epoch_and_a_late_task_id_is_still_recorded(journal_url: str) -> None:
    async with PgJournal(journal_url) as journal:
        await journal.plan(_inputs(2))
        (paused, other) = (await journal.claim("paused", limit=2, lease=1.5)).items
        assert await journal.begin_submit(paused.entry.key, "paused", "{}", epoch=paused.epoch) == "{}"
        with anyio.fail_after(30):  # the paused worker's leases run out
            while not (claimed := (await journal.claim("successor", limit=5, lease=30)).items):
                await anyio.sleep(0.05)
        # Taken over: the begun submit is uncertain (its slot kept), the other input is claimed again.
        (taken,) = claimed
        assert taken.entry.key == other.entry.key
        assert taken.epoch > other.epoch
        # Every write of the paused worker about the taken input is refused, and counted.
        assert not await journal.record_outcome(other.entry.key, EntryStatus.FAILED, owner="paused",
                                                epoch=other.epoch, error_code="x", error_message="y")  # fmt: skip
        assert not await journal.release_submit(other.entry.key, owner="paused", epoch=other.epoch,
                                                error_code="x", error_message="y")  # fmt: skip
        assert not await journal.holds(other.entry.key, owner="paused", epoch=other.epoch, lease=30)
        assert await journal.begin_submit(other.entry.key, "paused", "{}", epoch=other.epoch) is None
        assert journal.fenced_refused == 4
        assert await journal.renew("paused", lease=30, held={other.entry.key: other.epoch}) == set()
        # The successor's own writes go through.
        assert await journal.record_outcome(taken.entry.key, EntryStatus.FAILED, owner="successor",
                                            epoch=taken.epoch, error_code="x", error_message="y")  # fmt: skip
        # A task id that comes back late (the paused worker resumes) is recorded: money was spent.
        epoch = await journal.record_submitted(paused.entry.key, "task-late", owner="paused", epoch=paused.epoch,
                                               lease=30, idempotency_key=paused.entry.idempotency_key)  # fmt: skip
        assert epoch is not None
        assert epoch > paused.epoch
        entry = await journal.get(paused.entry.key)
        assert entry is not None
        assert (entry.status, entry.task_id) == (EntryStatus.SUBMITTED, "task-late")
        # ... but never over another task id, nor where another worker holds the input.
        assert await journal.record_submitted(paused.entry.key, "task-other", owner="x", epoch=-1, lease=30,
                                              idempotency_key=paused.entry.idempotency_key) is None  # fmt: skip


async def test_a_version_1_journal_is_migrated_in_place(journal_url: str) -> None:
    from evolink_async.batch._pg_schema import _MIGRATIONS

    conn = await asyncpg.connect(journal_url)
    try:
        await conn.execute(_MIGRATIONS[1])
        await conn.execute("CREATE TABLE evolink_schema (id int PRIMARY KEY CHECK (id = 1), version int NOT NULL);"
                           "INSERT INTO evolink_schema VALUES (1, 1);"
                           "INSERT INTO evolink_entries (key, fingerprint, idempotency_key, status)"
                           " VALUES ('old', 'f', 'idem-old', 'pending_submit')")  # fmt: skip
    finally:
        await conn.close()
    async with PgJournal(journal_url) as journal:
        assert await journal.pool.fetchval("SELECT version FROM evolink_schema") == PG_SCHEMA_VERSION
        (claimed,) = (await journal.claim("w", limit=5, lease=30)).items
        assert (claimed.entry.key, claimed.epoch) == ("old", 1)
        assert await journal.uploads() == []  # version 3: the upload record


async def test_status_lists_uncertain_inputs_with_what_to_do(journal_url: str) -> None:
    from evolink_async.batch._fleet_status import UNCERTAIN_ADVICE, fleet_status

    async with PgJournal(journal_url) as journal:
        await journal.plan(_inputs(3))
        await journal.set_limits(max_in_flight=3)
        (sent,) = (await journal.claim("gone", limit=1, lease=1.5)).items
        assert await journal.begin_submit(sent.entry.key, "gone", "{}", epoch=sent.epoch) == "{}"
        assert len((await journal.claim("other", limit=5, lease=30)).items) == 2
        with anyio.fail_after(30):  # its lease runs out; the next claim finds the submit unaccounted for
            while (await journal.get(sent.entry.key)).status is not EntryStatus.UNCERTAIN:  # type: ignore[union-attr]
                await journal.claim("other", limit=1, lease=30)
                await anyio.sleep(0.05)
        status = await fleet_status(journal)
        assert [(u["key"], u["submitted_by"], u["idempotency_key"]) for u in status.uncertain] == [
            (sent.entry.key, "gone", sent.entry.idempotency_key)
        ]
        assert UNCERTAIN_ADVICE in "\n".join(status.lines())
        json.dumps(status.to_json())
        # The uncertain input keeps its slot (its task may run): none is free for a new input.
        assert status.in_flight == 3
        await journal.plan(_inputs(4))  # one more input: no slot for it while the uncertain one holds its own
        assert len((await journal.claim("other", limit=5, lease=30)).items) == 0
