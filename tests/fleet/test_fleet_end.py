"""A worker ends when the batch does, also one that read another worker's write-ahead records.

A worker reads every write-ahead file next to its own at its start (a paused worker's records
may be all that names a paid task). A record whose input another worker still leased, without its
task id in the journal yet (answered, not yet recorded), waited for the next replay, a third of a
lease later: with nothing else left the worker could not end before (seven seconds after a
6-worker benchmark's batch was done; here, with a 300 s lease, 100 s).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio

from evolink_async.batch import PgJournal
from evolink_async.batch._entries import EntryStatus
from evolink_async.batch._wal import WalRecord
from evolink_async.sandbox import Sandbox
from tests.helpers.fleet_cli import ENV, export, manifest, plan, work_argv


async def test_a_worker_ends_with_the_batch_though_it_read_a_live_workers_unrecorded_task(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    count = 4
    assert (await plan(journal_url, manifest(tmp_path / "m.jsonl", count))).returncode == 0
    argv = work_argv(tmp_path, journal_url, evolink_sandbox, None, "--max-in-flight", "4", "--lease", "300")
    ledger = evolink_sandbox.ledger
    async with PgJournal(journal_url, connections=1) as journal:
        # Another worker (this test) holds one input: its submit answered, in its write-ahead file
        # (next to the worker's, named for this live process), not yet in the journal.
        (held,) = (await journal.claim("other-worker", limit=1, lease=300)).items
        key, epoch = held.entry.key, held.epoch
        assert await journal.begin_submit(key, "other-worker", json.dumps({"model": "qwen-image-edit"}), epoch=epoch)
        record = WalRecord(key=key, idempotency_key=held.entry.idempotency_key, task_id="task-unified-other-1")
        (tmp_path / f"fleet.wal.{os.getpid()}-other1").write_bytes(record.line())
        done: list[tuple[int, str]] = []

        async def worker() -> None:
            finished = await anyio.run_process(argv, env=ENV, check=False)
            done.append((finished.returncode, finished.stderr.decode()))

        # A third of the lease is 100 s: a worker that waits for its next replay fails this bound.
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                group.start_soon(worker)
                while len(ledger.billed) < count - 1:  # the worker replayed the file, then submitted the rest
                    await anyio.sleep(0.01)
                # The other worker records its task and its outcome: nothing is left to anyone.
                recorded = await journal.record_submitted(key, record.task_id, owner="other-worker", epoch=epoch,
                                                          lease=300, idempotency_key=record.idempotency_key)  # fmt: skip
                assert recorded is not None
                assert await journal.record_outcome(key, EntryStatus.COMPLETED, owner="other-worker",
                                                    epoch=recorded, result_urls=["https://r/0.png"], final=True)  # fmt: skip
    ((code, stderr),) = done
    assert code == 0, stderr
    summary = json.loads(stderr.strip().splitlines()[-1])
    assert summary["submitted"] == count - 1
    assert [row["outcome"] for row in await export(journal_url)] == ["completed"] * count
