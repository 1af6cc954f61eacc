"""A scheduler that knows nothing of tasks: a heap of due times, one loop timer, bounded workers.

It runs *jobs* (opaque objects with a ``generation`` counter) when they fall due, at most
``max_workers`` at once, and raises *alarms* (opaque objects handed to ``on_alarm``) on time
even while every worker is busy. Scheduling a job again, or bumping its ``generation``, makes
its earlier entries stale: they are skipped, never run. The tracker's jobs are watched tasks
and its alarms subscribers' deadlines; nothing here depends on that.

There is no dispatcher task: a loop timer set for the heap's head hands due jobs to idle
workers (started as needed); due jobs that find every worker busy wait in a FIFO, which workers
drain as they finish. Per job that is at most one timer callback and one worker step: one
callback releases every job due within ``coalesce_window`` seconds of it (a little early, never
late), so jittered jobs that fall due a few hundred microseconds apart cost one loop wake-up,
not one each. Alarms are never released early: a deadline means "not before". A dispatcher task
woken by the timer cost a further task switch per job, and a task per job a further registration
and done callback (lifecycle benchmark). asyncio primitives rather than anyio's: this is the
per-query path, and the client is asyncio-only anyway (aiohttp).
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

__all__ = ["Job", "Scheduler"]


class Job(Protocol):
    """What the scheduler needs of a job: a counter that, once bumped, voids its queued entries."""

    generation: int


J = TypeVar("J", bound=Job)
A = TypeVar("A")


class Scheduler(Generic[J, A]):
    """While :meth:`run` runs, runs each job as it falls due and calls ``on_alarm(alarm, now)`` on time."""

    def __init__(
        self,
        on_alarm: Callable[[A, float], None],
        *,
        max_workers: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._run_job: Callable[[J], Awaitable[None]] | None = None
        self._on_alarm = on_alarm
        self._max_workers = max_workers
        self._clock = clock
        #: How many due jobs one ``run_job`` call takes along (``take_due``): one worker is woken
        #: per that many, not one per job.
        self.jobs_per_worker = 1
        #: Jobs due within this many seconds of a timer callback are released by it (early by at
        #: most this much); 0 releases only the jobs already due. The owner sets it.
        self.coalesce_window = 0.0
        # Entries: (when, tie-breaker, job, its generation, None) to run a job, or
        # (when, tie-breaker, None, 0, alarm) to raise an alarm. The tie-breaker is unique, so
        # comparisons never reach the objects.
        self._heap: list[tuple[float, int, J | None, int, A | None]] = []
        self._counter = itertools.count()
        # Set while ``run`` runs: the task group that owns the workers.
        self._workers: asyncio.TaskGroup | None = None
        self._context = contextvars.Context()  # replaced by ``run``'s own
        self._worker_count = 0
        # Futures of idle workers; resolving one hands that worker a job.
        self._idle: deque[asyncio.Future[J]] = deque()
        # Jobs that fell due while every worker was busy, in order, with their generation then.
        self._ready: deque[tuple[J, int]] = deque()
        # One timer for the heap's head, re-armed only when an earlier entry arrives.
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    # --- what the owner calls -----------------------------------------------------------------

    def schedule(self, job: J, when: float) -> None:
        """Run ``job`` at ``when``, instead of whenever it was due before."""
        job.generation += 1
        self._push((when, next(self._counter), job, job.generation, None))

    def alarm(self, when: float, alarm: A) -> None:
        """Call ``on_alarm(alarm, now)`` at ``when``, whether or not a worker is free."""
        self._push((when, next(self._counter), None, 0, alarm))

    def next_ready(self) -> J | None:
        """The first due job still wanted (its generation unchanged), taken from the queue."""
        ready = self._ready
        while ready:
            job, generation = ready.popleft()
            if generation == job.generation:
                return job
        return None

    def take_due(self, first: J, *, limit: int, within: float) -> list[J]:
        """``first`` and up to ``limit - 1`` other jobs that are queued or due within ``within``
        seconds, taken out of the schedule (to be run now, together). Alarms stay where they are."""
        jobs = [first]
        seen = {id(first)}
        while len(jobs) < limit:
            queued = self.next_ready()
            if queued is None:
                break
            if id(queued) not in seen:
                seen.add(id(queued))
                jobs.append(queued)
        heap = self._heap
        horizon = self._clock() + within
        held = []
        while len(jobs) < limit and heap and heap[0][0] <= horizon:
            entry = heapq.heappop(heap)
            _, _, job, generation, _ = entry
            if job is None:
                held.append(entry)  # an alarm: the timer raises it when due
            elif generation == job.generation and id(job) not in seen:
                seen.add(id(job))
                jobs.append(job)
        for entry in held:
            # Back where they were; the armed timer is no later than any of them (it was set for the head).
            heapq.heappush(heap, entry)
        return jobs

    def clear(self) -> None:
        """Forget every entry and queued job (the owner ended every watch)."""
        self._heap.clear()
        self._ready.clear()

    async def run(self, run_job: Callable[[J], Awaitable[None]]) -> None:
        """``await run_job(job)`` for each job as it falls due, until cancelled; whoever calls
        this owns every worker."""
        self._run_job = run_job
        # The context of whoever runs the scheduler, not of whoever armed the timer last (a
        # submit's: its log fields and its current span would otherwise follow every worker).
        self._context = contextvars.copy_context()
        try:
            async with asyncio.TaskGroup() as workers:
                self._workers = workers
                try:
                    self._on_timer()
                    await asyncio.get_running_loop().create_future()  # until cancelled
                finally:
                    # Before the group waits for its workers: a timer firing in that window
                    # would hand work to cancelled workers or start one in a closing group.
                    self._workers = None
                    self._disarm()
        finally:
            self._idle.clear()
            self._ready.clear()
            self._worker_count = 0
            self._run_job = None

    # --- the timer and the workers ------------------------------------------------------------

    def _push(self, entry: tuple[float, int, J | None, int, A | None]) -> None:
        heapq.heappush(self._heap, entry)
        if entry[0] < self._timer_at and self._heap[0] is entry:
            self._arm(entry[0])

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, math.inf
        try:
            self._release_due()
        finally:
            # Re-armed whatever happened above: a lost timer would stall every job silently.
            if self._heap:
                self._arm(self._heap[0][0])

    def _release_due(self) -> None:
        workers = self._workers
        if workers is None:
            return
        now = self._clock()
        heap, ready = self._heap, self._ready
        horizon = now + self.coalesce_window
        held = None
        # Alarms go off on time even while every worker is busy; due jobs queue up, and so do
        # the jobs due within the window (released early rather than by a timer of their own).
        while heap and heap[0][0] <= horizon:
            entry = heapq.heappop(heap)
            when, _, job, generation, alarm = entry
            if job is not None:
                ready.append((job, generation))
            elif when <= now:
                self._on_alarm(alarm, now)  # type: ignore[arg-type]  # an alarm entry holds one
            elif held is None:
                held = [entry]  # an alarm not yet due: never early, its own timer raises it
            else:
                held.append(entry)
        if held is not None:
            for entry in held:
                heapq.heappush(heap, entry)
        wake = -(-len(ready) // self.jobs_per_worker)
        while wake > 0 and ready and (self._idle or self._worker_count < self._max_workers):
            wake -= 1
            job = self.next_ready()
            if job is None:
                break
            while self._idle and self._idle[0].done():  # a worker cancelled while idle
                self._idle.popleft()
            if self._idle:
                self._idle.popleft().set_result(job)
            else:
                self._worker_count += 1
                workers.create_task(self._work(job), context=self._context.copy())

    async def _work(self, job: J) -> None:
        loop = asyncio.get_running_loop()
        run_job = self._run_job
        assert run_job is not None  # workers start only while ``run`` runs
        while True:
            await run_job(job)
            queued = self.next_ready()
            if queued is not None:
                job = queued
                continue
            handoff: asyncio.Future[J] = loop.create_future()
            self._idle.append(handoff)
            job = await handoff

    def _arm(self, when: float) -> None:
        if self._workers is None:
            return  # not running yet: ``run`` looks at the heap when it starts
        self._disarm()
        self._timer_at = when
        self._timer = asyncio.get_running_loop().call_later(max(0.0, when - self._clock()), self._on_timer)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, math.inf
