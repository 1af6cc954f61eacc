"""The fleet's room for uploaded files, one call at a time: one budget for every worker of the batch,
kept in the journal (no sandbox, no worker processes)."""

from __future__ import annotations

from evolink_async.batch import PgJournal
from evolink_async.batch._pg_uploads import PgUploadRoom


async def test_the_room_is_shared_by_every_worker_and_a_deletion_frees_it_for_all(journal_url: str) -> None:
    async with PgJournal(journal_url) as journal:
        for worker in ("a", "b"):
            await journal.register_worker(worker, host="h", pid=1)
        a, b = PgUploadRoom(journal, "a", lease=30), PgUploadRoom(journal, "b", lease=30)
        await a.open(3)
        assert await a.take()
        assert await b.take()
        await journal.record_upload("k0", "idem-0", "f0", "https://files.example/f0", owner="a")  # a's upload is a file
        assert await a.take()  # f0, b's upload under way, a's second one: 3
        assert not await b.take()
        assert not await a.take()
        await b.give_back()  # b's upload made no file
        assert await b.take()
        await a.deleting("f0")
        assert not await b.take()  # being deleted: it may still be alive
        assert await a.alive() == frozenset()  # ... but no longer the batch's room to count
        await a.freed("f0")
        assert await b.take()  # freed for every worker at once
        assert await journal.uploads() == []


async def test_a_dead_workers_uploads_under_way_stop_counting_with_its_heartbeat(journal_url: str) -> None:
    async with PgJournal(journal_url) as journal:
        for worker in ("dead", "alive"):
            await journal.register_worker(worker, host="h", pid=1)
        dead, alive = PgUploadRoom(journal, "dead", lease=30), PgUploadRoom(journal, "alive", lease=30)
        await alive.open(1)
        assert await dead.take()
        assert not await alive.take()
        await journal.pool.execute("UPDATE evolink_workers SET heartbeat_at = now() - interval '1 hour'"
                                   " WHERE id = 'dead'")  # fmt: skip
        assert await alive.take()


async def test_recording_an_upload_twice_is_one_record_and_frees_the_room_taken_once(journal_url: str) -> None:
    async with PgJournal(journal_url) as journal:
        await journal.register_worker("w", host="h", pid=1)
        room = PgUploadRoom(journal, "w", lease=30)
        await room.open(2)
        assert await room.take()
        for _ in range(2):  # a retry after a lost answer, or a file adopted by another worker meanwhile
            await journal.record_upload("k0", "idem-0", "f0", "https://files.example/f0", owner="w")
        assert [u.file_id for u in await journal.uploads("k0")] == ["f0"]
        assert await room.take()  # f0 and this one: 2
        assert not await room.take()
