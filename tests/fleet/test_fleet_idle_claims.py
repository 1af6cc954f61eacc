"""A worker at its fair share of the batch's in-flight bound waits for its own inputs, not the journal.

Two workers, ``--max-in-flight 4``: each may hold 2. A task takes 0.3-0.9 s here (sandbox time
scale 0.02) and the workers' poll interval is 0.05 s. A worker at its share used to claim again
every poll interval and get nothing: 7.7 claims per input in this run (1.4 now). Such a worker now
claims when one of its own inputs ends (about one claim per input), polling only where a slot
another worker frees could be its own (at the start, while the other worker holds more than its
share). At the end of a run, with no input left to take, a worker that still holds inputs waits
for them the same way. Claims are counted by PostgreSQL (``pg_stat_user_functions``), not timed.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import asyncpg
import pytest

from evolink_async.sandbox import Sandbox
from tests.helpers.fleet_cli import manifest, plan, run_workers, work_argv

pytestmark = pytest.mark.evolink_sandbox(time_scale=0.02)


async def _count_claim_calls(url: str) -> int:
    """Calls of the claim functions in this database, once every other session has ended (a session
    hands its function statistics over when it ends)."""
    conn = await asyncpg.connect(url)
    try:
        with anyio.fail_after(30):
            while await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                      " AND pid <> pg_backend_pid()"):  # fmt: skip
                await anyio.sleep(0.05)
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        return int(await conn.fetchval("SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions"
                                       " WHERE funcname LIKE 'evolink_claim%'"))  # fmt: skip
    finally:
        await conn.close()


async def _track_function_calls(url: str) -> None:
    """The sessions opened from now on count their calls of plpgsql functions (this database only)."""
    conn = await asyncpg.connect(url)
    try:
        name = await conn.fetchval("SELECT current_database()")
        await conn.execute(f"ALTER DATABASE \"{name}\" SET track_functions = 'pl'")
    finally:
        await conn.close()


async def test_workers_at_their_share_claim_about_once_per_input(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    count = 60
    assert (await plan(journal_url, manifest(tmp_path / "m.jsonl", count))).returncode == 0
    # A lease of 30 s: a worker at its share looks again without being woken only every 10 s.
    argv = work_argv(tmp_path, journal_url, evolink_sandbox, None, "--max-in-flight", "4", "--lease", "30")
    await _track_function_calls(journal_url)
    results = await run_workers([argv, argv])
    assert all(code == 0 for code, _, _ in results), results
    summaries = [json.loads(stderr.strip().splitlines()[-1]) for _, _, stderr in results]
    assert sum(s["claimed"] for s in summaries) == count
    ledger = evolink_sandbox.ledger
    assert len(ledger.billed) == len(set(ledger.billed)) == count
    assert ledger.peak_unfinished <= 4
    claims = await _count_claim_calls(journal_url)
    assert claims == sum(s["claims"] for s in summaries)  # the workers' own count of their claims
    assert claims <= 2.5 * count, (claims, summaries)


@pytest.mark.evolink_sandbox(time_scale=0.05)
async def test_a_worker_with_nothing_left_to_take_waits_for_its_own_inputs(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    """One worker, room for 8, 4 inputs of 0.75-2.25 s: after its first claim nothing is left to
    take. It used to claim every poll interval (0.05 s) until its tasks ended (44 claims in one run)."""
    count = 4
    assert (await plan(journal_url, manifest(tmp_path / "m.jsonl", count))).returncode == 0
    argv = work_argv(tmp_path, journal_url, evolink_sandbox, None, "--max-in-flight", "8", "--lease", "30")
    await _track_function_calls(journal_url)
    ((code, _, stderr),) = await run_workers([argv])
    assert code == 0, stderr
    summary = json.loads(stderr.strip().splitlines()[-1])
    assert summary["completed"] == count
    claims = await _count_claim_calls(journal_url)
    assert claims == summary["claims"]
    # The first claim, one when each input ends (fewer if ends come together), one more at most
    # for an end read while a claim was under way.
    assert claims <= count + 2, summary
