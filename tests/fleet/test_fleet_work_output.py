"""What ``evolink batch work`` prints without ``--json``: its events and one summary line for people
on standard output; on a stop, the one ``evolink:`` line on standard error (``--json``: the summary
object on standard error, as before)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evolink_async.sandbox import Sandbox
from tests.helpers.fleet_cli import manifest, plan, run_workers, work_argv

pytestmark = pytest.mark.evolink_sandbox(time_scale=0.01)


def _without_json(argv: list[str]) -> list[str]:
    return [arg for arg in argv if arg != "--json"]


async def test_a_worker_without_json_ends_with_a_summary_line_for_people(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    assert (await plan(journal_url, manifest(tmp_path / "m.jsonl", 2))).returncode == 0
    argv = _without_json(work_argv(tmp_path, journal_url, evolink_sandbox, None))
    ((code, stdout, stderr),) = await run_workers([argv], timeout=60)
    assert code == 0, stderr
    assert stderr == ""  # no JSON object for people to read
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("worker "), stdout
    assert ": 2 claimed, 2 submitted, 0 resumed, 2 completed" in last, stdout
    assert "2 credits reserved" in last


async def test_a_worker_stopped_without_json_says_why_in_one_line(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    assert (await plan(journal_url, manifest(tmp_path / "m.jsonl", 3))).returncode == 0
    argv = work_argv(tmp_path, journal_url, evolink_sandbox, None, "--base-url", f"{evolink_sandbox.base_url}/wrong")
    ((code, stdout, stderr),) = await run_workers([_without_json(argv)], timeout=60)
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("evolink: "), stderr
    assert "no such endpoint" in lines[0], stderr
    assert "(interrupted)" in stdout.strip().splitlines()[-1]
    # With --json, the summary object is still the line before the stop's.
    ((code, _, stderr),) = await run_workers([argv], timeout=60)
    assert code == 2, stderr
    summary = json.loads(stderr.strip().splitlines()[-2])
    assert summary["kind"] == "summary"
    assert summary["interrupted"] is True
