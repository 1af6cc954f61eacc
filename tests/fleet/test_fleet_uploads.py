"""Fleet workers over local images: uploads journalled in PostgreSQL, within the key's file quota
shared by every worker, deleted when each input ends, also when the worker that uploaded them died.

Three ``batch work`` processes share one key whose Files API quota (20 files) is smaller than the
batch. Each reading the quota for itself, they would together keep up to three times the quota
alive and meet the server's 40003; the room lives in the journal instead, so no upload is refused.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from evolink_async import EvolinkClient, PollPolicy
from evolink_async.sandbox import Sandbox
from tests.helpers.images import bmp_bytes, png_bytes

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
QUOTA = 20
UPLOAD = "POST /api/v1/files/upload/stream"


def _evolink(*args: str) -> list[str]:
    return [sys.executable, "-m", "evolink_async", *args]


@pytest.mark.evolink_sandbox(time_scale=0.05, max_files=QUOTA)
async def test_three_workers_over_more_local_images_than_the_quota_share_it_and_never_meet_a_40003(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    count = 60
    folder = tmp_path / "in"
    folder.mkdir()
    data = png_bytes(400, 400)
    for index in range(count):
        (folder / f"{index:03d}.png").write_bytes(data)
    with anyio.fail_after(120):  # a bound, not a timing: the machine may be loaded
        planned = await anyio.run_process(_evolink("batch", "plan", str(folder), "--journal", journal_url,
                                                   "--prompt", "autumn", "--json"), env=ENV, check=False)  # fmt: skip
    assert planned.returncode == 0, planned.stderr.decode()
    connect = ["--base-url", evolink_sandbox.base_url, "--files-base-url", evolink_sandbox.files_base_url,
               "--api-key", evolink_sandbox.api_key, "--poll-scale", "0.05"]  # fmt: skip
    # A lease no loaded machine outlives: this test is about the shared quota, not take-overs.
    argv = _evolink("batch", "work", "--journal", journal_url, "--lease", "30", "--poll-interval", "0.05", "--json",
                    "--out", str(tmp_path / "out"), "--max-in-flight", "60", *connect)  # fmt: skip
    results: list[tuple[int, str]] = []

    async def worker() -> None:
        done = await anyio.run_process(argv, env=ENV, check=False)
        results.append((done.returncode, done.stderr.decode()))

    with anyio.fail_after(180):
        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(worker)
    for code, stderr in results:
        assert code == 0, stderr[-2000:]
    summaries = [json.loads(stderr.strip().splitlines()[-1]) for _, stderr in results]
    assert sum(s["downloaded"] for s in summaries) == count
    assert sum(s["failed"] for s in summaries) == 0
    ledger = evolink_sandbox.ledger
    # Every upload the workers sent was stored: the sandbox (which enforces the quota) refused none
    # with 40003, and none waited for one; one file per input, none uploaded twice.
    assert ledger.requests[UPLOAD] == ledger.files_stored == count
    assert sum(s["quota_waits"] for s in summaries) == 0
    assert ledger.peak_files_by_key[evolink_sandbox.api_key] <= QUOTA
    assert sum(s["uploads_deleted"] for s in summaries) >= count  # a file two workers deleted counts twice
    async with EvolinkClient(evolink_sandbox.api_key, base_url=evolink_sandbox.base_url,
                             files_base_url=evolink_sandbox.files_base_url,
                             poll_policy=PollPolicy().scaled(0.05)) as client:  # fmt: skip
        assert (await client.files.list()).total == 0


async def test_plan_refuses_a_folder_with_an_image_the_files_api_would_not_store(
    journal_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes(400, 400))
    (folder / "scan.bmp").write_bytes(bmp_bytes(400, 400))
    with anyio.fail_after(60):
        planned = await anyio.run_process(_evolink("batch", "plan", str(folder), "--journal", journal_url,
                                                   "--prompt", "autumn", "--json"), env=ENV, check=False)  # fmt: skip
    assert planned.returncode == 2
    err = planned.stderr.decode()
    assert "scan.bmp" in err
    assert "the Files API stores GIF, JPEG, PNG, WEBP images, this is BMP" in err


@pytest.mark.evolink_sandbox(time_scale=0.05, max_files=QUOTA)
async def test_a_worker_killed_mid_run_leaves_no_file_behind_and_none_is_uploaded_twice(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    count = 24
    folder = tmp_path / "in"
    folder.mkdir()
    data = png_bytes(400, 400)
    for index in range(count):
        (folder / f"{index:03d}.png").write_bytes(data)
    with anyio.fail_after(120):
        planned = await anyio.run_process(_evolink("batch", "plan", str(folder), "--journal", journal_url,
                                                   "--prompt", "autumn", "--json"), env=ENV, check=False)  # fmt: skip
    assert planned.returncode == 0, planned.stderr.decode()
    connect = ["--base-url", evolink_sandbox.base_url, "--files-base-url", evolink_sandbox.files_base_url,
               "--api-key", evolink_sandbox.api_key, "--poll-scale", "0.05"]  # fmt: skip
    argv = _evolink("batch", "work", "--journal", journal_url, "--lease", "2", "--poll-interval", "0.05", "--json",
                    "--wal", str(tmp_path / "fleet.wal"), "--max-in-flight", "12", *connect)  # fmt: skip
    # Killed (-9) after its 6th submit, holding inputs whose files it uploaded and recorded.
    with anyio.fail_after(120):
        killed = await anyio.run_process(argv, env={**ENV, "EVOLINK_FLEET_FAULT": "kill-after-submit:6"},
                                         check=False)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    ledger = evolink_sandbox.ledger
    # An upload the killed worker had sent may still be stored by the (loaded) sandbox after the next
    # worker listed the files: a file nobody could know of yet. Its handling is waited for, bounded (a
    # handler cancelled by the disconnect stores nothing).
    with anyio.move_on_after(10):
        while ledger.files_stored < ledger.requests[UPLOAD]:
            await anyio.sleep(0.01)
    with anyio.fail_after(120):
        done = await anyio.run_process(argv, env=ENV, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    # A submit the killed worker had in flight beside its 6th may have reached the server with its
    # answer lost: that input is `uncertain` (the run cannot know, and never pays again by itself),
    # and its file stays for the resubmit. Every other input's file is gone.
    outcomes = Counter(row["outcome"] for row in await _export(journal_url))
    assert set(outcomes) <= {"completed", "uncertain"}, outcomes
    async with EvolinkClient(evolink_sandbox.api_key, base_url=evolink_sandbox.base_url,
                             files_base_url=evolink_sandbox.files_base_url,
                             poll_policy=PollPolicy().scaled(0.05)) as client:  # fmt: skip
        assert (await client.files.list()).total == outcomes["uncertain"], outcomes
        if outcomes["uncertain"]:  # resubmitted with its key: the server replays its task, nothing is paid again
            with anyio.fail_after(120):
                again = await anyio.run_process([*argv, "--resubmit-uncertain"], env=ENV, check=False)
            assert again.returncode == 0, again.stderr.decode()[-2000:]
        assert (await client.files.list()).total == 0
    assert len(ledger.billed) == len(set(ledger.billed)) == count
    # The dead worker's files were reused (its inputs' stored bodies name them) and deleted with
    # their inputs' end: one file per input, and none left on the service.
    assert ledger.files_stored == count
    assert Counter(row["outcome"] for row in await _export(journal_url)) == {"completed": count}


async def _export(journal_url: str) -> list[dict[str, Any]]:
    with anyio.fail_after(60):
        exported = await anyio.run_process(_evolink("batch", "export", "--journal", journal_url), env=ENV)
    return [json.loads(line) for line in exported.stdout.decode().splitlines()]
