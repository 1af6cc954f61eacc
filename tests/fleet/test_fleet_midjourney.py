"""A fleet batch of Midjourney prompts: two workers with ``MidjourneyClient``s share one PostgreSQL
journal, against the sandbox's Midjourney proxy. The worker runs any client; what a planned line
becomes is its source (``ImagineSource``), the same one a one-machine ``PromptBatch`` runs.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import anyio
import pytest

from evolink_async import EvolinkClient, MidjourneyClient, PollPolicy, RetryPolicy
from evolink_async.batch import (
    ImagineSource,
    ManifestInput,
    PgJournal,
    Worker,
    WorkerOptions,
    WorkerSummary,
    read_manifest,
)
from evolink_async.batch._manifest import IMAGINE_MODEL
from evolink_async.errors import ValidationError
from evolink_async.sandbox import Sandbox
from tests.helpers.fleet_cli import ENV, evolink, export, manifest, plan

pytestmark = pytest.mark.evolink_sandbox(time_scale=0.01)

PROMPTS = 6


def _mj(sandbox: Sandbox) -> MidjourneyClient:
    return MidjourneyClient(
        sandbox.mj_api_key, base_url=sandbox.mj_base_url, poll_policy=PollPolicy().scaled(0.01),
        retry=RetryPolicy(max_retries=8, initial_delay=0.005, max_delay=0.05),
    )  # fmt: skip


async def _plan(journal_url: str, manifest: Path, prompts: int) -> None:
    """Plan a manifest of prompt lines, as ``evolink batch plan`` reads one."""
    lines = [{"key": f"fox-{n}", "model": IMAGINE_MODEL, "prompt": f"a red fox, take {n}"} for n in range(prompts)]
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    async with PgJournal(journal_url, connections=1) as journal:
        assert (await journal.plan(read_manifest(manifest))).added == prompts


async def _work(sandbox: Sandbox, journal_url: str, out: Path, worker_id: str) -> WorkerSummary:
    options = WorkerOptions(worker_id=worker_id, out_dir=out, lease=5, poll_interval=0.05, claim_size=1, max_held=2)
    async with _mj(sandbox) as mj, PgJournal(journal_url, connections=2) as journal:
        return await Worker(mj, journal, options, source=ImagineSource()).run()


async def test_two_workers_run_a_midjourney_prompt_batch_each_prompt_billed_once(
    mj_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    await _plan(journal_url, tmp_path / "prompts.jsonl", PROMPTS)
    out = tmp_path / "out"
    summaries: list[WorkerSummary] = []

    async def work(worker_id: str) -> None:
        summaries.append(await _work(mj_sandbox, journal_url, out, worker_id))

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            group.start_soon(work, "mj-a")
            group.start_soon(work, "mj-b")
    assert sum(s.submitted for s in summaries) == PROMPTS
    assert sum(s.downloaded for s in summaries) == PROMPTS
    assert all(s.claimed > 0 for s in summaries), summaries  # the work was shared
    assert all(s.credits_reserved is None for s in summaries)  # a proxy never says: "0 reserved" would be false
    # Billed once each: one MJ task per prompt, and no two tasks of one submit (its ``state``).
    tasks = mj_sandbox.ledger.mj_tasks
    assert len(tasks) == len(set(mj_sandbox.ledger.billed)) == PROMPTS
    assert Counter(task.endpoint for task in tasks) == {"imagine": PROMPTS}
    assert len({task.state for task in tasks}) == PROMPTS
    async with PgJournal(journal_url, connections=1) as journal:
        rows = [row async for row in journal.entries()]
    assert Counter(row["status"] for row in rows) == {"downloaded": PROMPTS}
    assert {row["task_id"] for row in rows} == {task.task_id for task in tasks}
    for n in range(PROMPTS):
        assert (out / f"fox-{n}.result-0.png").is_file()


async def test_a_line_that_is_no_prompt_fails_alone_before_any_submit(
    mj_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    lines = [ManifestInput(key="fox", model=IMAGINE_MODEL, prompt="a red fox"),
             ManifestInput(key="edit", model="qwen-image-edit", prompt="autumn", image_urls=("https://x.test/a.png",))]  # fmt: skip
    async with PgJournal(journal_url, connections=1) as journal:
        await journal.plan(lines)
    with anyio.fail_after(60):
        summary = await _work(mj_sandbox, journal_url, tmp_path / "out", "mj-a")
    assert (summary.submitted, summary.downloaded, summary.failed) == (1, 1, 1)
    assert len(mj_sandbox.ledger.mj_tasks) == 1
    async with PgJournal(journal_url, connections=1) as journal:
        edit = await journal.get("edit")
    assert edit is not None
    assert (edit.status.value, edit.task_id) == ("submit_failed", None)
    with pytest.raises(ValidationError, match="not a Midjourney prompt"):
        ImagineSource().item_of(lines[1])


async def test_a_worker_whose_source_cannot_run_the_batch_is_refused_before_it_claims_anything(
    mj_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    await _plan(journal_url, tmp_path / "prompts.jsonl", 3)
    options = WorkerOptions(worker_id="edits", out_dir=tmp_path / "out", lease=5, poll_interval=0.05)
    async with EvolinkClient(mj_sandbox.api_key, base_url=mj_sandbox.base_url,
                             files_base_url=mj_sandbox.files_base_url) as client, \
            PgJournal(journal_url, connections=1) as journal:  # fmt: skip
        # The default source makes image edits: a prompt batch is not one, and nothing is claimed or failed.
        with anyio.fail_after(30), pytest.raises(ValidationError, match=r"fox-0.*ImagineSource"):
            await Worker(client, journal, options).run()
        assert {status.value: n for status, n in (await journal.counts()).items() if n} == {"pending_submit": 3}
    assert mj_sandbox.ledger.billed == []


async def test_the_command_line_runs_a_midjourney_fleet_and_says_which_protocol_a_batch_needs(
    mj_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    """``evolink batch plan`` of prompt lines, then ``batch work --protocol midjourney`` on two workers
    (key and host from $MJ_PROXY_*); a worker started for image edits is refused, naming the flag."""
    manifest = tmp_path / "prompts.jsonl"
    lines = [{"key": f"fox-{n}", "model": IMAGINE_MODEL, "prompt": f"a red fox, take {n}"} for n in range(PROMPTS)]
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert (await plan(journal_url, manifest)).returncode == 0
    env = {**ENV, "MJ_PROXY_BASE_URL": mj_sandbox.mj_base_url, "MJ_PROXY_API_KEY": mj_sandbox.mj_api_key}
    common = ["batch", "work", "--journal", journal_url, "--lease", "5", "--poll-interval", "0.05", "--json",
              "--poll-scale", "0.01", "--out", str(tmp_path / "out")]  # fmt: skip
    with anyio.fail_after(60):
        wrong = await anyio.run_process(evolink(*common, "--wal", str(tmp_path / "w0.wal"),
                                                "--api-key", mj_sandbox.api_key, "--base-url", mj_sandbox.base_url),
                                        env=ENV, check=False)  # fmt: skip
    assert wrong.returncode == 2, wrong.stderr.decode()
    assert "--protocol midjourney" in wrong.stderr.decode()
    assert "source=" not in wrong.stderr.decode()  # the library's name for it is not the command line's
    argvs = [evolink(*common, "--protocol", "midjourney", "--wal", str(tmp_path / f"w{n}.wal")) for n in (1, 2)]
    results: list[tuple[int, str]] = []

    async def one(argv: list[str]) -> None:
        done = await anyio.run_process(argv, env=env, check=False)
        results.append((done.returncode, done.stderr.decode()))

    with anyio.fail_after(90):
        async with anyio.create_task_group() as group:
            for argv in argvs:
                group.start_soon(one, argv)
    assert [code for code, _ in results] == [0, 0], results
    summaries = [json.loads(stderr.strip().splitlines()[-1]) for _, stderr in results]
    assert sum(s["submitted"] for s in summaries) == PROMPTS
    assert all(s["credits_reserved"] is None for s in summaries)
    assert len(mj_sandbox.ledger.mj_tasks) == len(set(mj_sandbox.ledger.billed)) == PROMPTS
    assert Counter(row["outcome"] for row in await export(journal_url)) == {"downloaded": PROMPTS}
    for n in range(PROMPTS):
        assert (tmp_path / "out" / f"fox-{n}.result-0.png").is_file()


async def test_a_midjourney_worker_on_a_batch_of_image_requests_says_what_the_lines_are_and_which_flag_runs_them(
    mj_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    assert (await plan(journal_url, manifest(tmp_path / "m.jsonl", 2))).returncode == 0
    env = {**ENV, "MJ_PROXY_BASE_URL": mj_sandbox.mj_base_url, "MJ_PROXY_API_KEY": mj_sandbox.mj_api_key}
    with anyio.fail_after(60):
        done = await anyio.run_process(evolink("batch", "work", "--journal", journal_url, "--protocol", "midjourney",
                                               "--wal", str(tmp_path / "w.wal")), env=env, check=False)  # fmt: skip
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert stderr.splitlines() == [
        "evolink: in/0000.png: this manifest line is an image request (model 'qwen-image-edit'), not a Midjourney "
        "prompt: run its batch with --protocol evolink (the default)"
    ]
    assert mj_sandbox.ledger.mj_tasks == []
