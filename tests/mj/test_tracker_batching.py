"""The tracker's batch polling: due queries share one fetch_many; failures fall back per task."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from evolink_async import EventKind, NotFoundError, PollPolicy, ServerError, Task, TaskStatus
from evolink_async._watching.tracker import Tracker
from evolink_async.errors import UnsupportedOperationError
from tests.helpers.sinks import Recorder

FAST = PollPolicy(min_interval=0.01, max_interval=0.01, jitter=0.0)


async def run_until(tracker: Tracker, recorders: Sequence[Recorder], ids: Sequence[str]) -> None:
    async with anyio.create_task_group() as group:
        tracker.open()
        group.start_soon(tracker.run)
        for task_id, recorder in zip(ids, recorders, strict=True):
            tracker.watch(task_id, recorder)
        with anyio.fail_after(5):
            while not all((r.events and r.events[-1].is_terminal) or r.errors for r in recorders):
                await anyio.sleep(0.005)
        group.cancel_scope.cancel()


async def test_due_queries_share_one_request() -> None:
    singles: list[str] = []
    batches: list[list[str]] = []

    async def fetch(task_id: str) -> Task:
        singles.append(task_id)
        return Task(id=task_id, status=TaskStatus.COMPLETED, progress=100)

    async def fetch_many(ids: Sequence[str]) -> Sequence[Task]:
        batches.append(list(ids))
        return [Task(id=i, status=TaskStatus.COMPLETED, progress=100) for i in ids]

    tracker = Tracker(fetch, policy=FAST, fetch_many=fetch_many, fetch_many_limit=4, max_concurrent_queries=1)
    recorders = [Recorder() for _ in range(10)]
    await run_until(tracker, recorders, [f"t{i}" for i in range(10)])
    assert all(r.events[-1].kind is EventKind.COMPLETED for r in recorders)
    assert all(len(b) <= 4 for b in batches)
    assert sorted(singles + [i for b in batches for i in b]) == sorted(f"t{i}" for i in range(10))
    assert len(batches) >= 2


async def test_missing_from_answers_is_not_found_after_grace() -> None:
    async def fetch(task_id: str) -> Task:
        raise NotFoundError("gone", status_code=404)

    async def fetch_many(ids: Sequence[str]) -> Sequence[Task]:
        return [Task(id=i, status=TaskStatus.COMPLETED) for i in ids if i != "gone"]

    tracker = Tracker(fetch, policy=FAST, fetch_many=fetch_many, max_concurrent_queries=1)
    recorders = [Recorder() for _ in range(3)]
    await run_until(tracker, recorders, ["a", "gone", "b"])
    assert isinstance(recorders[1].errors[-1], NotFoundError)
    assert recorders[0].events[-1].kind is EventKind.COMPLETED


@pytest.mark.parametrize("error", [ServerError("boom", status_code=502), UnsupportedOperationError("fetch_many", "no")])
async def test_batch_errors(error: Exception) -> None:
    calls = {"many": 0, "single": 0}

    async def fetch(task_id: str) -> Task:
        calls["single"] += 1
        return Task(id=task_id, status=TaskStatus.COMPLETED)

    async def fetch_many(ids: Sequence[str]) -> Sequence[Task]:
        calls["many"] += 1
        if calls["many"] == 1 or isinstance(error, UnsupportedOperationError):
            raise error
        return [Task(id=i, status=TaskStatus.COMPLETED) for i in ids]

    tracker = Tracker(fetch, policy=FAST, fetch_many=fetch_many, max_concurrent_queries=1)
    recorders = [Recorder() for _ in range(5)]
    await run_until(tracker, recorders, [f"t{i}" for i in range(5)])
    assert all(r.events[-1].kind is EventKind.COMPLETED for r in recorders)
    if isinstance(error, UnsupportedOperationError):
        assert calls["many"] == 1  # remembered: never asked again
        assert calls["single"] >= 5
