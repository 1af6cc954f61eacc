"""A journal that was deleted, emptied, overwritten or torn never makes a batch pay twice.

Each damage is done to the journal of a finished 6-input batch; the sandbox's ledger counts
what was billed. A run either refuses, naming the journal and why, or resumes without billing
any input a second time; ``new_journal=True`` starts a new journal that keeps the results on disk.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evolink_async import EvolinkClient, Remedy
from evolink_async.batch._entries import EntryStatus, JournalCorruptError, JournalLostError
from evolink_async.batch._evidence import wal_problem
from evolink_async.batch._run import Batch, plan_batch
from evolink_async.batch._spec import LOCK_NAME, BatchEvent, BatchSpec
from evolink_async.batch._sqlite_store import Journal, Synchronous
from evolink_async.sandbox import Sandbox
from tests.helpers.images import write_png

Build = Callable[..., EvolinkClient]
SUBMITS = "POST /v1/images/generations"
COUNT = 6


def _spec(tmp_path: Path, **options: object) -> BatchSpec:
    return BatchSpec(model="qwen-image-edit", prompt="make it autumn", input_dir=tmp_path / "in",
                     output_dir=tmp_path / "out", **options)  # type: ignore[arg-type]  # fmt: skip


async def _finished_batch(sandbox: Sandbox, build: Build, tmp_path: Path) -> BatchSpec:
    for index in range(COUNT):
        write_png(tmp_path / "in" / f"{index}.png", shade=index * 30)
    spec = _spec(tmp_path)
    async with build(sandbox) as client:
        assert (await Batch(client, spec).run()).ok
    assert len(sandbox.ledger.billed) == COUNT
    return spec


def _remove(path: Path) -> None:
    path.unlink()


def _truncate_to_zero(path: Path) -> None:
    path.write_bytes(b"")


def _truncate_to_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(7).randbytes(path.stat().st_size))


def _overwrite_a_page(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[4096:8192] = random.Random(8).randbytes(4096)  # page 2: the first table's b-tree
    path.write_bytes(bytes(data))


def _bad_text(path: Path) -> None:
    """Bytes that are not UTF-8 inside a stored text value: the page is sound, the row is not."""
    data = bytearray(path.read_bytes())
    at = data.index(b"qwen-image-edit")
    data[at : at + 4] = b"\xff\xfe\xfd\xfc"
    path.write_bytes(bytes(data))


DAMAGES = {
    "rm": (_remove, "is missing"),
    "truncated to 0 bytes": (_truncate_to_zero, "is empty"),
    "truncated to half": (_truncate_to_half, "is damaged"),
    "random bytes": (_random_bytes, "is damaged"),
    "an overwritten page": (_overwrite_a_page, "is damaged"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
async def test_a_lost_journal_refuses_to_run_and_bills_nothing(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path, damage: str
) -> None:
    spec = await _finished_batch(evolink_sandbox, scaled_client, tmp_path)
    harm, problem = DAMAGES[damage]
    harm(spec.journal_path)
    submits = evolink_sandbox.ledger.requests[SUBMITS]

    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(JournalLostError) as refused:
            await Batch(client, spec).run()
    message = str(refused.value)
    assert str(spec.journal_path) in message
    assert problem in message
    assert LOCK_NAME in message
    assert "result file(s)" in message
    # The library names its own option, and says which it is; the command line names its flag.
    assert "new_journal=True" in message
    assert "--new-journal" not in message
    assert refused.value.remedy is Remedy.NEW_JOURNAL
    assert evolink_sandbox.ledger.requests[SUBMITS] == submits  # nothing sent, nothing billed
    assert len(evolink_sandbox.ledger.billed) == COUNT


@pytest.mark.parametrize("damage", list(DAMAGES))
async def test_a_new_journal_keeps_the_results_and_bills_nothing_again(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path, damage: str
) -> None:
    spec = await _finished_batch(evolink_sandbox, scaled_client, tmp_path)
    harm, _ = DAMAGES[damage]
    harm(spec.journal_path)
    events: list[BatchEvent] = []

    async with scaled_client(evolink_sandbox) as client:
        summary = await Batch(client, _spec(tmp_path, new_journal=True), on_event=events.append).run()
        again = await Batch(client, spec).run()  # the new journal is a journal: no flag needed any more

    assert summary.ok
    assert again.ok
    assert (summary.done_before, summary.submitted, again.done_before, again.submitted) == (COUNT, 0, COUNT, 0)
    assert len(evolink_sandbox.ledger.billed) == COUNT
    assert sorted(e.key for e in events if e.kind == "done_before") == [f"{i}.png" for i in range(COUNT)]
    aside = [p.name for p in spec.output_dir.iterdir() if ".unreadable-" in p.name]
    assert bool(aside) == (damage != "rm")  # a damaged journal is kept for a look, not deleted
    async with Journal(spec.journal_path) as journal:
        assert (await journal.counts())[EntryStatus.DOWNLOADED] == COUNT


async def test_only_the_inputs_without_results_are_submitted_with_a_new_journal(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    spec = await _finished_batch(evolink_sandbox, scaled_client, tmp_path)
    spec.journal_path.unlink()
    (spec.output_dir / "0.png.result-0.png").unlink()
    async with scaled_client(evolink_sandbox) as client:
        summary = await Batch(client, _spec(tmp_path, new_journal=True)).run()
    assert (summary.done_before, summary.submitted, summary.downloaded) == (COUNT - 1, 1, 1)
    assert len(evolink_sandbox.ledger.billed) == COUNT + 1  # the one without results, made again


async def test_the_lock_file_alone_is_evidence_of_an_earlier_run(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    """Tasks submitted but not finished leave no results: the lock file still says a run was here."""
    spec = await _finished_batch(evolink_sandbox, scaled_client, tmp_path)
    for result in spec.output_dir.glob("*.result-*"):
        result.unlink()
    spec.journal_path.unlink()
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(JournalLostError, match="lock file"):
            await Batch(client, spec).run()
    assert len(evolink_sandbox.ledger.billed) == COUNT


async def test_unreadable_text_in_a_row_is_reported_with_the_path(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    """Overwritten bytes inside a row (the pages still check out): a named error, never a traceback."""
    spec = await _finished_batch(evolink_sandbox, scaled_client, tmp_path)
    _bad_text(spec.journal_path)
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(JournalCorruptError) as refused:
            await Batch(client, spec).run()
    assert refused.value.path == str(spec.journal_path)
    assert "not UTF-8" in str(refused.value)
    assert len(evolink_sandbox.ledger.billed) == COUNT


async def test_bytes_that_are_not_text_in_a_stored_value_are_a_named_error_not_a_unicode_error(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    """Random bytes over a row can leave a value as a BLOB: reading it as JSON raised UnicodeDecodeError."""
    spec = await _finished_batch(evolink_sandbox, scaled_client, tmp_path)
    with sqlite3.connect(spec.journal_path) as conn:
        conn.execute("UPDATE entries SET result_paths = X'fffe5b5d' WHERE key = '3.png'")
    conn.close()
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(JournalCorruptError, match=r"the row of '3\.png' cannot be read") as refused:
            await Batch(client, spec).run()
    assert refused.value.path == str(spec.journal_path)
    assert len(evolink_sandbox.ledger.billed) == COUNT


async def test_the_dry_run_refuses_a_lost_journal_and_leaves_an_empty_one_empty(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    """Opening an empty file would make it a valid, empty journal, which the run would then trust."""
    spec = await _finished_batch(evolink_sandbox, scaled_client, tmp_path)
    _truncate_to_zero(spec.journal_path)
    with pytest.raises(JournalLostError, match="is empty"):
        await plan_batch(spec)
    assert spec.journal_path.stat().st_size == 0
    plan = await plan_batch(_spec(tmp_path, new_journal=True))  # what --new-journal would do: no file touched
    assert (plan.inputs, plan.already_handled, plan.to_submit) == (COUNT, COUNT, 0)  # the results are kept
    assert spec.journal_path.stat().st_size == 0
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(JournalLostError):
            await Batch(client, spec).run()
    assert len(evolink_sandbox.ledger.billed) == COUNT


async def test_a_damaged_journal_in_a_folder_without_a_run_is_reported_with_its_path(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    spec = _spec(tmp_path)
    write_png(tmp_path / "in" / "a.png")
    spec.output_dir.mkdir()
    spec.journal_path.write_bytes(b"not a database " * 100)
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(JournalCorruptError, match="file is not a database") as refused:
            await Batch(client, spec).run()
    assert refused.value.path == str(spec.journal_path)
    assert sum(evolink_sandbox.ledger.requests.values()) == 0


# --- the write-ahead log ---------------------------------------------------------------------


async def _journal_with_its_log(sandbox: Sandbox, build: Build, tmp_path: Path) -> tuple[BatchSpec, Path]:
    """A finished batch whose journal still has its write-ahead log, as a killed process leaves it.

    A second connection held open through the run keeps SQLite from folding the log into the
    file at the batch's close; the three files are copied while it is open.
    """
    for index in range(COUNT):
        write_png(tmp_path / "in" / f"{index}.png", shade=index * 30)
    spec = _spec(tmp_path)
    keeper: list[sqlite3.Connection] = []

    def hold(event: BatchEvent) -> None:
        if not keeper:  # the journal exists once inputs are found
            keeper.append(sqlite3.connect(spec.journal_path))
            keeper[0].execute("SELECT count(*) FROM entries").fetchone()

    async with build(sandbox) as client:
        assert (await Batch(client, spec, on_event=hold).run()).ok
    saved = tmp_path / "crashed"
    saved.mkdir()
    for suffix in ("", "-wal", "-shm"):
        shutil.copy(spec.journal_path.with_name(spec.journal_path.name + suffix), saved)
    keeper[0].close()
    for suffix in ("", "-wal", "-shm"):
        target = spec.journal_path.with_name(spec.journal_path.name + suffix)
        target.unlink(missing_ok=True)
        shutil.copy(saved / target.name, target)
    wal = spec.journal_path.with_name(spec.journal_path.name + "-wal")
    assert wal.stat().st_size > 32 * 1024  # the records are in the log, not yet in the file
    return spec, wal


async def test_a_log_cut_inside_its_committed_records_is_refused(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    spec, wal = await _journal_with_its_log(evolink_sandbox, scaled_client, tmp_path)
    os.truncate(wal, wal.stat().st_size // 3)
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(JournalLostError, match="committed are lost") as refused:
            await Batch(client, spec).run()
        assert "write-ahead log" in str(refused.value)
        summary = await Batch(client, _spec(tmp_path, new_journal=True)).run()
    assert summary.ok
    assert summary.done_before == COUNT
    assert len(evolink_sandbox.ledger.billed) == COUNT


async def test_a_log_with_an_overwritten_header_is_refused(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    """SQLite would ignore such a log, and every record in it, without a word."""
    spec, wal = await _journal_with_its_log(evolink_sandbox, scaled_client, tmp_path)
    with wal.open("r+b") as file:
        file.write(b"\0" * 32)
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(JournalLostError, match="header of its write-ahead log"):
            await Batch(client, spec).run()
    assert len(evolink_sandbox.ledger.billed) == COUNT


async def test_a_torn_write_past_the_last_commit_resumes_without_billing(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    """What a power cut during a write does with ``synchronous=FULL``: every commit was on disk
    before it returned, so only the unfinished write is torn, and the run goes on."""
    spec, wal = await _journal_with_its_log(evolink_sandbox, scaled_client, tmp_path)
    with wal.open("ab") as file:
        file.write(random.Random(9).randbytes(1500))  # part of a frame that never got its commit
    async with scaled_client(evolink_sandbox) as client:
        summary = await Batch(client, spec).run()
    assert summary.ok
    assert summary.done_before == COUNT
    assert len(evolink_sandbox.ledger.billed) == COUNT


@pytest.mark.parametrize("mode", ["full", "submits"])
async def test_the_rows_a_submit_depends_on_are_fsynced(tmp_path: Path, mode: Synchronous) -> None:
    """The body before a submit and the task id after it commit with FULL (an fsync of the log, which
    also carries every commit before it): by default every commit does; with ``"submits"`` the rows a
    resume redoes for free commit with NORMAL. The level in force is read at each COMMIT."""
    levels: list[str] = []
    current = ["FULL"]

    def trace(statement: str) -> None:
        if statement.startswith("PRAGMA synchronous"):
            current[0] = statement.rpartition("=")[2].strip()
        elif statement == "COMMIT":
            levels.append(current[0])

    async with Journal(tmp_path / "j.sqlite3", synchronous=mode) as journal:
        assert journal._conn is not None
        journal._conn.set_trace_callback(trace)
        committed: dict[str, list[str]] = {}

        async def step(name: str, call: Any) -> None:
            before = len(levels)
            await call
            committed[name] = levels[before:]

        await step("reserve", journal.reserve("a.png", "sha256:a"))
        await step("record_request", journal.record_request("a.png", '{"prompt": "x"}'))
        await step("record_submitted", journal.record_submitted("a.png", "task-unified-1"))
        await step("record_outcome", journal.record_outcome("a.png", EntryStatus.FAILED, error_code="boom"))
        await step("restart", journal.restart("a.png"))
        await step("record_found_results", journal.record_found_results("b.png", "sha256:b", ["out/b.png.r.png"]))
    redo_free = "FULL" if mode == "full" else "NORMAL"
    assert committed == {
        "reserve": [redo_free],  # no submit follows it before record_request's fsync
        "record_request": ["FULL"],  # before the submit: the key and body that make a resend safe
        "record_submitted": ["FULL"],  # after it: the paid task's id
        "record_outcome": [redo_free],  # lost: the task is queried again
        "restart": ["FULL"],  # a new key, about to be paid for
        "record_found_results": [redo_free],  # lost: found again on disk
    }


async def test_the_default_fsyncs_every_commit(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.sqlite3") as journal:
        await journal.reserve("a.png", "sha256:a")
        assert journal._conn is not None
        assert journal._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # 2 = FULL


def _index(frames: int) -> bytes:
    """A ``-shm`` header as SQLite writes it: two equal copies, initialised, ``mxFrame`` at 16."""
    header = bytearray(48)
    header[12] = 1
    header[16:20] = frames.to_bytes(4, sys.byteorder)
    return bytes(header) * 2 + bytes(32768 - 96)


@pytest.mark.parametrize(("frames", "refused"), [(0, False), (5, True)])
def test_a_damaged_log_header_matters_only_when_the_index_says_frames_were_committed(
    tmp_path: Path, frames: int, refused: bool
) -> None:
    """A torn header of a log that was just restarted (no frame committed yet) loses nothing."""
    journal = tmp_path / "evolink-journal.sqlite3"
    journal.write_bytes(b"SQLite format 3\0" + bytes(4080))
    journal.with_name(journal.name + "-wal").write_bytes(b"\0" * 20)  # torn while its header was written
    journal.with_name(journal.name + "-shm").write_bytes(_index(frames))
    problem = wal_problem(journal)
    assert (problem is not None) is refused
    if refused:
        assert problem is not None
        assert "cut short" in problem
