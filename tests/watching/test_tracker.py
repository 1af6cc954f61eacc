"""The tracker's scheduler: one timer for the heap's head, workers, deadlines while workers are busy."""

from __future__ import annotations

import asyncio
import contextlib
import time

import anyio

import evolink_async as evolink
from evolink_async import EventKind, PollPolicy, Task, TaskStatus
from evolink_async._watching.tracker import Tracker
from tests.helpers.sinks import Recorder

FAST = PollPolicy(min_interval=0.01, max_interval=0.01, jitter=0.0)


def snapshot(task_id: str, *, estimated: float) -> Task:
    return Task(id=task_id, status=TaskStatus.PENDING, task_info=evolink.TaskInfo(estimated_time=estimated))


async def test_a_deadline_fires_on_time_while_every_worker_is_busy() -> None:
    release = asyncio.Event()

    async def fetch(task_id: str) -> Task:
        await release.wait()  # the only worker is stuck in this query
        return Task(id=task_id, status=TaskStatus.PROCESSING, progress=1)

    tracker = Tracker(fetch, policy=FAST, max_concurrent_queries=1)
    busy, timed = Recorder(), Recorder()
    async with anyio.create_task_group() as group:
        tracker.open()
        group.start_soon(tracker.run)
        tracker.watch("busy", busy)
        await anyio.sleep(0.05)
        deadline = time.monotonic() + 0.1
        tracker.watch("timed", timed, deadline=deadline)
        # The only worker is stuck until release: a timeout that waited for a worker never comes.
        with anyio.fail_after(10):
            while not timed.events:
                await anyio.sleep(0.005)
        assert timed.events[-1].kind is EventKind.TIMED_OUT
        assert timed.events[-1].at >= deadline  # on the tracker's clock: not before its deadline
        assert tracker.queries_sent == 1  # "timed" never got a worker: its timeout did not wait for one
        release.set()
        group.cancel_scope.cancel()


async def test_an_earlier_watch_moves_the_timer_forward() -> None:
    queried: list[str] = []

    async def fetch(task_id: str) -> Task:
        queried.append(task_id)
        return Task(id=task_id, status=TaskStatus.COMPLETED, progress=100)

    tracker = Tracker(fetch, policy=PollPolicy(jitter=0.0))
    late, now = Recorder(), Recorder()
    async with anyio.create_task_group() as group:
        tracker.open()
        group.start_soon(tracker.run)
        await anyio.sleep(0.01)
        # First query of "late" is half of a one-hour estimate away: the timer is armed for it.
        tracker.watch("late", late, snapshot=snapshot("late", estimated=3600.0))
        tracker.watch("now", now)  # no snapshot: queried at once, so the timer must move
        # The armed timer is 30 minutes away: "now" answered at all means the timer moved.
        with anyio.fail_after(10):
            while not now.events:
                await anyio.sleep(0.005)
        group.cancel_scope.cancel()
    assert queried == ["now"]
    assert now.events[-1].kind is EventKind.COMPLETED


async def test_queries_queued_behind_busy_workers_all_run_in_due_order() -> None:
    order: list[str] = []

    async def fetch(task_id: str) -> Task:
        order.append(task_id)
        await anyio.sleep(0.01)
        return Task(id=task_id, status=TaskStatus.COMPLETED, progress=100)

    tracker = Tracker(fetch, policy=FAST, max_concurrent_queries=2)
    sinks = {f"t{i}": Recorder() for i in range(12)}
    async with anyio.create_task_group() as group:
        tracker.open()
        group.start_soon(tracker.run)
        await anyio.sleep(0.01)
        for task_id, sink in sinks.items():
            tracker.watch(task_id, sink)
        with anyio.fail_after(5):
            while tracker.watched:
                await anyio.sleep(0.005)
        group.cancel_scope.cancel()
    assert order == list(sinks)  # one query each, first due first served
    assert all(s.events[-1].kind is EventKind.COMPLETED for s in sinks.values())


