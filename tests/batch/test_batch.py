"""The resumable folder batch (library level) against the sandbox."""

from __future__ import annotations

import gc
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from evolink_async import EvolinkClient, PollPolicy, RetryPolicy
from evolink_async._watching import fan_out as fan_out_module
from evolink_async.batch._entries import EntryStatus
from evolink_async.batch._run import Batch, plan_batch
from evolink_async.batch._spec import BatchEvent, BatchLockedError, BatchSpec, iter_inputs
from evolink_async.batch._sqlite_store import Journal
from evolink_async.cli._progress import summary_lines
from evolink_async.errors import ValidationError
from evolink_async.sandbox import Faults, Sandbox
from tests.helpers.hostile import HostileServer, holding_submit_answers, hostile_server
from tests.helpers.images import write_png

Build = Callable[..., EvolinkClient]
SUBMITS = "POST /v1/images/generations"


def _inputs(folder: Path) -> list[str]:
    write_png(folder / "a.png", shade=10)
    write_png(folder / "b.png", shade=20)
    write_png(folder / "sub" / "c.png", shade=30)
    (folder / "notes.txt").write_text("not an input: wrong suffix")
    (folder / "broken.png").write_text("not an image at all")
    return ["a.png", "b.png", "broken.png", "sub/c.png"]


def _spec(tmp_path: Path, **options: object) -> BatchSpec:
    values: dict[str, object] = {"model": "qwen-image-edit", "prompt": "make it autumn", "input_dir": tmp_path / "in",
                                 "output_dir": tmp_path / "out", "recursive": True}  # fmt: skip
    return BatchSpec(**{**values, **options})  # type: ignore[arg-type]


def _client_behind(proxy: HostileServer, sandbox: Sandbox) -> EvolinkClient:
    """A client whose API calls go through ``proxy`` (uploads straight to the sandbox's Files API)."""
    return EvolinkClient(
        sandbox.api_key, base_url=proxy.url, files_base_url=sandbox.files_base_url,
        poll_policy=PollPolicy().scaled(0.01), retry=RetryPolicy(max_retries=8, initial_delay=0.01, max_delay=0.05),
    )  # fmt: skip


async def _stop_while_answers_held(
    batch: Batch, held: list[str], count: int, *, then: Callable[[], None] | None = None
) -> None:
    """Run ``batch``; once ``count`` submit answers are held, cancel it (the Ctrl-C), then ``then()``
    once the stop has begun."""
    ctrl_c = anyio.CancelScope()

    async def run() -> None:
        with ctrl_c:
            await batch.run()

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            group.start_soon(run)
            while len(held) < count:
                await anyio.sleep(0.01)
            ctrl_c.cancel()  # every answer still on its way
            if then is not None:
                await anyio.sleep(0.1)  # the stop has begun (ordering only; nothing is timed)
                then()


