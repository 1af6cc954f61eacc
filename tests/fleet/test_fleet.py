"""A batch shared by worker processes through a PostgreSQL journal, against the sandbox.

Every worker is a real ``python -m evolink_async batch work`` process; the sandbox runs in the
test's process so that its ledger (what was billed, peak unfinished tasks) can be read directly.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

import anyio
import anyio.abc
import asyncpg
import pytest

from evolink_async.batch import PG_SCHEMA_VERSION
from evolink_async.sandbox import Sandbox
from evolink_async.sandbox._state import SandboxState
from tests.helpers.fleet_cli import ENV
from tests.helpers.fleet_cli import evolink as _evolink
from tests.helpers.fleet_cli import export as _export
from tests.helpers.fleet_cli import manifest as _manifest
from tests.helpers.fleet_cli import plan as _plan
from tests.helpers.fleet_cli import run_workers as _run_workers
from tests.helpers.fleet_cli import status as _status
from tests.helpers.fleet_cli import work_argv as _work_argv

pytestmark = pytest.mark.evolink_sandbox(time_scale=0.01)

async def test_three_workers_finish_300_inputs_each_billed_once(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    planned = await _plan(journal_url, _manifest(tmp_path / "m.jsonl", 300))
    assert planned.returncode == 0, planned.stderr.decode()
    assert json.loads(planned.stdout)["added"] == 300
    out = tmp_path / "shared-out"
    argv = _work_argv(tmp_path, journal_url, evolink_sandbox, out, "--max-in-flight", "24")
    results = await _run_workers([argv] * 3)
    for code, _, stderr in results:
        assert code == 0, stderr
    summaries = [json.loads(stderr.strip().splitlines()[-1]) for _, _, stderr in results]
    assert sum(s["submitted"] for s in summaries) == 300
    ledger = evolink_sandbox.ledger
    assert len(ledger.billed) == len(set(ledger.billed)) == 300
    assert ledger.replays == 0
    assert ledger.peak_unfinished <= 24
    rows = await _export(journal_url)
    assert Counter(row["outcome"] for row in rows) == {"downloaded": 300}
    assert {row["task_id"] for row in rows} == set(ledger.billed)
    assert len(list(out.rglob("*.result-0.png"))) == 300
    # The work was actually shared.
    assert sum(1 for s in summaries if s["submitted"] > 0) >= 2


async def test_kill_9_of_a_worker_others_take_over_without_a_second_submit(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    count = 150
    assert (await _plan(journal_url, _manifest(tmp_path / "m.jsonl", count))).returncode == 0
    argv = _work_argv(tmp_path, journal_url, evolink_sandbox, None, "--max-in-flight", "12")
    ledger = evolink_sandbox.ledger
    victim = await anyio.open_process(argv, env=ENV)
    try:
        with anyio.fail_after(60):
            while len(ledger.billed) < 20:  # mid-run: it holds leases, tasks in flight
                await anyio.sleep(0.01)
    finally:
        victim.send_signal(signal.SIGKILL)
        await victim.wait()
    assert victim.returncode == -signal.SIGKILL
    billed_by_victim = len(ledger.billed)
    results = await _run_workers([argv] * 2)
    for code, _, stderr in results:
        assert code in (0, 1), stderr  # 1: an input is left uncertain (reported, not resubmitted)
    rows = await _export(journal_url)
    outcomes = Counter(row["outcome"] for row in rows)
    assert set(outcomes) <= {"completed", "uncertain"}
    assert outcomes["completed"] + outcomes["uncertain"] == count
    # Never a fresh submit: one task per input, and every billed task belongs to one input.
    task_ids = [row["task_id"] for row in rows if row["task_id"]]
    assert len(task_ids) == len(set(task_ids)) == outcomes["completed"]
    assert len(ledger.billed) == len(set(ledger.billed))
    assert set(task_ids) <= set(ledger.billed)
    assert len(ledger.billed) - len(task_ids) <= outcomes["uncertain"]  # an uncertain submit may have landed
    assert ledger.replays == 0
    # Tasks the victim submitted and never saw end were finished by the others, re-attached by task id.
    victim_marker = f":{victim.pid}:"
    taken_over = [r for r in rows if victim_marker in (r["submitted_by"] or "") and r["outcome"] == "completed"
                  and victim_marker not in (r["finished_by"] or "")]  # fmt: skip
    assert taken_over
    assert billed_by_victim >= 20
    # Settling: resubmitting the uncertain inputs with their same keys; the sandbox answers replays.
    settle = await _run_workers([_work_argv(tmp_path, journal_url, evolink_sandbox, None, "--resubmit-uncertain")])
    assert settle[0][0] == 0, settle[0][2]
    rows = await _export(journal_url)
    assert Counter(row["outcome"] for row in rows) == {"completed": count}
    assert len(ledger.billed) == len(set(ledger.billed)) == count


async def test_global_in_flight_bound_holds_across_workers(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    assert (await _plan(journal_url, _manifest(tmp_path / "m.jsonl", 90))).returncode == 0
    argv = _work_argv(tmp_path, journal_url, evolink_sandbox, None, "--max-in-flight", "5", "--claim-size", "4")
    results = await _run_workers([argv] * 3)
    assert all(code == 0 for code, _, _ in results), results
    ledger = evolink_sandbox.ledger
    assert len(ledger.billed) == 90
    assert ledger.peak_unfinished <= 5
    assert ledger.peak_unfinished >= 3  # the bound is used, not starved


async def test_credit_budget_holds_and_the_rest_stays_resumable(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    assert (await _plan(journal_url, _manifest(tmp_path / "m.jsonl", 40))).returncode == 0
    argv = _work_argv(tmp_path, journal_url, evolink_sandbox, None, "--max-in-flight", "8", "--max-credits", "10.5")
    results = await _run_workers([argv] * 2)
    assert all(code == 0 for code, _, _ in results), results
    ledger = evolink_sandbox.ledger
    assert ledger.credits_charged <= 10.5
    assert len(ledger.billed) == 10  # qwen-image-edit: 1 credit each
    rows = await _export(journal_url)
    assert Counter(row["outcome"] for row in rows) == {"completed": 10, "not_submitted": 30}
    with anyio.fail_after(60):
        shown = await anyio.run_process(_evolink("batch", "status", "--journal", journal_url, "--json"), env=ENV)
    status = json.loads(shown.stdout)
    assert status["states"] == {"completed": 10, "not_submitted": 30}
    assert status["credits_reserved"] == 10.0
    assert status["max_credits"] == 10.5
    assert len(status["workers"]) == 2
    assert sum(w["finished"] for w in status["workers"]) == 10
    with anyio.fail_after(60):
        text = await anyio.run_process(_evolink("batch", "status", "--journal", journal_url, "--watch", "0.1"),
                                       env=ENV)  # fmt: skip
    assert "40/40 finished, 0 in flight (max 8), credits 10 of 10.5, done" in text.stdout.decode()
    # A bigger budget later: the same journal picks up where the budget stopped it.
    more = _work_argv(tmp_path, journal_url, evolink_sandbox, None, "--max-credits", "100")
    assert (await _run_workers([more]))[0][0] == 0
    assert Counter(row["outcome"] for row in await _export(journal_url)) == {"completed": 40}
    assert len(ledger.billed) == len(set(ledger.billed)) == 40


async def test_two_plans_of_one_manifest_racing_load_it_once(journal_url: str, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path / "m.jsonl", 2000)
    first, second = await _run_workers([_evolink("batch", "plan", str(manifest), "--journal", journal_url, "--json")] * 2)
    assert first[0] == second[0] == 0, (first[2], second[2])
    added = [json.loads(first[1])["added"], json.loads(second[1])["added"]]
    assert sum(added) == 2000
    again = await _plan(journal_url, manifest)
    assert json.loads(again.stdout)["added"] == 0
    changed = _manifest(tmp_path / "changed.jsonl", 2000, prompt="winter")
    refused = await _plan(journal_url, changed)
    assert refused.returncode == 2
    assert "in/0000.png" in refused.stderr.decode()
    assert "winter" in refused.stderr.decode()
    conn = await asyncpg.connect(journal_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM evolink_entries") == 2000
        assert await conn.fetchval("SELECT count(*) FROM evolink_entries WHERE line LIKE '%winter%'") == 0
    finally:
        await conn.close()


async def test_a_worker_against_a_newer_schema_is_refused(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    assert (await _plan(journal_url, _manifest(tmp_path / "m.jsonl", 3))).returncode == 0
    conn = await asyncpg.connect(journal_url)
    try:
        await conn.execute("UPDATE evolink_schema SET version = 99")
    finally:
        await conn.close()
    ((code, _, stderr),) = await _run_workers([_work_argv(tmp_path, journal_url, evolink_sandbox, None)], timeout=60)
    assert code == 2
    assert f"journal schema 99 is newer than this evolink_async's ({PG_SCHEMA_VERSION})" in stderr
    assert evolink_sandbox.ledger.billed == []


async def test_a_failed_download_is_download_failed_and_a_later_run_downloads_it_without_a_submit(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = 4
    assert (await _plan(journal_url, _manifest(tmp_path / "m.jsonl", count))).returncode == 0
    out = tmp_path / "out"
    # Every result link has expired: each download (and the one after a fresh query) answers 404.
    monkeypatch.setattr(SandboxState, "result_expired", lambda self, record, now: True)
    # One run tries each download once (with a fresh query), then ends: no loop on its own failures.
    ((code, _, stderr),) = await _run_workers([_work_argv(tmp_path, journal_url, evolink_sandbox, out)], timeout=60)
    assert code == 1, stderr
    assert json.loads(stderr.strip().splitlines()[-1])["failed"] == count
    rows = await _export(journal_url)
    assert [row["outcome"] for row in rows] == ["download_failed"] * count, rows
    assert all(row["error"]["code"] == "download_http_status" and row["task_id"] for row in rows), rows
    status = await _status(journal_url)
    assert {state: n for state, n in status["states"].items() if n} == {"download_failed": count}, status
    assert status["remaining"] == 0  # nothing left for this run; a later `work` run retries them
    billed = list(evolink_sandbox.ledger.billed)
    assert len(billed) == count

    monkeypatch.setattr(SandboxState, "result_expired", lambda self, record, now: False)
    ((code, _, stderr),) = await _run_workers([_work_argv(tmp_path, journal_url, evolink_sandbox, out)], timeout=60)
    assert code == 0, stderr
    summary = json.loads(stderr.strip().splitlines()[-1])
    assert (summary["submitted"], summary["downloaded"], summary["failed"]) == (0, count, 0), summary
    rows = await _export(journal_url)
    assert [row["outcome"] for row in rows] == ["downloaded"] * count, rows
    assert all("error" not in row for row in rows), rows
    assert all(Path(path).is_file() for row in rows for path in row["result_paths"])
    assert evolink_sandbox.ledger.billed == billed  # downloaded again, never submitted again


async def test_a_worker_that_cannot_write_results_stops_and_a_later_run_downloads_them(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    """A real write failure, not a patched one: the worker runs under ``ulimit -f 0`` (no file may
    grow; Python ignores SIGXFSZ, so writes fail with EFBIG). It stops claiming inputs with a
    typed ``DownloadError`` (reason ``disk``, no traceback), the inputs it finished are
    ``download_failed``, and a later run with room downloads them without a second submit."""
    count = 6
    assert (await _plan(journal_url, _manifest(tmp_path / "m.jsonl", count))).returncode == 0
    out = tmp_path / "out"
    limited = ["sh", "-c", 'ulimit -f 0 && exec "$@"', "sh", *_work_argv(tmp_path, journal_url, evolink_sandbox, out)]
    ((code, _, stderr),) = await _run_workers([limited], timeout=60)
    assert code == 1, stderr
    assert "Traceback" not in stderr, stderr
    assert "DownloadError: disk: cannot write the result: File too large" in stderr, stderr
    rows = await _export(journal_url)
    failed = [row for row in rows if row["outcome"] == "download_failed"]
    assert failed, rows
    assert all(row["error"]["code"] == "download_disk" for row in failed), rows
    assert not list(out.rglob("*.result-*")), "no result name over a file that could not be written"

    ((code, _, stderr),) = await _run_workers([_work_argv(tmp_path, journal_url, evolink_sandbox, out)], timeout=60)
    assert code == 0, stderr
    rows = await _export(journal_url)
    assert [row["outcome"] for row in rows] == ["downloaded"] * count, rows
    billed = evolink_sandbox.ledger.billed
    assert len(billed) == len(set(billed)) == count  # every input paid for once, across both runs
