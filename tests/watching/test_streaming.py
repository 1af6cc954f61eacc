"""tasks.stream / tasks.wait / images.generate against the sandbox, time-scaled."""

from __future__ import annotations

import gc
from collections.abc import Callable

import anyio
import pytest

import evolink_async as evolink
from evolink_async import EventKind, EvolinkClient, QwenImageEdit, TaskStatus
from evolink_async._models.task import NOT_RETRYABLE_CODES
from evolink_async.sandbox import Faults, Sandbox

REQUEST = QwenImageEdit(prompt="make it autumn", image_urls=["https://example.com/park.png"])
Build = Callable[..., EvolinkClient]


async def test_progress_events_in_order_without_duplicates(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        for _ in range(5):
            task = await client.images.submit(REQUEST)
            events = [event async for event in client.tasks.stream(task)]
            assert [e.kind for e in events[:-1]] == [EventKind.PROGRESS] * (len(events) - 1)
            assert events[-1].kind is EventKind.COMPLETED
            assert events[-1].task is not None
            assert events[-1].task.results
            snapshots = [(e.task.status, e.task.progress) for e in events if e.task]
            assert len(set(snapshots)) == len(snapshots), "an event repeated an unchanged snapshot"
            progress = [e.progress for e in events]
            assert progress == sorted(progress)
            assert [e.at for e in events] == sorted(e.at for e in events)


async def test_wait_returns_the_completed_task(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        done = await client.images.generate(REQUEST, timeout=30)
        assert done.status is TaskStatus.COMPLETED
        assert done.results[0].startswith(evolink_sandbox.base_url)
        # A terminal snapshot needs no query at all.
        before = evolink_sandbox.ledger.requests["GET /v1/tasks/{task_id}"]
        assert await client.tasks.wait(done) is done
        assert evolink_sandbox.ledger.requests["GET /v1/tasks/{task_id}"] == before


async def test_the_first_query_waits_for_the_estimate(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        task = await client.images.submit(REQUEST)
        assert task.estimated_time
        with anyio.move_on_after(task.estimated_time * 0.3):
            async for _ in client.tasks.stream(task):
                pass
        assert evolink_sandbox.ledger.requests["GET /v1/tasks/{task_id}"] == 0


@pytest.mark.evolink_sandbox(faults=Faults(task_failure_rate=1.0))
async def test_failed_task(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        task = await client.images.submit(REQUEST)
        events = [e async for e in client.tasks.stream(task)]
        assert events[-1].kind is EventKind.FAILED
        with pytest.raises(evolink.TaskFailedError) as info:
            await client.images.generate(REQUEST)
        assert info.value.code
        assert info.value.task.status is TaskStatus.FAILED
        assert info.value.retryable == (info.value.code not in NOT_RETRYABLE_CODES)


@pytest.mark.evolink_sandbox(faults=Faults(stuck_rate=1.0))
async def test_client_deadline(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        task = await client.images.submit(REQUEST)
        events = [e async for e in client.tasks.stream(task, timeout=0.4)]
        assert events[-1].kind is EventKind.TIMED_OUT
        assert events[-1].task is not None  # the last snapshot seen
        with pytest.raises(evolink.TaskTimeoutError) as info:
            await client.tasks.wait(task, timeout=0.3)
        assert info.value.task_id == task.id
        assert client.tracker.watched == 0


async def test_cancelled_and_pushed_snapshots(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        task = await client.images.submit(REQUEST)
        cancelled: list[BaseException] = []
        streamed: list[EventKind] = []

        async def wait() -> None:
            try:
                await client.tasks.wait(task)
            except evolink.TaskCancelledError as exc:
                cancelled.append(exc)

        async def stream() -> None:
            streamed.extend([e.kind async for e in client.tasks.stream(task)])

        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            group.start_soon(stream)
            await anyio.sleep(0)
            # As a webhook receiver would: push the server's snapshot into the tracker.
            client.tracker.push(evolink.Task(id=task.id, status=TaskStatus.CANCELLED, progress=10))
        assert streamed == [EventKind.CANCELLED]
        assert len(cancelled) == 1
        assert client.tracker.watched == 0


async def test_stream_by_id_and_shared_watch(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        task = await client.images.submit(REQUEST)
        async with anyio.create_task_group() as group:
            results: list[list[EventKind]] = []

            async def collect(source: evolink.Task | str) -> None:
                results.append([e.kind async for e in client.tasks.stream(source)])

            group.start_soon(collect, task)
            group.start_soon(collect, task.id)
            await anyio.sleep(0)
            assert client.tracker.watched == 1  # two subscribers, one watch
        assert all(kinds[-1] is EventKind.COMPLETED for kinds in results)


async def test_abandoned_stream_stops_costing_queries(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        task = await client.images.submit(REQUEST)
        stream = client.tasks.stream(task.id)
        await stream.__anext__()
        assert client.tracker.watched == 1
        del stream
        gc.collect()
        with anyio.fail_after(30):  # the watch ends once the collected stream's finalizer ran
            while client.tracker.watched:
                await anyio.sleep(0.01)


async def test_leaving_a_stream_block_stops_watching(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        task = await client.images.submit(REQUEST)
        async with client.tasks.stream(task.id) as events:
            async for _ in events:
                break
        assert client.tracker.watched == 0


async def test_authentication_error_surfaces_from_the_stream(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox, api_key="sk-evo-wrong-key-000000000") as client:
        with pytest.raises(evolink.AuthenticationError):
            async for _ in client.tasks.stream("task-unified-1-abcdefgh"):
                pass
        with pytest.raises(evolink.AuthenticationError):
            await client.images.submit(REQUEST)
    assert evolink_sandbox.ledger.billed == []


async def test_unknown_task_fails_after_tolerance(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(evolink.NotFoundError):
            await client.tasks.wait("task-unified-1-doesnotexist")


async def test_closing_the_client_releases_waiters(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    caught: list[BaseException] = []
    client = scaled_client(evolink_sandbox)
    async with anyio.create_task_group() as group, client:
        task = await client.images.submit(REQUEST)

        async def wait() -> None:
            try:
                await client.tasks.wait(task)
            except evolink.ClientClosedError as exc:
                caught.append(exc)

        group.start_soon(wait)
        await anyio.sleep(0.01)
    assert len(caught) == 1


async def test_streaming_needs_an_entered_client(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    client = scaled_client(evolink_sandbox)
    with pytest.raises(RuntimeError, match="async with"):
        await client.tasks.wait("task-unified-1-abc")
    await client.aclose()
