"""The batch journal: what survives a crash, what a resume sees, and that the loop never waits on disk."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from evolink_async.batch._entries import (
    EntryStatus,
    JournalCorruptError,
    JournalError,
    JournalMismatchError,
    JournalStateError,
    request_fingerprint,
)
from evolink_async.batch._sqlite_store import SCHEMA_VERSION, Journal

KEY_SHAPE = re.compile(r"[A-Za-z0-9._-]{16,96}")
FP = request_fingerprint({"model": "qwen-image-edit", "prompt": "make it blue"})
OTHER_FP = request_fingerprint({"model": "qwen-image-edit", "prompt": "make it red"})


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite3"


def raw_rows(path: Path) -> dict[str, tuple[str, str | None, str]]:
    """What another process would read from the file right now: key -> (idempotency key, task id, status)."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT key, idempotency_key, task_id, status FROM entries").fetchall()
    return {key: (idem, task, status) for key, idem, task, status in rows}


async def test_reserve_commits_a_valid_idempotency_key_before_returning(path: Path) -> None:
    async with Journal(path) as journal:
        entry = await journal.reserve("a.png", FP)
        assert KEY_SHAPE.fullmatch(entry.idempotency_key)
        assert entry.needs_submit
        assert not entry.needs_watch
        assert entry.task_id is None
        # Visible to an independent connection while the journal is still open: it is committed.
        assert raw_rows(path)["a.png"] == (entry.idempotency_key, None, "pending_submit")


async def test_reserving_again_returns_the_same_key(path: Path) -> None:
    async with Journal(path) as journal:
        first = await journal.reserve("a.png", FP)
        again = await journal.reserve("a.png", FP)
        other = await journal.reserve("b.png", FP)
    assert again == first
    assert other.idempotency_key != first.idempotency_key
    async with Journal(path) as journal:
        assert (await journal.reserve("a.png", FP)).idempotency_key == first.idempotency_key


async def test_full_lifecycle(path: Path) -> None:
    async with Journal(path) as journal:
        entry = await journal.reserve("a.png", FP)
        assert await journal.record_request("a.png", '{"prompt": "x"}') == '{"prompt": "x"}'
        # A resume must re-send the first body (same key, same body), not a rebuilt one.
        assert await journal.record_request("a.png", '{"prompt": "x", "image_urls": ["new"]}') == '{"prompt": "x"}'
        entry = await journal.record_submitted("a.png", "task-unified-1")
        assert entry.needs_watch
        assert entry.status is EntryStatus.SUBMITTED
        assert entry.submitted_at
        entry = await journal.record_outcome("a.png", "completed", result_urls=["https://files.example/1.png"])
        assert entry.needs_download
        assert entry.result_urls == ("https://files.example/1.png",)
        entry = await journal.record_downloads("a.png", [path.parent / "a.result-0.png"])
        assert entry.status is EntryStatus.DOWNLOADED
        assert entry.is_finished
        assert entry.result_paths == (str(path.parent / "a.result-0.png"),)
        assert await journal.find_task("task-unified-1") == entry
        assert await journal.get("missing.png") is None
        counts = await journal.counts()
    assert counts[EntryStatus.DOWNLOADED] == 1
    assert sum(counts.values()) == 1
    assert set(counts) == set(EntryStatus)


async def test_a_second_task_for_one_input_is_refused(path: Path) -> None:
    async with Journal(path) as journal:
        await journal.reserve("a.png", FP)
        await journal.reserve("b.png", FP)
        await journal.record_submitted("a.png", "task-1")
        assert (await journal.record_submitted("a.png", "task-1")).task_id == "task-1"  # replayed answer: no-op
        with pytest.raises(JournalStateError, match="task-2"):
            await journal.record_submitted("a.png", "task-2")
        with pytest.raises(JournalStateError, match=r"already belongs to 'a\.png'"):
            await journal.record_submitted("b.png", "task-1")
        with pytest.raises(JournalError, match="reserve it first"):
            await journal.record_submitted("nope.png", "task-3")


