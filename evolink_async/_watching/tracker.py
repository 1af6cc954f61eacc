"""The tracker: ONE scheduler per client that knows every task being watched.

A heap of next-query times (and subscriber deadlines) releases queries as they fall due, at
most ``max_concurrent_queries`` at once, so watching 100k tasks costs a heap entry and a small
state object each, not a sleeping coroutine each. Every answer (or a snapshot pushed in from a
webhook) becomes events for the task's subscribers, which are held weakly: a stream nobody holds
any more stops costing queries.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable

from .._core.checks import check_count
from .._core.logging import logger
from .._models.events import EventKind, TaskEvent, error_for, kind_for, make_event, snapshot_event
from .._models.task import Task
from .._protocols.task_api import FetchMany
from ..errors import (
    BadRequestError,
    ClientClosedError,
    EvolinkError,
    InsufficientCreditsError,
    NotFoundError,
    RateLimitError,
    RequestTooLargeError,
    ResponseFormatError,
    ValidationError,
    is_fatal_to_batch,
)
from .batching import query_batch
from .poll_policy import PollPolicy, PollState
from .watches import (
    _NOT_FOUND_TOLERANCE,
    PushCoverage,
    Sink,
    WatchHandle,
    _changed,
    _Entry,
    _estimate,
    _newer,
    _submitted_at,
    _Watch,
    earliest_deadline,
    query_before_deadline,
)

__all__ = ["PushCoverage", "Sink", "Tracker", "WatchHandle"]

# Connection and server errors: about five minutes of doubling waits (PollPolicy.error_delay)
# before the watch ends with the last error instead of polling a dead host for ever.
_MAX_CONSECUTIVE_ERRORS = 10
# Answers that another query cannot change (besides a wrong key, ``is_fatal_to_batch``): the
# request is wrong, or the balance is.
_CANNOT_CHANGE = (BadRequestError, InsufficientCreditsError, RequestTooLargeError, ValidationError)
_MAX_SLOWDOWN = 16.0


class Tracker:
    """Schedules the queries of every watched task and turns answers into events."""

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[Task]],
        *,
        policy: PollPolicy,
        max_concurrent_queries: int = 32,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
        push_coverage: PushCoverage | None = None,
        fetch_many: FetchMany | None = None,
        fetch_many_limit: int = 50,
        batch_window: float | None = None,
    ) -> None:
        check_count("max_concurrent_queries", max_concurrent_queries)
        check_count("fetch_many_limit", fetch_many_limit)
        if not isinstance(policy, PollPolicy):
            raise ValidationError("poll_policy", f"must be a PollPolicy, got {type(policy).__name__}")
        self._fetch = fetch
        # Batch polling (a protocol that can fetch many tasks in one request): a due query takes
        # along every other query due within ``batch_window`` seconds, up to the limit. ``None``
        # once the server turned out not to have the endpoint.
        self._fetch_many = fetch_many
        self._fetch_many_limit = fetch_many_limit
        self._batch_window = policy.min_interval if batch_window is None else batch_window
        self.policy = policy
        # Tasks covered by pushes are queried on the policy's safety-net schedule instead.
        self._push_coverage = push_coverage
        self._push_policy = policy.safety_net()
        self._max_concurrent_queries = max_concurrent_queries
        self._clock = clock
        self._rng = random.Random(seed)
        self._watches: dict[str, _Watch] = {}
        self._heap: list[_Entry] = []
        self._counter = itertools.count()
        # Set while ``run`` runs: the task group that owns the workers.
        self._workers: asyncio.TaskGroup | None = None
        self._worker_count = 0
        # Futures of idle workers; resolving one hands that worker a query.
        self._idle: deque[asyncio.Future[_Watch]] = deque()
        # Queries that fell due while every worker was busy, in order.
        self._ready: deque[_Entry] = deque()
        # One timer for the heap's head, re-armed only when an earlier entry arrives.
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._open = False
        self._slowdown = 1.0
        self.queries_sent = 0
        #: Of ``queries_sent``, the ``fetch_many`` requests (each for several tasks).
        self.batch_queries = 0

    # --- what callers see -------------------------------------------------------------------

    @property
    def watched(self) -> int:
        """How many tasks are being watched now."""
        return len(self._watches)

    @property
    def running(self) -> bool:
        """True between :meth:`open` and :meth:`close`: watches are accepted."""
        return self._open

    def open(self) -> None:
        """Accept watches; what they schedule is queried once :meth:`run` runs."""
        self._open = True

    def close(self, error: BaseException | None = None) -> None:
        """Refuse new watches and end every current one with ``error`` (default: ClientClosedError)."""
        self._open = False
        self._close_all(error or ClientClosedError("the client was closed while this task was being watched"))

    def watch(
        self,
        task_id: str,
        sink: Sink,
        *,
        snapshot: Task | None = None,
        key: Hashable | None = None,
        deadline: float | None = None,
    ) -> WatchHandle:
        """Deliver the task's events to ``sink`` until it is terminal or ``deadline`` passes.

        ``snapshot`` is what the caller already knows (a submit answer): no event repeats it,
        and the first query waits as the poll policy says. Without one the task is queried now.
        """
        if not self._open:
            raise RuntimeError("the client is not running: use `async with EvolinkClient() as client:`")
        now = self._clock()
        watch = self._watches.get(task_id)
        # A push that came before anyone watched (between a submit's answer and this watch) is
        # not lost: once the subscriber is in, it is applied like any push.
        pushed = self._push_coverage.latest(task_id) if watch is None and self._push_coverage is not None else None
        if watch is None:
            state = PollState(submitted_at=_submitted_at(snapshot, now), estimated=_estimate(snapshot))
            watch = _Watch(task_id, state, snapshot)
            self._watches[task_id] = watch
            policy = self._policy_for(task_id)
            first = now + policy.first_delay(state, now=now, rng=self._rng) if snapshot is not None else now
            self._schedule(watch, query_before_deadline(first, now=now, deadline=deadline, min_gap=policy.min_interval))
        handle = WatchHandle(watch, sink, key, deadline)
        watch.subscribers.append(handle)
        if watch.last is not None and (snapshot is None or _changed(snapshot, watch.last)):
            sink.deliver(snapshot_event(watch.last, key=key, at=now))
        if deadline is not None:
            self._push((deadline, next(self._counter), watch, watch.generation, handle))
        if pushed is not None and (watch.last is None or _newer(pushed, watch.last)):
            self._apply(watch, pushed, reschedule=False)
        return handle

    def unwatch(self, handle: WatchHandle) -> None:
        """Stop delivering to this subscriber; the last one out stops the queries."""
        if not handle.active:
            return
        handle.active = False
        watch = handle.watch
        if handle in watch.subscribers:
            watch.subscribers.remove(handle)
        if not watch.subscribers:
            self._drop(watch)

    def _policy_for(self, task_id: str) -> PollPolicy:
        coverage = self._push_coverage
        return self._push_policy if coverage is not None and coverage.covers(task_id) else self.policy

    def push(self, task: Task) -> None:
        """Take in a snapshot from outside (a webhook), exactly as if a query had returned it."""
        watch = self._watches.get(task.id)
        if watch is not None:
            self._apply(watch, task, reschedule=False)

    # --- the scheduler ----------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled; the client's ``async with`` owns this, and this owns every query.

        There is no dispatcher task: a loop timer set for the heap's head hands due queries to
        idle workers (started as needed, at most ``max_concurrent_queries``); due queries that
        find every worker busy wait in a FIFO, which workers drain as they finish. Per query that
        is one timer callback and one worker step. A dispatcher task woken by the timer cost a
        further task switch per query, and a task per query a further registration and done
        callback (lifecycle benchmark). asyncio primitives rather than anyio's: this is the
        per-query path, and the client is asyncio-only anyway (aiohttp).
        """
        self.open()
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
            self.close()

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, math.inf
        try:
            self._release_due()
        finally:
            # Re-armed whatever happened above: a lost timer would stall every watch silently.
            if self._heap:
                self._arm(self._heap[0][0])

    def _release_due(self) -> None:
        if self._workers is None:
            return
        now = self._clock()
        # Deadlines expire on time even while every worker is busy; due queries queue up.
        while self._heap and self._heap[0][0] <= now:
            entry = heapq.heappop(self._heap)
            if entry[4] is not None:
                self._expire(entry[4], now)
            else:
                self._ready.append(entry)
        # With batch polling one worker's request takes up to ``fetch_many_limit`` of the due
        # queries along (``collect_batch``): wake one worker per that many, not one per query.
        per_worker = 1 if self._fetch_many is None else self._fetch_many_limit
        wake = -(-len(self._ready) // per_worker)
        while wake > 0 and self._ready and (self._idle or self._worker_count < self._max_concurrent_queries):
            wake -= 1
            watch = self._next_ready()
            if watch is None:
                break
            while self._idle and self._idle[0].done():  # a worker cancelled while idle
                self._idle.popleft()
            if self._idle:
                self._idle.popleft().set_result(watch)
            else:
                self._worker_count += 1
                self._workers.create_task(self._work(watch))

    def _next_ready(self) -> _Watch | None:
        """The first queued query that is still wanted (its watch was not dropped or rescheduled)."""
        while self._ready:
            _, _, watch, generation, _ = self._ready.popleft()
            if generation == watch.generation and self._watches.get(watch.task_id) is watch:
                return watch
        return None

    async def _work(self, watch: _Watch) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._fetch_many is None:
                await self._query(watch)
            else:
                await query_batch(self, watch)
            queued = self._next_ready()
            if queued is not None:
                watch = queued
                continue
            handoff: asyncio.Future[_Watch] = loop.create_future()
            self._idle.append(handoff)
            watch = await handoff

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

    async def _query(self, watch: _Watch) -> None:
        self.queries_sent += 1
        try:
            task = await self._fetch(watch.task_id)
        except (NotFoundError, ResponseFormatError) as exc:
            watch.errors += 1
            if watch.errors >= _NOT_FOUND_TOLERANCE:
                self._fail(watch, exc)
            else:
                self._retry_later(watch, exc)
        except RateLimitError as exc:
            self._slow_down(exc)
            watch.errors += 1
            self._retry_later(watch, exc)
        except EvolinkError as exc:
            if is_fatal_to_batch(exc) or isinstance(exc, _CANNOT_CHANGE):
                self._fail(watch, exc)
                return
            watch.errors += 1
            if watch.errors >= _MAX_CONSECUTIVE_ERRORS:
                logger.warning("query of %s failed %d times in a row, giving up: %s", watch.task_id, watch.errors, exc)
                self._fail(watch, exc)
                return
            logger.info("query of %s failed (%d in a row), retrying: %s", watch.task_id, watch.errors, exc)
            self._retry_later(watch, exc)
        except Exception as exc:  # a bug or an unexpected library error: surface it, never loop on it
            logger.exception("query of %s raised unexpectedly", watch.task_id)
            self._fail(watch, exc)
        else:
            watch.errors = 0
            if self._slowdown != 1.0:
                self._slowdown = max(1.0, self._slowdown / 1.25)
            coverage = self._push_coverage
            if coverage is not None and task.is_terminal and coverage.covers(watch.task_id):
                coverage.missed(watch.task_id)
            self._apply(watch, task, reschedule=True)

    def _slow_down(self, exc: RateLimitError) -> None:
        """A 429 slows every watched task, not just the one queried."""
        self._slowdown = min(_MAX_SLOWDOWN, self._slowdown * 2)
        logger.warning("task queries slowed down %.0fx after: %s", self._slowdown, exc)

    # --- state changes (all synchronous, on the loop) ---------------------------------------

    def _apply(self, watch: _Watch, task: Task, *, reschedule: bool) -> None:
        last = watch.last
        if last is not None and last.is_terminal:
            return
        now = self._clock()
        watch.state.observe(at=now, progress=task.progress, estimated=task.task_info.estimated_time)
        watch.last = task
        kind = kind_for(task)  # a terminal kind exactly when the task is terminal
        if last is None or _changed(last, task):
            self._deliver(watch, kind, now)
        if kind is not EventKind.PROGRESS:
            self._drop(watch)
        elif reschedule and self._watches.get(watch.task_id) is watch:
            policy = self._policy_for(watch.task_id)
            when = now + policy.next_delay(watch.state, now=now, rng=self._rng) * self._slowdown
            deadline = earliest_deadline(watch)
            if deadline is not None:
                when = query_before_deadline(when, now=now, deadline=deadline, min_gap=policy.min_interval)
            self._schedule(watch, when)

    def _deliver(self, watch: _Watch, kind: EventKind, now: float) -> None:
        task = watch.last
        error = error_for(kind, task) if kind.is_terminal else None
        subscribers = watch.subscribers
        # Never the live list: a sink may unsubscribe, or subscribe another sink, while its event
        # is delivered. One subscriber (a stream, a fan-out input) is the common case: a 1-tuple.
        for handle in (subscribers[0],) if len(subscribers) == 1 else list(subscribers):
            sink = handle.sink_ref()
            if sink is None:
                self.unwatch(handle)
                continue
            # ``_deliver_to`` written out: this runs once per event.
            event = make_event(kind, task, now, handle.key, error)
            try:
                sink.deliver(event)
            except Exception:
                self._sink_raised(handle, event)
        if not subscribers:
            self._drop(watch)

    def _deliver_to(self, handle: WatchHandle, sink: Sink, event: TaskEvent) -> None:
        # A sink that raises loses its subscription, not the scheduler: this runs inside the
        # timer callback and the workers, where an exception would stall or end every watch.
        try:
            sink.deliver(event)
        except Exception:
            self._sink_raised(handle, event)

    def _sink_raised(self, handle: WatchHandle, event: TaskEvent) -> None:
        logger.exception("a sink of %s raised on %s; it is no longer subscribed", handle.watch.task_id, event.kind)
        self.unwatch(handle)

    def _expire(self, handle: WatchHandle, now: float) -> None:
        if not handle.active:
            return
        sink = handle.sink_ref()
        self.unwatch(handle)
        if sink is not None:
            watch = handle.watch
            event = TaskEvent(
                kind=EventKind.TIMED_OUT, task=watch.last, key=handle.key, at=now,
                error=watch.last_error if watch.errors else None,
            )  # fmt: skip
            self._deliver_to(handle, sink, event)

    def _fail(self, watch: _Watch, error: BaseException) -> None:
        handles = list(watch.subscribers)
        self._drop(watch)
        for handle in handles:
            handle.active = False
            sink = handle.sink_ref()
            if sink is not None:
                sink.fail(error)

    def _retry_later(self, watch: _Watch, error: BaseException) -> None:
        # Kept for a deadline that passes before a query succeeds: its TIMED_OUT event says why.
        watch.last_error = error
        if self._watches.get(watch.task_id) is watch:
            delay = self.policy.error_delay(watch.errors, rng=self._rng) * self._slowdown
            self._schedule(watch, self._clock() + delay)

    def _schedule(self, watch: _Watch, when: float) -> None:
        watch.generation += 1
        self._push((when, next(self._counter), watch, watch.generation, None))

    def _push(self, entry: _Entry) -> None:
        heapq.heappush(self._heap, entry)
        if entry[0] < self._timer_at and self._heap[0] is entry:
            self._arm(entry[0])

    def _drop(self, watch: _Watch) -> None:
        if self._watches.get(watch.task_id) is watch:
            del self._watches[watch.task_id]
        watch.generation += 1
        watch.subscribers.clear()

    def _close_all(self, error: BaseException) -> None:
        for watch in list(self._watches.values()):
            self._fail(watch, error)
        self._heap.clear()
        self._ready.clear()
