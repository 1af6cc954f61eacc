"""Watching Midjourney tasks against a small real proxy double on 127.0.0.1 (timing-dependent)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from benchmarks._mj_server import FakeProxy
from evolink_async import (
    APIConnectionError,
    EventKind,
    Imagine,
    MidjourneyClient,
    Modal,
    PollPolicy,
    RetryPolicy,
    TaskFailedError,
    TaskNeedsModalError,
    TaskStatus,
)

KEY = "mj-secret-watching-0123456789"
POLICY = PollPolicy().scaled(0.01)
RETRY = RetryPolicy(max_retries=2, initial_delay=0.01, max_delay=0.02)


def client(proxy: FakeProxy, **options: Any) -> MidjourneyClient:
    options.setdefault("poll_policy", POLICY)
    options.setdefault("retry", RETRY)
    return MidjourneyClient(KEY, base_url=proxy.base_url, auth="mj-api-secret", **options)


@pytest.fixture
async def proxy() -> AsyncIterator[FakeProxy]:
    async with FakeProxy(secret=KEY, duration=(0.2, 0.4)) as server:
        yield server


async def test_wait_and_stream(proxy: FakeProxy) -> None:
    async with client(proxy) as mj:
        task = await mj.submit(Imagine(prompt="a red fox"))
        events = [event async for event in mj.tasks.stream(task, timeout=10)]
        kinds = [event.kind for event in events]
        assert kinds[-1] is EventKind.COMPLETED
        assert all(kind is EventKind.PROGRESS for kind in kinds[:-1])
        pairs = [(e.task.status, e.task.progress) for e in events if e.task is not None]
        assert all(a != b for a, b in itertools.pairwise(pairs))  # change-only
        done = await asyncio.wait_for(mj.tasks.wait(task.id, timeout=10), 15)
        assert done.results == (f"https://cdn.test/{task.id}.png",)
        upscaled = await asyncio.wait_for(mj.action(done, "U2"), 5)
        assert proxy.bodies[-1] == ("action", {"taskId": task.id, "customId": f"MJ::JOB::upsample::2::{task.id}-hash",
                                               "state": upscaled.midjourney.state if upscaled.midjourney else None})


@pytest.mark.parametrize("failure_progress", ["", "100%"])
async def test_failure_raises(failure_progress: str) -> None:
    async with FakeProxy(duration=(0.1, 0.2), failure_progress=failure_progress) as proxy, client(proxy) as mj:
        task = await mj.submit(Imagine(prompt="this will fail"))
        with pytest.raises(TaskFailedError, match="bad --ar"):
            await asyncio.wait_for(mj.tasks.wait(task, timeout=10), 15)


async def test_modal_never_hangs(proxy: FakeProxy) -> None:
    async with client(proxy) as mj:
        task = await mj.submit(Imagine(prompt="a modal one"))
        assert task.status is TaskStatus.MODAL
        # Passed as an id: the first query shows MODAL, and wait says what to do instead of hanging.
        with pytest.raises(TaskNeedsModalError):
            await asyncio.wait_for(mj.tasks.wait(task.id), 5)
        confirmed = await mj.submit(Modal(task=task, prompt="a red fox, zoomed"))
        assert confirmed.id == task.id
        done = await asyncio.wait_for(mj.tasks.wait(confirmed, timeout=10), 15)
        assert done.status is TaskStatus.COMPLETED


async def test_fan_out_ends_modal_inputs(proxy: FakeProxy) -> None:
    async with client(proxy) as mj:
        requests = [Imagine(prompt="fox"), Imagine(prompt="modal fox"), Imagine(prompt="fail fox")]
        async with mj.fan_out(requests, max_in_flight=8, timeout=10) as events:
            terminal = {e.key: e for e in [e async for e in events] if e.is_terminal}
        assert terminal[0].kind is EventKind.COMPLETED
        assert terminal[1].kind is EventKind.FAILED
        assert isinstance(terminal[1].error, TaskNeedsModalError)
        assert terminal[2].kind is EventKind.FAILED


async def test_batch_polling_when_available(proxy: FakeProxy) -> None:
    async with client(proxy) as mj:
        tasks = [await mj.submit(Imagine(prompt=f"fox {i}")) for i in range(20)]
        done = await asyncio.wait_for(asyncio.gather(*(mj.tasks.wait(t, timeout=10) for t in tasks)), 15)
    assert all(t.status is TaskStatus.COMPLETED for t in done)
    batches = proxy.count("/task/list-by-condition")
    singles = proxy.count("/task/{id}/fetch")
    assert batches > 0
    assert mj.tracker.batch_queries == batches
    assert batches + singles == mj.tracker.queries_sent
    # One fetch per task per poll took about 3 requests per task here (58 for 20 tasks).
    assert batches + singles < 20 * 2


async def test_single_fetch_when_no_batch_endpoint() -> None:
    async with FakeProxy(duration=(0.2, 0.4), batch_endpoint=False) as proxy, client(proxy) as mj:
        tasks = [await mj.submit(Imagine(prompt=f"fox {i}")) for i in range(10)]
        done = await asyncio.wait_for(asyncio.gather(*(mj.tasks.wait(t, timeout=10) for t in tasks)), 15)
    assert all(t.status is TaskStatus.COMPLETED for t in done)
    # Tried until the first 404 came back (workers already in a batch by then finish theirs), then never again.
    assert proxy.count("/task/list-by-condition") <= 4
    assert not mj.tracker.batch_polling
    assert proxy.count("/task/{id}/fetch") >= 10


async def test_batch_polling_off() -> None:
    async with FakeProxy(duration=(0.2, 0.4)) as proxy, client(proxy, batch_polling=False) as mj:
        tasks = [await mj.submit(Imagine(prompt=f"fox {i}")) for i in range(5)]
        await asyncio.wait_for(asyncio.gather(*(mj.tasks.wait(t, timeout=10) for t in tasks)), 15)
    assert proxy.count("/task/list-by-condition") == 0


async def test_lost_submit_answer_is_found_by_state(proxy: FakeProxy) -> None:
    proxy.drop_answers = 1
    async with client(proxy) as mj:
        task = await asyncio.wait_for(mj.submit(Imagine(prompt="lost answer")), 10)
        assert task.midjourney is not None
        assert task.midjourney.state is not None
        assert task.midjourney.state.startswith("evo-")
    assert len(proxy.tasks) == 1  # no second task
    assert list(proxy.tasks) == [task.id]
    assert proxy.count("/submit/imagine") == 1
    assert proxy.count("/task/list") == 1


async def test_lost_submit_with_caller_state(proxy: FakeProxy) -> None:
    proxy.drop_answers = 1
    async with client(proxy) as mj:
        task = await asyncio.wait_for(mj.submit(Imagine(prompt="lost", state="order-17")), 10)
    assert list(proxy.tasks) == [task.id]
    assert proxy.tasks[task.id].state == "order-17"


async def test_lost_submit_without_list_is_not_resubmitted() -> None:
    async with FakeProxy(list_endpoint=False) as proxy, client(proxy) as mj:
        proxy.drop_answers = 1
        with pytest.raises(APIConnectionError):
            await asyncio.wait_for(mj.submit(Imagine(prompt="lost")), 10)
    assert len(proxy.tasks) == 1
    assert proxy.count("/submit/imagine") == 1


async def test_lost_submit_not_on_the_server_is_sent_again(proxy: FakeProxy) -> None:
    # The connection dropped before the proxy created anything: the lookup finds nothing, so a
    # second submit is safe and happens once.
    async with client(proxy) as mj:
        proxy.next_results.append({"code": 1, "description": "ok", "properties": {}, "result": None})
        task = await asyncio.wait_for(mj.submit(Imagine(prompt="retry me")), 10)
    assert list(proxy.tasks) == [task.id]
    assert proxy.count("/submit/imagine") == 2


async def test_cancel_against_proxy(proxy: FakeProxy) -> None:
    proxy.duration = (5.0, 5.0)
    async with client(proxy) as mj:
        task = await mj.submit(Imagine(prompt="slow"))
        cancelled = await asyncio.wait_for(mj.tasks.cancel(task), 5)
        assert cancelled.status is TaskStatus.CANCELLED
        listed = await asyncio.wait_for(mj.tasks.get_many([task.id, "unknown"]), 5)
        assert [t.status for t in listed] == [TaskStatus.CANCELLED]


async def test_wrong_key_is_authentication_error(proxy: FakeProxy) -> None:
    from evolink_async import AuthenticationError

    async with MidjourneyClient("wrong-key-123", base_url=proxy.base_url, retry=RETRY) as mj:
        with pytest.raises(AuthenticationError):
            await asyncio.wait_for(mj.submit(Imagine(prompt="p")), 5)
