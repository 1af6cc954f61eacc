"""The fleet under the faults of a real deployment: a paused worker, a worker frozen inside a claim,
a database that restarts, connections killed, a worker killed between a submit and its record.

The sandbox ignores idempotency keys here: every submit bills, so the ledger shows any second
payment. Workers are real ``evolink batch work`` processes on a real PostgreSQL.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import asyncpg
import pytest

from evolink_async.batch._worker import FAULT_ENV
from evolink_async.sandbox import Sandbox
from tests.helpers.fleet_cli import ENV, export, manifest, plan, run_workers, status, work_argv
from tests.helpers.hostile import SUBMIT, holding_submit_answers, hostile_server

from .pgcluster import PgCluster

pytestmark = pytest.mark.evolink_sandbox(time_scale=0.01, honor_idempotency_keys=False)


class Running:
    """A worker process whose output is read as it runs (a stopped process must not block on a full pipe)."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        self.stdout = bytearray()
        self.stderr = bytearray()

    async def _drain(self, stream: Any, into: bytearray) -> None:
        async for chunk in stream:
            into.extend(chunk)

    async def read(self, group: anyio.abc.TaskGroup) -> None:
        group.start_soon(self._drain, self.process.stdout, self.stdout)
        group.start_soon(self._drain, self.process.stderr, self.stderr)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.decode().splitlines() if line.startswith("{")]

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = json.loads(self.stderr.decode().strip().splitlines()[-1])
        return summary


async def _wait_for(condition: Callable[[], bool], *, within: float = 60) -> None:
    with anyio.fail_after(within):
        while not condition():
            await anyio.sleep(0.01)


