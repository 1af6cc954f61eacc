"""A fleet worker started with a wrong base URL (or Midjourney path prefix): every submit answers 404,
which creates nothing. The worker stops (exit 2) and gives back every input it sent or was about to
send, as pending: no slot, no credits, nothing ``uncertain``; a re-run with the right URL submits
each input once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from evolink_async.batch._manifest import IMAGINE_MODEL
from evolink_async.sandbox import Sandbox
from tests.helpers.dead_host import dead_host
from tests.helpers.fleet_cli import ENV, evolink, export, manifest, plan, run_workers, status, work_argv

pytestmark = pytest.mark.evolink_sandbox(time_scale=0.01)


def _nothing_held(state: dict[str, Any]) -> None:
    """The journal after the stopped worker: no slot, no credits, no lease, nothing uncertain."""
    assert state["in_flight"] == 0, state
    assert state["credits_reserved"] == 0, state
    assert all(worker["held"] == 0 for worker in state["workers"]), state


async def test_a_worker_stopped_by_a_wrong_base_url_leaves_every_input_pending(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    assert (await plan(journal_url, manifest(tmp_path / "m.jsonl", 3))).returncode == 0
    wrong = work_argv(tmp_path, journal_url, evolink_sandbox, None, "--lease", "3",
                      "--base-url", f"{evolink_sandbox.base_url}/wrong")  # fmt: skip
    ((code, _, stderr),) = await run_workers([wrong], timeout=60)
    assert code == 2, stderr
    assert "HTTP 404" in stderr or "no such endpoint" in stderr
    assert evolink_sandbox.ledger.billed == []
    _nothing_held(await status(journal_url))
    assert Counter(row["outcome"] for row in await export(journal_url)) == {"pending": 3}
    ((code, _, stderr),) = await run_workers([work_argv(tmp_path, journal_url, evolink_sandbox, None)], timeout=60)
    assert code == 0, stderr
    assert len(evolink_sandbox.ledger.billed) == 3
    assert Counter(row["outcome"] for row in await export(journal_url)) == {"completed": 3}


async def test_a_midjourney_worker_stopped_by_a_wrong_path_prefix_leaves_every_prompt_pending(
    mj_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    lines = [{"key": f"fox-{n}", "model": IMAGINE_MODEL, "prompt": f"a red fox, take {n}"} for n in range(3)]
    prompts.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert (await plan(journal_url, prompts)).returncode == 0
    env = {**ENV, "MJ_PROXY_BASE_URL": mj_sandbox.mj_base_url, "MJ_PROXY_API_KEY": mj_sandbox.mj_api_key}
    common = ["batch", "work", "--journal", journal_url, "--protocol", "midjourney", "--lease", "3",
              "--poll-interval", "0.05", "--json", "--poll-scale", "0.01", "--wal", str(tmp_path / "w.wal")]  # fmt: skip
    with anyio.fail_after(60):
        wrong = await anyio.run_process(evolink(*common, "--path-prefix", "abc"), env=env, check=False)
    assert wrong.returncode == 2, wrong.stderr.decode()
    assert mj_sandbox.ledger.billed == []
    _nothing_held(await status(journal_url))
    assert Counter(row["outcome"] for row in await export(journal_url)) == {"pending": 3}
    with anyio.fail_after(60):
        right = await anyio.run_process(evolink(*common), env=env, check=False)
    assert right.returncode == 0, right.stderr.decode()
    assert len(mj_sandbox.ledger.billed) == 3
    assert Counter(row["outcome"] for row in await export(journal_url)) == {"completed": 3}


async def test_a_worker_stopped_by_a_model_the_service_does_not_offer_leaves_every_input_pending(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    lines = manifest(tmp_path / "m.jsonl", 6)
    lines.write_text(lines.read_text().replace('"qwen-image-edit"', '"qwen-image-editt"'))
    assert (await plan(journal_url, lines)).returncode == 0
    argv = work_argv(tmp_path, journal_url, evolink_sandbox, None, "--lease", "3")
    ((code, _, stderr),) = await run_workers([argv], timeout=60)
    assert code == 2, stderr
    assert "model_unavailable" in stderr
    assert "qwen-image-editt" in stderr
    assert "--model" not in stderr  # a worker has no such option: the batch's lines name the model
    assert evolink_sandbox.ledger.billed == []
    _nothing_held(await status(journal_url))
    assert Counter(row["outcome"] for row in await export(journal_url)) == {"pending": 6}


async def test_a_worker_whose_api_host_refuses_connections_stops_submitting_and_a_rerun_takes_every_input(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    assert (await plan(journal_url, manifest(tmp_path / "m.jsonl", 4))).returncode == 0
    async with dead_host(refuse=True) as host:
        argv = work_argv(tmp_path, journal_url, evolink_sandbox, None, "--lease", "3", "--base-url", host.url)
        ((code, _, stderr),) = await run_workers([argv], timeout=60)
    assert code != 0, stderr
    assert "cannot reach the server" in stderr
    assert evolink_sandbox.ledger.billed == []
    _nothing_held(await status(journal_url))
    # Never sent: "not submitted" (as when credits run out), claimable by the next run.
    assert Counter(row["outcome"] for row in await export(journal_url)) == {"not_submitted": 4}
    ((code, _, stderr),) = await run_workers([work_argv(tmp_path, journal_url, evolink_sandbox, None)], timeout=60)
    assert code == 0, stderr
    assert Counter(row["outcome"] for row in await export(journal_url)) == {"completed": 4}
    assert len(evolink_sandbox.ledger.billed) == len(set(evolink_sandbox.ledger.billed)) == 4
