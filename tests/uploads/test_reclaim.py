"""Uploads as a bounded, reclaimed resource: a folder batch larger than the key's file quota.

The Files API keeps 100 files per key (API.md A6). Against a sandbox with that quota, each test runs
``evolink edit`` in a subprocess and reads the sandbox's ledger: ``peak_files_by_key`` (most files
alive at once), ``files_stored`` (uploads stored) and ``files.list()`` after the run.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from evolink_async import EvolinkClient, FilesAPIError
from evolink_async._protocols.evolink.uploads import UploadBudget
from evolink_async.batch import Batch, BatchSpec
from evolink_async.batch._entries import request_fingerprint
from evolink_async.batch._sqlite_store import Journal
from evolink_async.sandbox import Sandbox
from tests.helpers.images import png_bytes

from .conftest import cli_env, edit_argv, json_lines, write_inputs

Build = Callable[..., EvolinkClient]
QUOTA = 100
#: Tasks slow enough (about a second each) that files pile up to the quota: the budget, not the
#: speed of the sandbox, is what keeps them under it.
SLOW = 0.1


async def _files_left(sandbox: Sandbox, build: Build) -> int:
    async with build(sandbox) as client:
        return (await client.files.list()).total


@pytest.mark.evolink_sandbox(max_files=QUOTA, time_scale=SLOW)
async def test_250_images_with_a_100_file_quota_finish_and_leave_nothing(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    write_inputs(tmp_path / "in", 250)
    # max-in-flight above the quota: only the upload budget can keep the files alive under 100.
    argv = edit_argv(evolink_sandbox, tmp_path / "in", tmp_path / "out", "--max-in-flight", "150")
    with anyio.fail_after(180):
        run = await anyio.run_process(argv, env=cli_env(), check=False)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    summary = json_lines(run.stdout.decode())[-1]
    assert summary["ok"] is True
    assert summary["downloaded"] == 250
    assert summary["uploads_deleted"] == 250
    ledger = evolink_sandbox.ledger
    assert ledger.files_stored == 250
    assert 0 < ledger.peak_files_by_key[evolink_sandbox.api_key] <= QUOTA
    assert len(set(ledger.billed)) == 250
    assert await _files_left(evolink_sandbox, scaled_client) == 0


@pytest.mark.evolink_sandbox(max_files=QUOTA)
async def test_keep_uploads_keeps_them(evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", 5)
    argv = edit_argv(evolink_sandbox, tmp_path / "in", tmp_path / "out", "--keep-uploads")
    with anyio.fail_after(60):
        run = await anyio.run_process(argv, env=cli_env(), check=False)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    assert json_lines(run.stdout.decode())[-1]["uploads_deleted"] == 0
    assert await _files_left(evolink_sandbox, scaled_client) == 5


@pytest.mark.evolink_sandbox(max_files=QUOTA, time_scale=SLOW / 2)
async def test_killed_halfway_and_resumed_it_leaves_none_and_uploads_each_input_once(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    count = 250
    write_inputs(tmp_path / "in", count)
    argv = edit_argv(evolink_sandbox, tmp_path / "in", tmp_path / "out", "--max-in-flight", "150")
    ledger = evolink_sandbox.ledger
    process = await anyio.open_process(argv, env=cli_env())
    try:
        with anyio.fail_after(120):
            while ledger.files_stored < count // 2:  # halfway: files alive, tasks running, inputs not uploaded
                await anyio.sleep(0.01)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    assert process.returncode == -signal.SIGKILL
    stored_before = ledger.files_stored
    assert stored_before < count
    assert await _files_left(evolink_sandbox, scaled_client) > 0  # the killed run left files behind

    with anyio.fail_after(180):
        second = await anyio.run_process(argv, env=cli_env(), check=False)
    assert second.returncode == 0, second.stderr.decode()[-2000:]
    summary = json_lines(second.stdout.decode())[-1]
    assert summary["ok"] is True
    # Each input stored once over both runs: a file alive at the kill (recorded, or stored with its
    # answer lost) was reused, never uploaded again.
    assert ledger.files_stored == count
    assert ledger.peak_files_by_key[evolink_sandbox.api_key] <= QUOTA
    assert len(ledger.billed) == len(set(ledger.billed)) == count
    assert await _files_left(evolink_sandbox, scaled_client) == 0


@pytest.mark.evolink_sandbox(max_files=QUOTA)
async def test_another_client_filling_the_quota_makes_the_batch_wait_not_fail(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    count = 150
    write_inputs(tmp_path / "in", count)
    argv = edit_argv(evolink_sandbox, tmp_path / "in", tmp_path / "out", "--max-in-flight", "150")
    ledger = evolink_sandbox.ledger
    lines: list[str] = []
    waited = anyio.Event()
    ours: list[str] = []

    async def read(process: Process) -> None:
        assert process.stdout is not None
        buffered = b""
        async for chunk in process.stdout:
            buffered += chunk
            *complete, buffered = buffered.split(b"\n")
            for line in complete:
                lines.append(line.decode())
                if b'"quota_wait"' in line:
                    waited.set()

    async with scaled_client(evolink_sandbox) as other, await anyio.open_process(argv, env=cli_env()) as process:
        async with anyio.create_task_group() as group:
            group.start_soon(read, process)
            with anyio.fail_after(120):
                while ledger.files_stored < 20:
                    await anyio.sleep(0.01)
                with pytest.raises(FilesAPIError) as full:  # the other client takes every file left
                    while True:
                        ours.append((await other.files.upload_bytes(png_bytes(8, 8))).file_id)
                assert full.value.code == "40003"
                await waited.wait()  # the batch saw the 40003 and waits instead of failing
                for file_id in ours:  # ... until the other client lets go
                    await other.files.delete(file_id)
                await process.wait()
    assert process.returncode == 0
    events = json_lines("\n".join(lines))
    summary = events[-1]
    assert summary["ok"] is True
    assert summary["downloaded"] == count
    assert summary["quota_waits"] >= 1
    assert not [e for e in events if e["kind"] == "failed"]
    assert ours  # the other client did fill the quota
    assert await _files_left(evolink_sandbox, scaled_client) == 0


@pytest.mark.evolink_sandbox(max_files=3)
async def test_the_budget_waits_for_a_deletion_before_a_fourth_file(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    paths = write_inputs(tmp_path / "in", 4)
    uploads = "POST /api/v1/files/upload/stream"
    async with scaled_client(evolink_sandbox) as client:
        budget = UploadBudget(client.files)
        first = [await budget.upload(path) for path in paths[:3]]
        fourth: list[str] = []

        async def upload_fourth() -> None:
            fourth.append((await budget.upload(paths[3])).file_id)

        async with anyio.create_task_group() as group:
            group.start_soon(upload_fourth)
            await anyio.wait_all_tasks_blocked()
            assert budget.alive == 3  # the fourth waits for room: it has not taken any
            assert not fourth
            await budget.delete(first[0].file_id)
        assert fourth
        assert evolink_sandbox.ledger.requests[uploads] == 4
        assert evolink_sandbox.ledger.peak_files_by_key[evolink_sandbox.api_key] == 3
        assert budget.peak_alive == 3


async def test_a_changed_input_is_uploaded_anew_and_its_old_file_deleted(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    """A run killed with a file alive for ``a.png``; the image is then replaced: the resume must not
    send the old file for the new image. The journal is prepared as the killed run left it."""
    (image,) = write_inputs(tmp_path / "in", 1)
    spec = BatchSpec(model="qwen-image-edit", prompt="autumn", input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    (tmp_path / "out").mkdir()
    async with scaled_client(evolink_sandbox) as client:
        old = await client.files.upload(image)
        async with Journal(spec.journal_path) as journal:
            await journal.ensure_meta(spec.meta())
            info = image.stat()
            fingerprint = request_fingerprint(spec.fingerprint_body("000.png", content=f"{info.st_size}:{info.st_mtime_ns}"))
            entry = await journal.reserve("000.png", fingerprint)
            await journal.record_upload("000.png", entry.idempotency_key, old.file_id, old.file_url)
        image.write_bytes(png_bytes(500, 500))  # replaced: another size
        summary = await Batch(client, spec).run()
        assert summary.ok
        assert (await client.files.list()).total == 0  # the old file deleted, the new one too once done
    assert evolink_sandbox.ledger.files_stored == 2  # the new image was uploaded, not the old file reused