def _state(pid: int) -> str:
    """The process state letter of /proc/<pid>/stat (``T``: stopped)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def _downloads(*workers: Running | str) -> Counter[str]:
    counted: Counter[str] = Counter()
    for worker in workers:
        lines = worker.stdout.decode() if isinstance(worker, Running) else worker
        for line in lines.splitlines():
            if line.startswith("{") and (event := json.loads(line)).get("kind") == "downloaded":
                counted[event["key"]] += 1
    return counted


async def _stop_holding_an_input_to_take_over(worker: Running, url: str, billed: list[str]) -> None:
    """Stop ``worker`` (the only one running) at a moment it holds an input another worker can take
    over once the lease expires: its task id recorded, or its submit not begun.

    A submit begun whose answer the stopped worker has not read becomes ``uncertain`` instead (the
    task may exist; nobody else can know its id) and keeps its slot: stopped holding only those,
    the worker would leave its successor nothing to take and, with the batch's bound all theirs,
    no room to submit. Until such a moment, the worker goes on until its next submit is billed."""
    with anyio.fail_after(60):
        while True:
            seen = len(billed)
            worker.process.send_signal(signal.SIGSTOP)
            await _wait_for(lambda: _state(worker.process.pid) == "T")
            if await asyncpg_count(url, "SELECT count(*) FROM evolink_entries WHERE lease_owner IS NOT NULL"
                                   " AND status <> 'downloaded' AND (submit_started_at IS NULL OR task_id IS NOT NULL)"):
                return
            worker.process.send_signal(signal.SIGCONT)
            await _wait_for(lambda seen=seen: len(billed) > seen)


async def test_a_worker_paused_past_its_lease_overwrites_nothing_and_downloads_nothing_twice(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    count = 40
    assert (await plan(journal_url, manifest(tmp_path / "m.jsonl", count))).returncode == 0
    out = tmp_path / "out"
    argv = work_argv(tmp_path, journal_url, evolink_sandbox, out, "--max-in-flight", "8")
    ledger = evolink_sandbox.ledger
    async with anyio.create_task_group() as group:
        paused = Running(await anyio.open_process(argv, env=ENV))
        await paused.read(group)
        try:
            await _wait_for(lambda: len(ledger.billed) >= 6)  # mid-run: leases held, tasks in flight
            await _stop_holding_an_input_to_take_over(paused, journal_url, ledger.billed)
            # Another worker takes the paused one's inputs over (once its leases expire) and ends the batch.
            ((code, successor_out, stderr),) = await run_workers([argv])
            assert code == 0, stderr
            successor = json.loads(stderr.strip().splitlines()[-1])
            before = {row["key"]: row for row in await export(journal_url)}
            finished_by_successor = {key for key, row in before.items() if row["finished_by"] == successor["worker"]}
            assert finished_by_successor
            paused.process.send_signal(signal.SIGCONT)
            with anyio.fail_after(60):
                await paused.process.wait()
        finally:
            if paused.process.returncode is None:
                paused.process.kill()
    assert paused.process.returncode in (0, 1), paused.stderr.decode()
    assert "Traceback" not in paused.stderr.decode()
    late = paused.summary()
    # The paused worker found its inputs taken over, said so, and wrote nothing over its successor.
    assert late["lost_leases"] >= 1, late
    assert any(event["kind"] == "lease_lost" for event in paused.events())
    after = {row["key"]: row for row in await export(journal_url)}
    for key in finished_by_successor:
        assert after[key] == before[key], key  # 0 outcomes overwritten
    assert Counter(row["outcome"] for row in after.values()) == {"downloaded": count}
    assert _downloads(paused, successor_out) == dict.fromkeys(after, 1)  # 0 results downloaded twice
    assert len(ledger.billed) == len(set(ledger.billed)) == count  # every input billed once
    assert {row["task_id"] for row in after.values()} == set(ledger.billed)
    assert ledger.peak_unfinished <= 8


async def test_a_worker_paused_before_its_submits_were_answered_takes_them_back_and_ends_them(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    """Its submits were billed, their answers not read: meanwhile its leases expired and another worker
    made those inputs ``uncertain`` (no task id known) and ended. Resumed, the paused worker loses its
    leases, then reads the answers: the task ids take the inputs back, and it watches and downloads
    them. It used to end its run at the lost leases, leaving the inputs ``submitted`` with nobody
    watching them (the answers are held here until every lease is lost: the order a loaded machine
    gives at random)."""
    count = 4
    assert (await plan(journal_url, manifest(tmp_path / "m.jsonl", count))).returncode == 0
    ledger = evolink_sandbox.ledger
    answers_released = anyio.Event()
    held_answers: list[str] = []  # the path of each submit whose answer is held

    async def until_released() -> None:
        held_answers.append(SUBMIT)
        await answers_released.wait()

    out = tmp_path / "out"
    direct = work_argv(tmp_path, journal_url, evolink_sandbox, out, "--max-in-flight", str(count))
    async with hostile_server(holding_submit_answers(evolink_sandbox.base_url, until_released)) as proxy, \
            anyio.create_task_group() as group:
        behind_proxy = [proxy.url if arg == evolink_sandbox.base_url else arg for arg in direct]
        paused = Running(await anyio.open_process(behind_proxy, env=ENV))
        await paused.read(group)
        try:
            await _wait_for(lambda: len(ledger.billed) == len(held_answers) == count)
            paused.process.send_signal(signal.SIGSTOP)
            # The other worker waits for the paused one's leases to expire, finds submits begun without
            # a task id (uncertain: never sent again) and nothing else to do, and ends.
            ((code, _, stderr),) = await run_workers([direct])
            assert code == 0, stderr
            assert Counter(row["outcome"] for row in await export(journal_url)) == {"uncertain": count}
            paused.process.send_signal(signal.SIGCONT)
            await _wait_for(lambda: sum(event["kind"] == "lease_lost" for event in paused.events()) == count)
            answers_released.set()
            with anyio.fail_after(60):
                await paused.process.wait()
        finally:
            answers_released.set()
            if paused.process.returncode is None:
                paused.process.kill()
    assert paused.process.returncode == 0, paused.stderr.decode()
    rows = await export(journal_url)
    assert Counter(row["outcome"] for row in rows) == {"downloaded": count}, rows  # 0 left unwatched
    assert {row["finished_by"] for row in rows} == {paused.summary()["worker"]}
    assert _downloads(paused) == {row["key"]: 1 for row in rows}
    assert len(ledger.billed) == len(set(ledger.billed)) == count  # every input billed once
    assert {row["task_id"] for row in rows} == set(ledger.billed)


async def test_a_worker_killed_between_a_submit_and_its_record_costs_nothing_again(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    count = 6
    assert (await plan(journal_url, manifest(tmp_path / "m.jsonl", count))).returncode == 0
    ledger = evolink_sandbox.ledger
    argv = work_argv(tmp_path, journal_url, evolink_sandbox, None, "--max-in-flight", "1")
    with anyio.fail_after(60):
        killed = await anyio.run_process(argv, env={**ENV, FAULT_ENV: "kill-after-submit"}, check=False)
    assert killed.returncode == -signal.SIGKILL
    assert len(ledger.billed) == 1  # paid, and the journal never heard of it
    paid = ledger.billed[0]
    ((code, _, stderr),) = await run_workers([argv])
    assert code == 0, stderr
    summary = json.loads(stderr.strip().splitlines()[-1])
    assert summary["recovered_task_ids"] == 1, summary
    assert summary["submitted"] == count - 1
    rows = await export(journal_url)
    assert Counter(row["outcome"] for row in rows) == {"completed": count}  # 0 uncertain
    assert paid in {row["task_id"] for row in rows}  # re-attached to the task it paid for
    assert len(ledger.billed) == len(set(ledger.billed)) == count
    assert ledger.peak_unfinished <= 1


async def test_two_workers_share_claims_fairly(evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path) -> None:
    count = 40
    assert (await plan(journal_url, manifest(tmp_path / "m.jsonl", count))).returncode == 0
    argv = work_argv(tmp_path, journal_url, evolink_sandbox, None, "--max-in-flight", "8")
    # Both workers start claiming at once: the test holds the fleet row until both are registered.
    conn = await asyncpg.connect(journal_url)
    try:
        gate = conn.transaction()
        await gate.start()
        await conn.execute("SELECT 1 FROM evolink_fleet WHERE id = 1 FOR UPDATE")
        async with anyio.create_task_group() as group:
            results: list[tuple[int, str, str]] = []

            async def work() -> None:
                results.extend(await run_workers([argv, argv]))

            group.start_soon(work)
            with anyio.fail_after(60):
                while await asyncpg_count(journal_url, "SELECT count(*) FROM evolink_workers") < 2:
                    await anyio.sleep(0.05)
            await gate.commit()
    finally:
        await conn.close()
    summaries = [json.loads(stderr.strip().splitlines()[-1]) for code, _, stderr in results]
    assert all(code == 0 for code, _, _ in results), results
    claimed = sorted(s["claimed"] for s in summaries)
    assert sum(claimed) == count
    assert claimed[0] >= count // 4, claimed
    ledger = evolink_sandbox.ledger
    assert len(ledger.billed) == len(set(ledger.billed)) == count
    assert ledger.peak_unfinished <= 8


async def asyncpg_count(url: str, query: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(query))
    finally:
        await conn.close()


async def test_a_worker_frozen_inside_a_claim_does_not_stall_the_others(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    """The frozen worker holds the fleet row's lock in an open transaction; the server ends that
    session after ``idle_in_transaction_session_timeout`` (5 s, the workers' session setting), and
    the other workers' claims (waiting at most ``lock_timeout``, 5 s, then retried) go on."""
    count = 60
    assert (await plan(journal_url, manifest(tmp_path / "m.jsonl", count))).returncode == 0
    argv = work_argv(tmp_path, journal_url, evolink_sandbox, None, "--max-in-flight", "6", "--claim-size", "2")
    ledger = evolink_sandbox.ledger
    async with anyio.create_task_group() as group:
        # Frozen in its first claim: nothing of its own in flight, so how long it stays frozen (as long
        # as the other worker's whole run) changes nothing but the locks it holds.
        frozen = Running(await anyio.open_process(argv, env={**ENV, FAULT_ENV: "stop-in-claim:1"}))
        await frozen.read(group)
        try:
            await _wait_for(lambda: _state(frozen.process.pid) == "T")
            conn = await asyncpg.connect(journal_url)
            try:  # the freeze is real: the fleet row is locked by the frozen worker's open transaction
                with pytest.raises(asyncpg.LockNotAvailableError):
                    await conn.execute("SELECT 1 FROM evolink_fleet WHERE id = 1 FOR UPDATE NOWAIT")
            finally:
                await conn.close()
            # Another worker, started now, claims and finishes every input while the first stays frozen.
            ((code, _, stderr),) = await run_workers([argv])
            assert code == 0, stderr
            assert _state(frozen.process.pid) == "T"
            other = json.loads(stderr.strip().splitlines()[-1])
            assert other["claimed"] == count
            frozen.process.send_signal(signal.SIGCONT)
            with anyio.fail_after(60):
                await frozen.process.wait()
        finally:
            if frozen.process.returncode is None:
                frozen.process.kill()
    assert frozen.process.returncode == 0, frozen.stderr.decode()
    assert frozen.summary()["claimed"] == 0  # its frozen claim was rolled back with its session
    rows = await export(journal_url)
    assert Counter(row["outcome"] for row in rows) == {"completed": count}
    assert len(ledger.billed) == len(set(ledger.billed)) == count
    assert ledger.peak_unfinished <= 6


async def test_a_restarted_database_and_killed_sessions_lose_nothing(
    evolink_sandbox: Sandbox, own_pg: PgCluster, tmp_path: Path
) -> None:
    count = 150
    url = own_pg.create_database()
    assert (await plan(url, manifest(tmp_path / "m.jsonl", count))).returncode == 0
    argv = work_argv(tmp_path, url, evolink_sandbox, None, "--max-in-flight", "12")
    ledger = evolink_sandbox.ledger

    async def kill_sessions() -> None:
        conn = await asyncpg.connect(url)
        try:
            killed = await conn.fetchval(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()) t"
            )
            assert killed >= 3  # every worker had a session
        finally:
            await conn.close()

    async with anyio.create_task_group() as group:
        results: list[tuple[int, str, str]] = []

        async def work() -> None:
            results.extend(await run_workers([argv] * 3, timeout=180))

        group.start_soon(work)
        await _wait_for(lambda: len(ledger.billed) >= 30)
        await anyio.to_thread.run_sync(own_pg.restart)
        await _wait_for(lambda: len(ledger.billed) >= 70)
        await kill_sessions()
        await _wait_for(lambda: len(ledger.billed) >= 110)
        await kill_sessions()
    for code, _, stderr in results:
        assert code == 0, stderr  # no worker exits
    summaries = [json.loads(stderr.strip().splitlines()[-1]) for _, _, stderr in results]
    assert sum(s["journal_outages"] for s in summaries) >= 3  # the outages happened and were survived
    shown = await status(url)  # ... and `evolink batch status` shows each worker's journal health
    assert sorted(w["journal_outages"] for w in shown["workers"]) == sorted(s["journal_outages"] for s in summaries)
    rows = await export(url)
    assert Counter(row["outcome"] for row in rows) == {"completed": count}  # 0 uncertain
    assert len(ledger.billed) == len(set(ledger.billed)) == count  # every input billed exactly once
    assert {row["task_id"] for row in rows} == set(ledger.billed)
    assert ledger.peak_unfinished <= 12
    conn = await asyncpg.connect(url)
    try:  # the journal is consistent: nothing held, no slot, credits as billed
        assert await conn.fetchval("SELECT count(*) FROM evolink_entries WHERE slot OR lease_owner IS NOT NULL") == 0
        assert await conn.fetchval("SELECT credits_reserved FROM evolink_fleet") == pytest.approx(count * 1.0)
    finally:
        await conn.close()


