"""What a person watching a task sees: the latest state, spaced by ``min_gap``, the end at once."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import anyio
import pytest

import evolink_async as evolink
from evolink_async import EventKind, QwenImageEdit, TaskEvent
from evolink_async.sandbox import Sandbox

from .conftest import client_for


def edit() -> QwenImageEdit:
    return QwenImageEdit(prompt="edit", image_urls=["https://example.com/a.png"])


@pytest.mark.evolink_sandbox(time_scale=0.05)  # a 20 s estimate runs about 1 s here
async def test_min_gap_spaces_progress_and_never_delays_the_end(evolink_sandbox: Sandbox) -> None:
    gap = 0.15
    async with client_for(evolink_sandbox) as client:
        task = await client.images.submit(edit())
        received: list[tuple[float, TaskEvent]] = []
        async with client.tasks.stream(task, min_gap=gap) as events:
            async for event in events:
                received.append((time.monotonic(), event))
        async with client.tasks.stream(task) as events:  # the same task, now ended: one event
            assert [e.kind async for e in events] == [EventKind.COMPLETED]
    progress = [(at, e) for at, e in received if e.kind is EventKind.PROGRESS]
    assert received[-1][1].kind is EventKind.COMPLETED
    assert len(progress) >= 2
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(progress)]
    assert min(gaps) >= gap  # a lower bound: a busy machine only spreads them further
    assert [e.progress for _, e in progress] == sorted(e.progress for _, e in progress)


@pytest.mark.evolink_sandbox(time_scale=0.05)
async def test_a_slow_consumer_gets_the_latest_state_and_the_end_at_once(evolink_sandbox: Sandbox) -> None:
    # A chat bot that takes 0.3 s per edit, beside a fast watcher of the same task that tells
    # what the client knew at each moment.
    async with client_for(evolink_sandbox) as client:
        task = await client.images.submit(edit())
        known = {"progress": 0}
        seen_by_fast: list[int] = []
        ended = anyio.Event()
        slow: list[tuple[TaskEvent, int, bool]] = []

        async def fast_watcher() -> None:
            async for event in client.tasks.stream(task):
                known["progress"] = event.progress
                seen_by_fast.append(event.progress)
            ended.set()

        async def slow_bot() -> None:
            async with client.tasks.stream(task, min_gap=0.1) as events:
                while True:
                    end_was_known = ended.is_set()
                    try:
                        event = await anext(events)
                    except StopAsyncIteration:
                        return
                    slow.append((event, known["progress"], end_was_known))
                    await asyncio.sleep(0.3)

        async with anyio.create_task_group() as group:
            group.start_soon(fast_watcher)
            group.start_soon(slow_bot)
    assert slow[-1][0].kind is EventKind.COMPLETED
    for event, latest_known, end_was_known in slow:
        if end_was_known:
            assert event.kind is EventKind.COMPLETED  # never a stale progress after the end was seen
        else:
            assert event.progress >= latest_known  # never older than what the client had seen
    # The loop above is the latest-wins check (a queue would hand out states older than what the
    # client knew, and progress after the end). No count bound: how many states a 0.3 s consumer
    # sees depends on how long the task took on this machine's clock. What it gets is each state
    # once, in order, and only states the client had.
    progress = [event.progress for event, _, _ in slow]
    assert progress == sorted(progress)
    assert len([e for e, _, _ in slow if e.kind is EventKind.PROGRESS]) == len(
        {e.progress for e, _, _ in slow if e.kind is EventKind.PROGRESS}
    )
    assert set(progress) <= set(seen_by_fast)


def test_event_to_dict_is_json_ready() -> None:
    task = evolink.Task(
        id="task-unified-1", status=evolink.TaskStatus.COMPLETED, progress=100, results=("https://x/1.png",)
    )
    done = TaskEvent(kind=EventKind.COMPLETED, task=task, at=1.0, key=("folder", 3))
    assert json.loads(json.dumps(done.to_dict())) == {
        "kind": "completed",
        "task_id": "task-unified-1",
        "status": "completed",
        "progress": 100,
        "results": ["https://x/1.png"],
        "error": None,
        "key": "('folder', 3)",
    }
    failed_task = evolink.Task(
        id="t2", status=evolink.TaskStatus.FAILED, error=evolink.TaskError(code="content_policy_violation", message="no")
    )
    failed = TaskEvent(kind=EventKind.FAILED, task=failed_task, at=1.0, key=float("nan"),
                       error=evolink.TaskFailedError(failed_task))
    as_dict = json.loads(json.dumps(failed.to_dict(), allow_nan=False))
    assert as_dict["error"] == {
        "type": "TaskFailedError",
        "code": "content_policy_violation",
        "message": "task t2 failed content_policy_violation: no",
    }
    assert as_dict["key"] == "nan"
    submit_failed = TaskEvent(kind=EventKind.SUBMIT_FAILED, task=None, at=1.0, key=7,
                              error=evolink.ValidationError("prompt", "required"))
    assert submit_failed.to_dict()["task_id"] is None
    assert submit_failed.to_dict()["key"] == 7


def test_min_gap_is_validated() -> None:
    client = evolink.EvolinkClient("sk-evo-TESTKEY0123456789abcdef", base_url="http://127.0.0.1:9")
    for bad in [0, -1, float("nan"), float("inf"), "1", True]:
        with pytest.raises(evolink.ValidationError) as caught:
            client.tasks.stream("task-unified-1", min_gap=bad)  # type: ignore[arg-type]
        assert caught.value.field == "min_gap"