async def test_a_folder_becomes_a_folder_of_results(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    _inputs(tmp_path / "in")
    events: list[BatchEvent] = []
    async with scaled_client(evolink_sandbox) as client:
        summary = await Batch(client, _spec(tmp_path), on_event=events.append).run()
    assert summary.inputs == 4
    assert summary.downloaded == 3
    assert summary.submitted == 3
    assert [(f.key, f.code) for f in summary.failed] == [("broken.png", "invalid_input")]
    assert "not a PNG" in summary.failed[0].message
    assert not summary.ok
    out = tmp_path / "out"
    for name in ("a.png.result-0.png", "b.png.result-0.png", "sub/c.png.result-0.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG"), name
    assert len(evolink_sandbox.ledger.billed) == 3
    kinds = Counter(e.kind for e in events)
    assert kinds["found"] == 4
    assert kinds["downloaded"] == 3
    assert kinds["discovered"] == 1
    # Every input ends with exactly one of downloaded / failed.
    ends = Counter(e.key for e in events if e.kind in ("downloaded", "failed"))
    assert ends == Counter({"a.png": 1, "b.png": 1, "broken.png": 1, "sub/c.png": 1})

    # The same command again: nothing new is submitted, everything is accounted for.
    async with scaled_client(evolink_sandbox) as client:
        again = await Batch(client, _spec(tmp_path)).run()
    assert again.done_before == 3
    assert again.submitted == again.reattached == 0
    assert [f.key for f in again.failed] == ["broken.png"]
    assert evolink_sandbox.ledger.requests[SUBMITS] == 3
    assert len(evolink_sandbox.ledger.billed) == 3


async def test_a_run_leaves_no_stream_unclosed(evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path) -> None:
    """Every stream a run opens is closed by it (one left to the garbage collector warned under ``-X dev``)."""
    _inputs(tmp_path / "in")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        async with scaled_client(evolink_sandbox) as client:
            summary = await Batch(client, _spec(tmp_path)).run()
        gc.collect()
    assert summary.downloaded == 3
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_results_inside_the_input_folder_are_never_inputs(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    write_png(folder / "a.png")
    spec = BatchSpec(model="mj-v7-remove-bg", input_dir=folder, output_dir=folder)
    async with scaled_client(evolink_sandbox) as client:
        first = await Batch(client, spec).run()
        second = await Batch(client, spec).run()
    assert first.ok
    assert second.ok
    assert (first.inputs, second.inputs, second.done_before) == (1, 1, 1)
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith((".", "evolink-journal"))) == [
        "a.png", "a.png.result-0.png",
    ]  # fmt: skip
    assert len(evolink_sandbox.ledger.billed) == 1


@pytest.mark.evolink_sandbox(time_scale=0.05)
async def test_an_interrupted_run_resumes_without_paying_twice(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    for index in range(6):
        write_png(tmp_path / "in" / f"{index}.png", shade=index * 30)
    spec = _spec(tmp_path, max_in_flight=3)
    submitted = anyio.Event()

    def watch(event: BatchEvent) -> None:
        if event.kind == "submitted":
            submitted.set()

    async with scaled_client(evolink_sandbox) as client:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(Batch(client, spec, on_event=watch).run)
                await submitted.wait()
                scope.cancel()
    async with Journal(spec.journal_path) as journal:
        counts = await journal.counts()
    assert counts[EntryStatus.DOWNLOADED] < 6
    async with scaled_client(evolink_sandbox) as client:
        summary = await Batch(client, spec).run()
    assert summary.ok
    assert summary.reattached >= 1
    assert summary.done_before + summary.downloaded == 6
    billed = evolink_sandbox.ledger.billed
    assert len(billed) == len(set(billed)) == 6
    assert len(list((tmp_path / "out").glob("*.result-0.png"))) == 6


@pytest.mark.evolink_sandbox(time_scale=0.05, honor_idempotency_keys=False)
async def test_a_stop_records_the_tasks_of_answers_it_did_not_read(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    """Stopped while the fan-out holds submit answers the run has not read yet, the run records
    their tasks all the same: a re-run re-attaches to them, and a server that ignores
    Idempotency-Key bills them once (before: each was submitted, and billed, again)."""
    count = 8
    for index in range(count):
        write_png(tmp_path / "in" / f"{index}.png", shade=index * 20)
    spec = _spec(tmp_path, max_in_flight=count)
    all_billed = anyio.Event()

    async def until_all_billed() -> None:
        """Every answer held until all are billed: they reach the client together, and the run
        reads the first while the others wait in the fan-out."""
        if len(evolink_sandbox.ledger.billed) == count:
            all_billed.set()
        await all_billed.wait()

    read: list[str] = []
    async with hostile_server(holding_submit_answers(evolink_sandbox.base_url, until_all_billed)) as proxy:
        async with _client_behind(proxy, evolink_sandbox) as behind_proxy:
            with anyio.CancelScope() as scope:

                def stop_at_the_first_answer(event: BatchEvent) -> None:
                    if event.kind == "submitted":
                        read.append(str(event.key))
                        scope.cancel()

                with anyio.fail_after(60):
                    await Batch(behind_proxy, spec, on_event=stop_at_the_first_answer).run()
    billed = list(evolink_sandbox.ledger.billed)
    assert len(billed) == count
    async with Journal(spec.journal_path) as journal:
        recorded = {entry.task_id async for entry in journal.entries(status=EntryStatus.SUBMITTED)}
    assert len(read) < count  # the stop came with answers unread
    assert recorded == set(billed)  # every task the server made is named in the journal

    async with scaled_client(evolink_sandbox) as client:
        summary = await Batch(client, spec).run()
    assert summary.ok
    assert (summary.reattached, summary.submitted) == (count, 0)
    assert evolink_sandbox.ledger.billed == billed  # nothing billed twice
    assert len(list((tmp_path / "out").glob("*.result-0.png"))) == count


@pytest.mark.evolink_sandbox(time_scale=0.05, honor_idempotency_keys=False)
async def test_a_stop_waits_for_the_answers_of_submits_already_sent(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    """Ctrl-C (a cancellation) while submits wait for their answers: the run lets them come, within
    a bound, and records their tasks, instead of cutting them off as interrupted submits that a
    re-run sends again (and a server that ignores Idempotency-Key bills again)."""
    count = 4
    for index in range(count):
        write_png(tmp_path / "in" / f"{index}.png", shade=index * 40)
    spec = _spec(tmp_path, max_in_flight=count)
    release = anyio.Event()
    held: list[str] = []

    async def until_released() -> None:
        held.append(SUBMITS)
        await release.wait()

    events: list[BatchEvent] = []
    async with hostile_server(holding_submit_answers(evolink_sandbox.base_url, until_released)) as proxy, _client_behind(
        proxy, evolink_sandbox
    ) as behind_proxy:
        batch = Batch(behind_proxy, spec, on_event=events.append)
        await _stop_while_answers_held(batch, held, count, then=release.set)
    billed = list(evolink_sandbox.ledger.billed)
    assert len(billed) == count
    assert batch.summary.interrupted
    assert not [e for e in events if e.kind == "submitted"]  # none was read before the stop
    async with Journal(spec.journal_path) as journal:
        recorded = {entry.task_id async for entry in journal.entries(status=EntryStatus.SUBMITTED)}
    assert recorded == set(billed)

    async with scaled_client(evolink_sandbox) as client:
        summary = await Batch(client, spec).run()
    assert summary.ok
    assert (summary.reattached, summary.submitted) == (count, 0)
    assert evolink_sandbox.ledger.billed == billed  # nothing billed twice


async def test_a_stop_past_the_wait_counts_the_submits_it_cut_off(
    evolink_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answers that do not come within the stop's wait: the run says how many submits it cut off
    (their tasks may exist, and the re-run sends them again), instead of "nothing is lost"."""
    monkeypatch.setattr(fan_out_module, "STOP_SETTLE_TIMEOUT", 0.2)
    count = 3
    for index in range(count):
        write_png(tmp_path / "in" / f"{index}.png", shade=index * 40)
    spec = _spec(tmp_path, max_in_flight=count)
    never = anyio.Event()
    held: list[str] = []

    async def for_good() -> None:
        held.append(SUBMITS)
        await never.wait()

    async with hostile_server(holding_submit_answers(evolink_sandbox.base_url, for_good)) as proxy, _client_behind(
        proxy, evolink_sandbox
    ) as behind_proxy:
        batch = Batch(behind_proxy, spec)
        try:
            await _stop_while_answers_held(batch, held, count)
        finally:
            never.set()
    summary = batch.summary
    assert summary.interrupted
    assert (summary.submitted, summary.interrupted_submits) == (0, count)
    assert summary.to_json()["interrupted_submits"] == count
    assert any(f"{count} submit(s) got no answer (their tasks may exist)" in line for line in summary_lines(summary))


@pytest.mark.evolink_sandbox(faults=Faults(task_failure_rate=1.0, failure_codes=("content_policy_violation",)))
async def test_failed_tasks_are_listed_with_their_codes(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    write_png(tmp_path / "in" / "a.png")
    async with scaled_client(evolink_sandbox) as client:
        summary = await Batch(client, _spec(tmp_path)).run()
        again = await Batch(client, _spec(tmp_path)).run()
    assert [(f.key, f.code) for f in summary.failed] == [("a.png", "content_policy_violation")]
    assert [(f.key, f.code) for f in again.failed] == [("a.png", "content_policy_violation")]
    assert len(evolink_sandbox.ledger.billed) == 1  # a failure is not retried unless asked


async def test_dry_run_spends_nothing(evolink_sandbox: Sandbox, tmp_path: Path) -> None:
    _inputs(tmp_path / "in")
    write_png(tmp_path / "in" / "tiny.png", 100, 100)  # below qwen-image-edit's 384 px
    plan = await plan_batch(_spec(tmp_path))
    assert (plan.inputs, plan.to_submit, plan.already_handled) == (5, 3, 0)
    assert sorted(f.key for f in plan.invalid) == ["broken.png", "tiny.png"]
    assert plan.estimated_credits == 3.0
    assert not (tmp_path / "out").exists()
    assert sum(evolink_sandbox.ledger.requests.values()) == 0


async def test_glob_and_non_recursive(tmp_path: Path) -> None:
    _inputs(tmp_path / "in")
    plan = await plan_batch(_spec(tmp_path, recursive=False, pattern="[ab].png"))
    assert plan.inputs == 2


async def test_one_run_per_output_folder(evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path) -> None:
    write_png(tmp_path / "in" / "a.png")
    started = anyio.Event()
    async with scaled_client(evolink_sandbox) as client, anyio.create_task_group() as group:
        group.start_soon(Batch(client, _spec(tmp_path), on_event=lambda e: started.set()).run)
        await started.wait()
        with pytest.raises(BatchLockedError):
            await Batch(client, _spec(tmp_path)).run()


def _refuse_listing(monkeypatch: pytest.MonkeyPatch, locked: Path) -> None:
    """``chmod 000 locked`` as root would change nothing (root reads it anyway): listing it raises instead."""
    import os

    real_scandir = os.scandir

    def scandir(path: object = ".") -> object:
        if Path(str(path)).resolve() == locked.resolve():
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "scandir", scandir)


async def test_an_unreadable_sub_folder_is_reported_and_the_rest_runs(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sub-folder that cannot be listed (``os.scandir`` raises ``PermissionError`` for it, as a
    ``chmod 000`` folder would for a non-root user) is skipped, reported once, and fails the run."""
    write_png(tmp_path / "in" / "a.png")
    write_png(tmp_path / "in" / "locked" / "b.png")
    _refuse_listing(monkeypatch, tmp_path / "in" / "locked")
    async with scaled_client(evolink_sandbox) as client:
        summary = await Batch(client, _spec(tmp_path)).run()
    assert (summary.inputs, summary.downloaded) == (1, 1)
    assert (tmp_path / "out" / "a.png.result-0.png").exists()
    assert [(f.path, f.message) for f in summary.unreadable_folders] == [("locked", "Permission denied")]
    assert summary.error is None
    assert not summary.ok  # b.png was never seen: the batch is not complete
    assert summary.to_json()["unreadable_folders"] == [{"path": "locked", "message": "Permission denied"}]
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "locked" in r.getMessage()]
    assert len(warnings) == 1

    plan = await plan_batch(_spec(tmp_path))  # the dry run finds the same
    assert plan.inputs == 1
    assert [f.path for f in plan.unreadable_folders] == ["locked"]


def test_an_unreadable_input_folder_is_a_validation_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The input folder itself cannot be listed (``os.scandir`` raises for it): a clear error, not an ``OSError``."""
    write_png(tmp_path / "in" / "a.png")
    _refuse_listing(monkeypatch, tmp_path / "in")
    with pytest.raises(ValidationError, match="cannot be read: Permission denied"):
        list(iter_inputs(tmp_path / "in", recursive=True))


def test_a_fleet_plan_of_a_folder_with_an_unreadable_sub_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``evolink batch plan FOLDER``: a plan is written once for the whole fleet, so a sub-folder
    that cannot be listed is a ``ValidationError`` naming it (no ``OSError`` traceback, and no plan
    that silently leaves the folder out)."""
    from evolink_async.batch._manifest import folder_manifest

    write_png(tmp_path / "in" / "a.png")
    write_png(tmp_path / "in" / "locked" / "b.png")
    _refuse_listing(monkeypatch, tmp_path / "in" / "locked")
    with pytest.raises(ValidationError, match="locked cannot be read"):
        list(folder_manifest(tmp_path / "in", model="qwen-image-edit", prompt="p", recursive=True))


async def test_a_full_disk_stops_the_run_and_a_re_run_downloads_without_paying_again(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A result that cannot be written (``ENOSPC``, simulated in the write step) is the machine's
    problem, not the input's: the run stops with a typed ``DownloadError`` (reason ``disk``) rather
    than go on paying for results it cannot keep, and a re-run once there is room downloads what
    finished without submitting it again."""
    import errno

    from evolink_async._files import download
    from evolink_async.errors import DownloadError

    for index in range(8):
        write_png(tmp_path / "in" / f"{index}.png", shade=index * 30)
    # One at a time: the first result's failed write comes long before the last task would be submitted.
    spec = _spec(tmp_path, max_in_flight=1)

    def full(fd: int, chunks: list[bytes]) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(download, "_write_all", full)
        async with scaled_client(evolink_sandbox) as client:
            batch = Batch(client, spec)
            with pytest.raises(DownloadError) as caught:
                await batch.run()
    assert caught.value.reason == "disk"
    assert "No space left on device" in str(caught.value)
    assert "run the same command again" in str(caught.value)
    assert batch.summary.error is not None
    assert not batch.summary.ok
    assert not list((tmp_path / "out").glob("*.result-*")), "nothing half-written under a result name"
    billed_before = len(evolink_sandbox.ledger.billed)
    assert 1 <= billed_before < 8  # it stopped before submitting every input

    async with scaled_client(evolink_sandbox) as client:
        summary = await Batch(client, spec).run()
    assert summary.ok
    billed = evolink_sandbox.ledger.billed
    assert len(billed) == len(set(billed)) == 8  # every input paid for once, across both runs
    assert len(list((tmp_path / "out").glob("*.result-0.png"))) == 8