async def test_outcome_transitions(path: Path) -> None:
    async with Journal(path) as journal:
        await journal.reserve("a.png", FP)
        with pytest.raises(JournalStateError):
            await journal.record_outcome("a.png", EntryStatus.COMPLETED)  # no task yet
        with pytest.raises(ValueError, match="status must be one of"):
            await journal.record_outcome("a.png", "submitted")
        refused = await journal.record_outcome("a.png", "submit_failed", error_code="invalid_parameters")
        assert refused.is_finished
        assert refused.error_code == "invalid_parameters"

        await journal.reserve("b.png", FP)
        await journal.record_submitted("b.png", "task-b")
        timed_out = await journal.record_outcome("b.png", "timed_out")
        assert timed_out.needs_watch  # re-attaching to a task the client gave up on costs nothing
        await journal.record_outcome("b.png", "completed")
        await journal.record_downloads("b.png", ["b.result-0.png"])
        late = await journal.record_outcome("b.png", "completed")  # a duplicate webhook after the download
        assert late.status is EntryStatus.DOWNLOADED
        with pytest.raises(JournalStateError):
            await journal.record_outcome("b.png", "failed")
        with pytest.raises(JournalStateError, match="only completed"):
            await journal.record_downloads("a.png", ["x.png"])


async def test_changed_request_is_an_error_unless_restart_is_asked_for(path: Path) -> None:
    async with Journal(path) as journal:
        first = await journal.reserve("a.png", FP)
        await journal.record_request("a.png", "{}")
        await journal.record_submitted("a.png", "task-1")
        with pytest.raises(JournalMismatchError) as caught:
            await journal.reserve("a.png", OTHER_FP)
        assert caught.value.what == "a.png"
        assert caught.value.stored == FP
        assert caught.value.given == OTHER_FP
        unchanged = await journal.get("a.png")
        assert unchanged is not None
        assert unchanged.task_id == "task-1"

        fresh = await journal.reserve("a.png", OTHER_FP, restart_on_mismatch=True)
    assert fresh.needs_submit
    assert fresh.task_id is None
    assert fresh.request_body is None
    assert fresh.fingerprint == OTHER_FP
    assert fresh.idempotency_key != first.idempotency_key  # the old key belongs to the old body


async def test_restart_retries_a_failure_under_a_new_key(path: Path) -> None:
    async with Journal(path) as journal:
        first = await journal.reserve("a.png", FP)
        await journal.record_submitted("a.png", "task-1")
        await journal.record_outcome("a.png", "failed", error_code="service_error", error_message="boom")
        again = await journal.restart("a.png")
    assert again.needs_submit
    assert again.error_code is None
    assert again.fingerprint == FP
    assert again.idempotency_key != first.idempotency_key


async def test_meta_identifies_the_batch(path: Path) -> None:
    async with Journal(path) as journal:
        await journal.ensure_meta({"model": "qwen-image-edit", "prompt": "blue"})
        await journal.ensure_meta({"model": "qwen-image-edit", "prompt": "blue"})
        with pytest.raises(JournalMismatchError, match="meta:prompt") as caught:
            await journal.ensure_meta({"argv": "evolink batch", "prompt": "red"})
        assert caught.value.stored == "blue"
        assert await journal.get_meta("argv") is None  # the failed check wrote nothing
        await journal.set_meta("argv", "evolink batch in/ out/")
        assert await journal.get_meta("argv") == "evolink batch in/ out/"


async def test_schema_is_versioned_and_foreign_files_are_refused(tmp_path: Path, path: Path) -> None:
    async with Journal(path):
        pass
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(JournalError, match="newer"):
        await Journal.open(path)

    other_db = tmp_path / "app.sqlite3"
    with sqlite3.connect(other_db) as conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
    with pytest.raises(JournalError, match="not an evolink journal"):
        await Journal.open(other_db)

    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database, just text " * 100)
    with pytest.raises(JournalCorruptError, match="is damaged: file is not a database") as caught:
        await Journal.open(garbage)
    assert caught.value.path == str(garbage)