async def test_a_dropped_watch_leaves_no_query_behind_in_the_queue() -> None:
    release = asyncio.Event()
    queried: list[str] = []

    async def fetch(task_id: str) -> Task:
        queried.append(task_id)
        await release.wait()
        return Task(id=task_id, status=TaskStatus.COMPLETED, progress=100)

    tracker = Tracker(fetch, policy=FAST, max_concurrent_queries=1)
    first, dropped = Recorder(), Recorder()
    async with anyio.create_task_group() as group:
        tracker.open()
        group.start_soon(tracker.run)
        await anyio.sleep(0.01)
        tracker.watch("first", first)
        await anyio.sleep(0.02)
        handle = tracker.watch("dropped", dropped)  # due, but waits for the only worker
        await anyio.sleep(0.02)
        tracker.unwatch(handle)
        release.set()
        with anyio.fail_after(2):
            while tracker.watched:
                await anyio.sleep(0.005)
        await anyio.sleep(0.05)
        group.cancel_scope.cancel()
    assert queried == ["first"]
    assert dropped.events == []


async def test_a_sink_that_raises_loses_its_subscription_not_the_scheduler() -> None:
    class Raising(Recorder):
        def deliver(self, event: evolink.TaskEvent) -> None:
            raise RuntimeError("a buggy sink")

    async def fetch(task_id: str) -> Task:
        return Task(id=task_id, status=TaskStatus.COMPLETED, progress=100)

    now = [100.0]
    tracker = Tracker(fetch, policy=FAST, clock=lambda: now[0])
    bad, good = Raising(), Recorder()
    async with anyio.create_task_group() as group:
        tracker.open()
        group.start_soon(tracker.run)
        await anyio.sleep(0.01)
        tracker.watch("good", good)  # due at 100: the timer is armed for it
        tracker.watch("bad", bad, snapshot=snapshot("bad", estimated=3600.0), deadline=100.5)
        now[0] = 101.0  # so one timer callback finds both due: "good" queued first, then "bad" expires
        with anyio.fail_after(2):
            while not good.events:
                await anyio.sleep(0.005)
        group.cancel_scope.cancel()
    assert good.events[-1].kind is EventKind.COMPLETED
    assert bad.events == []


async def test_closing_while_workers_are_busy_leaves_no_callback_errors() -> None:
    errors: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))

    async def fetch(task_id: str) -> Task:
        try:
            await anyio.sleep(10)
        finally:
            # Unwinding takes a moment, as an aiohttp request does: the timer may fire meanwhile.
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.05)
        raise AssertionError("not reached")

    tracker = Tracker(fetch, policy=FAST, max_concurrent_queries=2)
    sinks = [Recorder() for _ in range(4)]
    runner = asyncio.create_task(tracker.run())
    try:
        await anyio.sleep(0.01)
        tracker.watch("busy", sinks[0])
        await anyio.sleep(0.02)
        for i, sink in enumerate(sinks[1:]):
            tracker.watch(f"due-{i}", sink, snapshot=snapshot(f"due-{i}", estimated=0.06))
        await anyio.sleep(0.02)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await anyio.sleep(0.1)  # any timer left armed would fire here
        loop.set_exception_handler(None)
    assert errors == []
    assert all(isinstance(e, evolink.ClientClosedError) for s in sinks for e in s.errors)


async def test_a_sink_that_subscribes_another_during_delivery_gives_it_one_terminal_event() -> None:
    """Delivery iterates a snapshot of the subscribers: a sink subscribed from inside another
    sink's ``deliver`` gets the watch's snapshot once, not that and the event being delivered."""

    async def fetch(task_id: str) -> Task:
        return Task(id=task_id, status=TaskStatus.COMPLETED, progress=100)

    tracker = Tracker(fetch, policy=FAST)
    late = Recorder()

    class SubscribesAnother(Recorder):
        def deliver(self, event: evolink.TaskEvent) -> None:
            super().deliver(event)
            tracker.watch("t", late)

    first = SubscribesAnother()
    async with anyio.create_task_group() as group:
        tracker.open()
        group.start_soon(tracker.run)
        tracker.watch("t", first)
        with anyio.fail_after(2):
            while not late.events:
                await anyio.sleep(0.005)
        await anyio.sleep(0.05)
        group.cancel_scope.cancel()
    assert [event.kind for event in first.events] == [EventKind.COMPLETED]
    assert [event.kind for event in late.events] == [EventKind.COMPLETED]
