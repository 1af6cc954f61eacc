"""A submit the server refused for now (HTTP 402: the key's credits ran out) creates nothing: the
fleet worker sends the input back to the pool, by the one classification every batch uses
(``errors.was_refused_for_now``), and so do the inputs its fan-out then never sent."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from evolink_async.sandbox import Sandbox
from tests.helpers.fleet_cli import export, manifest, plan, run_workers, work_argv


@pytest.mark.evolink_sandbox(time_scale=0.01, credits=10)
async def test_a_key_out_of_credits_leaves_every_input_it_did_not_pay_for_to_a_later_run(
    evolink_sandbox: Sandbox, evolink_sandbox_factory: Callable[..., Awaitable[Any]], journal_url: str,
    tmp_path: Path,
) -> None:
    assert (await plan(journal_url, manifest(tmp_path / "m.jsonl", 30))).returncode == 0
    argv = work_argv(tmp_path, journal_url, evolink_sandbox, None, "--max-in-flight", "8")
    ((code, stdout, stderr),) = await run_workers([argv], timeout=60)
    assert len(evolink_sandbox.ledger.billed) == 10  # qwen-image-edit: 1 credit each
    assert Counter(row["outcome"] for row in await export(journal_url)) == {"completed": 10, "not_submitted": 20}
    assert code == 1, stderr  # inputs are left: said, not hidden behind exit 0
    summary = json.loads(stderr.strip().splitlines()[-1])
    assert "credits exhausted" in summary["stopped_reason"]
    assert summary["failed"] == 0
    assert "STOPPED" not in stdout  # --json: one event per line
    assert any(json.loads(line)["kind"] == "submits_stopped" for line in stdout.splitlines())
    # The same journal, a key with credits: the 20 left are taken, each paid once, nothing redone.
    funded: Sandbox = await evolink_sandbox_factory(time_scale=0.01)
    ((code, _, stderr),) = await run_workers([work_argv(tmp_path, journal_url, funded, None)], timeout=60)
    assert code == 0, stderr
    assert len(funded.ledger.billed) == 20
    assert Counter(row["outcome"] for row in await export(journal_url)) == {"completed": 30}