async def test_open_and_close(path: Path) -> None:
    journal = await Journal.open(path, synchronous="normal")
    await journal.reserve("a.png", FP)
    await journal.aclose()
    await journal.aclose()  # idempotent
    with pytest.raises(JournalError, match="not open"):
        await journal.get("a.png")
    with pytest.raises(ValueError, match="synchronous"):
        Journal(path, synchronous="off")  # type: ignore[arg-type]


def test_fingerprint_ignores_key_order_and_sees_content() -> None:
    assert request_fingerprint({"a": 1, "b": [1, 2]}) == request_fingerprint({"b": [1, 2], "a": 1})
    assert request_fingerprint({"a": 1}) != request_fingerprint({"a": 2})


# -- concurrency and scale ---------------------------------------------------------------------


async def test_many_concurrent_writers(path: Path) -> None:
    seen: dict[str, set[str]] = {}
    async with Journal(path, synchronous="normal") as journal:

        async def one(index: int) -> None:
            key = f"img-{index % 50:03d}.png"  # 4 coroutines race on each key
            entry = await journal.reserve(key, FP)
            seen.setdefault(key, set()).add(entry.idempotency_key)
            if index < 50:
                await journal.record_submitted(key, f"task-{index:03d}")

        async with anyio.create_task_group() as tg:
            for index in range(200):
                tg.start_soon(one, index)
        counts = await journal.counts()
    assert all(len(keys) == 1 for keys in seen.values()), "one input got two idempotency keys"
    assert len(seen) == 50
    assert counts[EntryStatus.SUBMITTED] == 50
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_entries_are_paged_in_key_order(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with Journal(path, synchronous="normal") as journal:
        for index in range(1050):
            await journal.reserve(f"{index:05d}.png", FP)
            if index % 3 == 0:
                await journal.record_submitted(f"{index:05d}.png", f"task-{index}")

        queries: list[int] = []
        real_run = journal._run

        async def counting_run(work, **kwargs):  # type: ignore[no-untyped-def]
            queries.append(1)
            return await real_run(work, **kwargs)

        monkeypatch.setattr(journal, "_run", counting_run)
        keys = []
        async for entry in journal.entries(page_size=100):
            keys.append(entry.key)
            if entry.needs_submit:  # updating rows mid-iteration must not skip or repeat any
                await journal.record_submitted(entry.key, f"late-{entry.key}")
        assert keys == [f"{index:05d}.png" for index in range(1050)]
        page_queries = len(queries) - 700  # the 700 record_submitted calls above
        assert page_queries == 11, "rows were not fetched a page at a time"

        monkeypatch.undo()
        late = [entry.task_id async for entry in journal.entries(status=EntryStatus.SUBMITTED, page_size=7)]
        assert len(late) == 1050
        assert [e async for e in journal.entries(status=["failed", "downloaded"])] == []


async def test_sqlite_waits_never_block_the_event_loop(path: Path) -> None:
    """Another process holds the write lock; the journal waits in its thread while the loop runs on.

    If the wait happened on the loop, the ticker (which releases the lock) could never run and the
    reserve would fail with "database is locked" after busy_timeout.
    """
    async with Journal(path, busy_timeout=20) as journal:
        await journal.reserve("warm-up.png", FP)
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        ticks_while_waiting = 0
        reserved = anyio.Event()

        async def ticker() -> None:
            nonlocal ticks_while_waiting
            while not reserved.is_set():
                ticks_while_waiting += 1
                if ticks_while_waiting == 20:
                    blocker.execute("COMMIT")  # only a running loop ever gets here
                await anyio.sleep(0.01)

        async def writer() -> None:
            await journal.reserve("blocked.png", FP)
            reserved.set()

        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ticker)
                tg.start_soon(writer)
        blocker.close()
    assert ticks_while_waiting >= 20


