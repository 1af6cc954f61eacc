"""One timer callback releases every job due within the coalescing window: early by at most the
window, never late; alarms (deadlines) never early. Counted on a virtual clock, not timed."""

from __future__ import annotations

import asyncio

from evolink_async import PollPolicy, Task, TaskInfo, TaskStatus
from evolink_async._watching.scheduler import Scheduler
from evolink_async._watching.tracker import Tracker
from tests.helpers.virtual_time import VirtualTimeLoop, run_virtual

WINDOW = 0.002


class Job:
    def __init__(self, name: str, due: float) -> None:
        self.name = name
        self.due = due
        self.generation = 0
        self.ran_at: float | None = None


class CountingScheduler(Scheduler[Job, str]):
    """The scheduler with its timer callbacks counted."""

    def __init__(self, loop: VirtualTimeLoop, alarms: dict[str, float]) -> None:
        super().__init__(lambda alarm, now: alarms.__setitem__(alarm, loop.time()), max_workers=64, clock=loop.time)
        self.callbacks = 0

    def _on_timer(self) -> None:
        self.callbacks += 1
        super()._on_timer()


async def run_until_done(loop: VirtualTimeLoop, scheduler: CountingScheduler, jobs: list[Job]) -> None:
    done = asyncio.Event()

    async def run_job(job: Job) -> None:
        job.ran_at = loop.time()
        if all(j.ran_at is not None for j in jobs):
            done.set()

    runner = asyncio.create_task(scheduler.run(run_job))
    await asyncio.wait_for(done.wait(), timeout=60)  # virtual seconds: a bound, not a measurement
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)


def test_jobs_due_within_the_window_share_one_callback_and_an_alarm_among_them_is_not_early() -> None:
    async def main(loop: VirtualTimeLoop) -> tuple[CountingScheduler, list[Job], dict[str, float], float]:
        alarms: dict[str, float] = {}
        scheduler = CountingScheduler(loop, alarms)
        scheduler.coalesce_window = WINDOW
        start = loop.time() + 1.0
        # 40 jobs half a millisecond apart: 20 ms in all, ten windows' worth.
        jobs = [Job(f"j{i}", start + i * 0.0005) for i in range(40)]
        for job in jobs:
            scheduler.schedule(job, job.due)
        alarm_at = start + 0.0012  # among the first window's jobs
        scheduler.alarm(alarm_at, "deadline")
        await run_until_done(loop, scheduler, jobs)
        return scheduler, jobs, alarms, alarm_at

    scheduler, jobs, alarms, alarm_at = run_virtual(main)
    for job in jobs:
        assert job.ran_at is not None
        assert job.due - WINDOW - 1e-9 <= job.ran_at <= job.due + 1e-9, (job.name, job.due, job.ran_at)
    assert alarms["deadline"] >= alarm_at  # never early
    assert alarms["deadline"] <= alarm_at + 1e-9  # and on time
    # One callback per job (41 with the alarm's) without coalescing; about one per window with it
    # (plus the alarm's own and the one ``run`` makes when it starts).
    assert scheduler.callbacks <= 12, scheduler.callbacks


def test_an_entry_pushed_within_the_window_of_the_armed_timer_rides_along() -> None:
    async def main(loop: VirtualTimeLoop) -> tuple[CountingScheduler, list[Job]]:
        scheduler = CountingScheduler(loop, {})
        scheduler.coalesce_window = WINDOW
        head = Job("head", loop.time() + 1.0)
        later = Job("later", head.due + WINDOW / 2)
        scheduler.schedule(head, head.due)
        # Pushed while the timer is armed for ``head``: no timer of its own, released with ``head``.
        loop.call_at(loop.time() + 0.5, scheduler.schedule, later, later.due)
        await run_until_done(loop, scheduler, [head, later])
        return scheduler, [head, later]

    scheduler, (head, later) = run_virtual(main)
    assert head.ran_at == later.ran_at == head.due
    assert scheduler.callbacks == 2  # the one ``run`` makes when it starts, and the head's


def test_an_earlier_entry_is_never_made_late_by_the_armed_timer() -> None:
    async def main(loop: VirtualTimeLoop) -> tuple[CountingScheduler, list[Job]]:
        scheduler = CountingScheduler(loop, {})
        scheduler.coalesce_window = WINDOW
        head = Job("head", loop.time() + 1.0)
        earlier = Job("earlier", head.due - WINDOW / 2)
        scheduler.schedule(head, head.due)
        loop.call_at(loop.time() + 0.5, scheduler.schedule, earlier, earlier.due)
        await run_until_done(loop, scheduler, [head, earlier])
        return scheduler, [head, earlier]

    scheduler, (head, earlier) = run_virtual(main)
    assert earlier.ran_at == earlier.due  # the timer moved forward for it: on time
    assert head.ran_at == earlier.due  # and the old head rode along, a little early
    assert scheduler.callbacks == 2


def test_the_tracker_coalesces_jittered_queries_and_keeps_their_spread() -> None:
    """500 watches whose first queries are jittered +-10 % around 5 s: released in fewer wake-ups
    than queries, each no more than 2 ms before its jittered time, the spread intact."""

    async def main(loop: VirtualTimeLoop) -> tuple[float, list[float], list[float], int]:
        planned: dict[str, float] = {}
        queried: dict[str, float] = {}
        done = asyncio.Event()
        count = 500

        async def fetch(task_id: str) -> Task:
            queried[task_id] = loop.time()
            if len(queried) == count:
                done.set()
            return Task(id=task_id, status=TaskStatus.COMPLETED, progress=100)

        tracker = Tracker(fetch, policy=PollPolicy(), clock=loop.time, seed=7, max_concurrent_queries=64)
        callbacks = 0
        scheduler = tracker._scheduler
        on_timer = scheduler._on_timer

        def counting() -> None:
            nonlocal callbacks
            callbacks += 1
            on_timer()

        scheduler._on_timer = counting  # type: ignore[method-assign]

        class Sink:
            def deliver(self, event: object) -> None:
                pass

            def fail(self, error: BaseException) -> None:
                raise AssertionError(error)

        sinks = [Sink() for _ in range(count)]
        start = loop.time()
        tracker.open()
        runner = asyncio.create_task(tracker.run())
        await asyncio.sleep(0)
        for i, sink in enumerate(sinks):
            snapshot = Task(id=f"t{i}", status=TaskStatus.PENDING, task_info=TaskInfo(estimated_time=10.0))
            tracker.watch(snapshot.id, sink, snapshot=snapshot)
            watch = tracker._watches.by_id[snapshot.id]
            assert watch.next_at is not None
            planned[snapshot.id] = watch.next_at
        await asyncio.wait_for(done.wait(), timeout=60)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        ids = sorted(planned)
        return start, [planned[i] for i in ids], [queried[i] for i in ids], callbacks

    start, planned, queried, callbacks = run_virtual(main)
    for plan, sent in zip(planned, queried, strict=True):
        assert plan - WINDOW - 1e-9 <= sent <= plan + 1e-9
    # The jitter's spread survives: the first queries still span most of 4.5 s .. 5.5 s.
    offsets = sorted(sent - start for sent in queried)
    assert offsets[0] < 4.55
    assert offsets[-1] > 5.45
    deciles = [offsets[len(offsets) * k // 10] for k in range(1, 10)]
    expected = [4.5 + 0.1 * k for k in range(1, 10)]
    assert all(abs(got - want) < 0.06 for got, want in zip(deciles, expected, strict=True)), deciles
    # 500 queries 2 ms apart on average: without coalescing one callback each.
    assert callbacks < 0.75 * len(queried), callbacks