async def test_a_journal_gone_past_the_bound_stops_the_worker_in_one_line_and_loses_no_paid_task(
    evolink_sandbox: Sandbox, own_pg: PgCluster, tmp_path: Path
) -> None:
    count = 40
    url = own_pg.create_database()
    assert (await plan(url, manifest(tmp_path / "m.jsonl", count))).returncode == 0
    ledger = evolink_sandbox.ledger
    argv = work_argv(tmp_path, url, evolink_sandbox, None, "--max-in-flight", "8", "--journal-outage", "3")
    async with anyio.create_task_group() as group:
        worker = Running(await anyio.open_process(argv, env=ENV))
        await worker.read(group)
        try:
            await _wait_for(lambda: len(ledger.billed) >= 5)
            await anyio.to_thread.run_sync(own_pg.stop)  # gone for good, as far as this worker can tell
            with anyio.fail_after(60):
                await worker.process.wait()
        finally:
            if worker.process.returncode is None:
                worker.process.kill()
    stderr = worker.stderr.decode()
    assert worker.process.returncode == 2, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("evolink: ") and "WARNING" not in line]
    assert len(errors) == 1, stderr
    assert "the journal was unreachable for" in errors[0]
    assert "--journal-outage 3" in errors[0]
    # The cause in words (PostgreSQL went away), not asyncpg's internals ("cannot switch to state 12").
    assert "PostgreSQL" in errors[0]
    assert "state" not in errors[0]
    billed_before = list(ledger.billed)
    # The journal comes back: a new run records the task ids it never heard of and pays for each input once.
    await anyio.to_thread.run_sync(own_pg.resume)
    ((code, _, stderr),) = await run_workers([argv])
    assert code == 0, stderr
    rows = await export(url)
    outcomes = Counter(row["outcome"] for row in rows)
    assert set(outcomes) <= {"completed", "uncertain"}, outcomes
    recorded = {row["task_id"] for row in rows if row["task_id"]}
    assert len(recorded) == outcomes["completed"]
    billed = ledger.billed
    assert len(billed) == len(set(billed))
    assert recorded <= set(billed)
    # Every task paid before the outage is in the journal (through the write-ahead file), except at
    # most the submits the worker's exit cut off before their answer: those, and only those, are uncertain.
    unknown = set(billed_before) - recorded
    assert len(unknown) <= outcomes["uncertain"]
    assert len(billed) == len(recorded) + len(unknown)  # nothing paid twice