# -- crash safety ------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import anyio
    from evolink_async.batch._sqlite_store import Journal

    async def main(path, synchronous):
        journal = await Journal.open(path, synchronous=synchronous)
        await journal.ensure_meta({"prompt": "blue"})
        done = 0

        async def one(index):
            nonlocal done
            key = f"in/{index:03d}.png"
            entry = await journal.reserve(key, "fp")
            line = f"reserved {key} {entry.idempotency_key}"
            if index % 2 == 0:
                await journal.record_submitted(key, f"task-{index}")
                line += f" task-{index}"
            print(line, flush=True)
            done += 1
            if done == 30:  # mid-batch: other coroutines are still writing
                os.kill(os.getpid(), signal.SIGKILL)
            await anyio.sleep(0)

        async with anyio.create_task_group() as tg:
            for index in range(200):
                tg.start_soon(one, index)

    anyio.run(main, sys.argv[1], sys.argv[2])
    """
)


@pytest.mark.parametrize("synchronous", ["full", "normal"])
async def test_journal_survives_sigkill_mid_batch(path: Path, synchronous: str) -> None:
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), synchronous], capture_output=True, text=True, timeout=60
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    reported = [line.split() for line in child.stdout.splitlines()]
    assert len(reported) >= 30

    rows = raw_rows(path)  # readable without recovery tools: WAL replays on open
    for fields in reported:
        key, idem = fields[1], fields[2]
        assert rows[key][0] == idem, "an acknowledged reserve was lost"
        if len(fields) == 4:
            assert rows[key][1:] == (fields[3], "submitted"), "an acknowledged task id was lost"

    # The resume: every input that has a row keeps its key and task; only the rest are new.
    async with Journal(path) as journal:
        await journal.ensure_meta({"prompt": "blue"})
        new_keys = 0
        for index in range(200):
            key = f"in/{index:03d}.png"
            entry = await journal.reserve(key, "fp")
            if key in rows:
                assert entry.idempotency_key == rows[key][0]
                assert entry.task_id == rows[key][1]
                assert entry.needs_watch == (rows[key][1] is not None)
            else:
                new_keys += 1
        assert new_keys == 200 - len(rows)
        assert sum((await journal.counts()).values()) == 200
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_unsubmitted_row_keeps_its_body_for_the_resubmit(path: Path) -> None:
    body = json.dumps({"model": "qwen-image-edit", "image_urls": ["https://files.example/first-upload.png"]})
    async with Journal(path) as journal:
        entry = await journal.reserve("a.png", FP)
        await journal.record_request("a.png", body)
        # (crash here: the submit may or may not have reached the server)
    async with Journal(path) as journal:
        resumed = await journal.reserve("a.png", FP)
        assert resumed.needs_submit
        assert resumed.idempotency_key == entry.idempotency_key
        assert resumed.request_body == body


async def test_a_write_cancelled_from_outside_anyio_finishes_before_the_close(path: Path) -> None:
    """An event loop's shutdown cancels tasks with ``task.cancel()``, which AnyIO's shield does not
    stop: the caller leaves while its thread is still writing. The close must wait for that write;
    closing the connection under a running statement crashed the interpreter (SIGSEGV, seen at Ctrl-C)."""
    import asyncio

    journal = await Journal.open(path, busy_timeout=20)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the journal's write now waits in its thread for the file lock
    try:
        writing = asyncio.create_task(journal.reserve("a.png", FP))
        with anyio.fail_after(10):
            while not journal._in_use.locked():  # its thread is inside the write
                await anyio.sleep(0.01)
        writing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writing
        closing = asyncio.create_task(journal.aclose())
        await anyio.sleep(0.05)
        assert not closing.done()  # still waiting for the write, not closing under it
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    with anyio.fail_after(20):
        await closing
    assert list(raw_rows(path)) == ["a.png"]  # the write the caller left went through whole
