"""The tracker: ONE scheduler per client that knows every task being watched.

A heap of next-query times (and subscriber deadlines) releases queries as they fall due, at
most ``max_concurrent_queries`` at once, so watching 100k tasks costs a heap entry and a small
state object each, not a sleeping coroutine each. Every answer (or a snapshot pushed in from a
webhook) becomes events for the task's subscribers, which are held weakly: a stream nobody holds
any more stops costing queries.

Three parts, each in its own module, and this facade over them:

- ``scheduler``: when to run what (heap, timer, bounded workers); it knows nothing of tasks;
- ``watches``: which tasks are watched, by whom, and the delivery of their events;
- ``queries``: the query-outcome path: single and bulk fetches, every answer settled by one
  function under one give-up rule.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Hashable

from .._core.checks import MAX_COUNT, check_count
from .._models.events import snapshot_event
from .._models.task import Task
from .._models.task_ids import task_id_of
from .._protocols.task_api import FetchMany
from ..errors import ClientClosedError, ValidationError
from .poll_policy import PollPolicy, PollState
from .queries import Queries, Query
from .scheduler import Scheduler
from .watches import (
    PushCoverage,
    Sink,
    Watch,
    Watches,
    WatchHandle,
    changed,
    newer,
    query_before_deadline,
    submitted_at,
)

__all__ = ["COALESCE_WINDOW", "PushCoverage", "Sink", "Tracker", "WatchHandle"]

#: The longest a query is sent early so that it shares a loop wake-up with others (seconds).
COALESCE_WINDOW = 0.002


class Tracker:
    """Schedules the queries of every watched task and turns answers into events."""

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[Task]],
        *,
        query: Query | None = None,
        policy: PollPolicy,
        max_concurrent_queries: int = 32,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
        push_coverage: PushCoverage | None = None,
        fetch_many: FetchMany | None = None,
        fetch_many_limit: int = 50,
        batch_window: float | None = None,
    ) -> None:
        check_count("max_concurrent_queries", max_concurrent_queries, maximum=MAX_COUNT)
        check_count("fetch_many_limit", fetch_many_limit, maximum=MAX_COUNT)
        if not isinstance(policy, PollPolicy):
            raise ValidationError("poll_policy", f"must be a PollPolicy, got {type(policy).__name__}")
        self._clock = clock
        self._rng = random.Random(seed)
        self._push_coverage = push_coverage
        self._watches = Watches()
        self._scheduler: Scheduler[Watch, WatchHandle] = Scheduler(
            self._watches.expire, max_workers=max_concurrent_queries, clock=clock
        )
        # One loop wake-up releases every query due within this window: jittered queries fall
        # due a few hundred microseconds apart, and each avoidable wake-up costs a loop iteration
        # (about 70 us). A tenth of ``min_interval`` keeps it small against any schedule.
        self._scheduler.coalesce_window = min(COALESCE_WINDOW, 0.1 * policy.min_interval)
        # Bulk fetching (a protocol that can fetch many tasks in one request): a due query takes
        # along every other query due within ``batch_window`` seconds, up to ``fetch_many_limit``.
        self._queries = Queries(
            fetch,
            query=query,
            watches=self._watches,
            scheduler=self._scheduler,
            policy=policy,
            push_coverage=push_coverage,
            fetch_many=fetch_many,
            fetch_many_limit=fetch_many_limit,
            batch_window=policy.min_interval if batch_window is None else batch_window,
            rng=self._rng,
            clock=clock,
        )
        self.policy = policy
        self._open = False
        #: Telemetry's hooks (set by a client with telemetry on; None costs one test per push or
        #: per replaced progress event, nothing per query): a pushed snapshot, a dropped event.
        self.on_push: Callable[[Task], None] | None = None
        self.on_event_dropped: Callable[[], None] | None = None

    # --- what callers see -------------------------------------------------------------------

    @property
    def watched(self) -> int:
        """How many tasks are being watched now."""
        return len(self._watches)

    @property
    def running(self) -> bool:
        """True between :meth:`open` and :meth:`close`: watches are accepted."""
        return self._open

    @property
    def queries_sent(self) -> int:
        """Requests sent to query tasks (a ``fetch_many`` request counts once)."""
        return self._queries.queries_sent

    @property
    def batch_queries(self) -> int:
        """Of ``queries_sent``, the ``fetch_many`` requests (each for several tasks)."""
        return self._queries.batch_queries

    @property
    def batch_polling(self) -> bool:
        """True while due queries share ``fetch_many`` requests (false once the server had no such endpoint)."""
        return self._queries.fetches_many

    @property
    def slowdown(self) -> float:
        """What every next query's delay is multiplied by after HTTP 429s (1.0: not slowed)."""
        return self._queries.slowdown

    def open(self) -> None:
        """Accept watches; what they schedule is queried once :meth:`run` runs."""
        self._open = True

    def close(self, error: BaseException | None = None) -> None:
        """Refuse new watches and end every current one with ``error`` (default: ClientClosedError)."""
        self._open = False
        self._watches.fail_all(error or ClientClosedError("the client was closed while this task was being watched"))
        self._scheduler.clear()

    def watch(
        self,
        task_id: str,
        sink: Sink,
        *,
        snapshot: Task | None = None,
        key: Hashable | None = None,
        deadline: float | None = None,
        progress_every: float | None = None,
    ) -> WatchHandle:
        """Deliver the task's events to ``sink`` until it is terminal or ``deadline`` passes.

        ``snapshot`` is what the caller already knows (a submit answer): no event repeats it,
        and the first query waits as the poll policy says. Without one the task is queried now.
        ``progress_every``: while this subscriber stays, the task is queried at least that often
        (never more often than the policy's ``min_interval``), callbacks or not.
        """
        if not self._open:
            raise RuntimeError("the client is not running: use `async with EvolinkClient() as client:`")
        now = self._clock()
        cadence = None if progress_every is None else max(progress_every, self.policy.min_interval)
        watches = self._watches
        watch = watches.by_id.get(task_id)
        # A push that came before anyone watched (between a submit's answer and this watch) is
        # not lost: once the subscriber is in, it is applied like any push.
        pushed = self._push_coverage.latest(task_id) if watch is None and self._push_coverage is not None else None
        if watch is None:
            # Checked here, once per watch, not on every query: the queries send this id as is.
            task_id = task_id_of(task_id)
            if type(task_id) is not str:  # a str subclass: the plain string, for exact comparisons
                task_id = str.__str__(task_id)
            estimated = snapshot.estimated_time if snapshot is not None else None
            state = PollState(submitted_at=submitted_at(snapshot, now), estimated=estimated)
            watch = Watch(task_id, state, snapshot)
            watches.by_id[task_id] = watch
            policy = self._queries.policy_for(task_id)
            first = now + policy.first_delay(state, now=now, rng=self._rng) if snapshot is not None else now
            if cadence is not None:
                first = min(first, now + cadence)
            first = query_before_deadline(first, now=now, deadline=deadline, min_gap=policy.min_interval)
            self._queries.schedule(watch, first)
        elif cadence is not None:
            self._queries.at_least_every(watch, cadence)
        handle = watches.subscribe(watch, sink, key, deadline, cadence)
        if watch.last is not None and (snapshot is None or changed(snapshot, watch.last)):
            sink.deliver(snapshot_event(watch.last, key=key, at=now))
        if deadline is not None:
            self._scheduler.alarm(deadline, handle)
        if pushed is not None and (watch.last is None or newer(pushed, watch.last)):
            self._queries.apply(watch, pushed, reschedule=False)
        return handle

    def unwatch(self, handle: WatchHandle) -> None:
        """Stop delivering to this subscriber; the last one out stops the queries."""
        self._watches.unwatch(handle)

    def push(self, task: Task) -> None:
        """Take in a snapshot from outside (a webhook), exactly as if a query had returned it."""
        if self.on_push is not None:
            self.on_push(task)
        watch = self._watches.by_id.get(task.id)
        if watch is not None:
            self._queries.apply(watch, task, reschedule=False)

    async def run(self) -> None:
        """Run until cancelled; the client's ``async with`` owns this, and this owns every query."""
        self.open()
        queries = self._queries
        try:
            await self._scheduler.run(queries.query_many if queries.fetches_many else queries.query_one)
        finally:
            self.close()
