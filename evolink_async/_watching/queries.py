"""The query-outcome path: how watched tasks are queried and what each answer does.

Every answer about a watched task, from a single fetch or a bulk fetch (``fetch_many``: a
Midjourney proxy's ``task/list-by-condition``), is one ``(watch, Task | error)`` pair settled by
:meth:`Queries.settle`, under one give-up rule (:func:`gives_up`). A push (a webhook) is applied
like a successful query's task. Bulk fetching answers a due query together with the other
queries already waiting for a worker and those due within ``batch_window`` seconds: queried a
little early, never late, so detection latency does not suffer while the requests per task drop
by the batch size.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable

from .._core.logging import LOG_TASK_ID, logger
from .._models.events import EventKind, kind_for
from .._models.task import Task
from .._protocols.task_api import FetchMany
from ..errors import (
    BadRequestError,
    EvolinkError,
    InsufficientCreditsError,
    NotFoundError,
    RateLimitError,
    RequestTooLargeError,
    ResponseFormatError,
    ValidationError,
    is_fatal_to_batch,
    means_endpoint_missing,
)
from .poll_policy import PollPolicy
from .scheduler import Scheduler
from .watches import PushCoverage, Watch, Watches, WatchHandle, changed, earliest_deadline, query_before_deadline

__all__ = ["MAX_CONSECUTIVE_ERRORS", "NOT_FOUND_TOLERANCE", "Queries", "Query", "gives_up"]

#: A protocol's query of a watched task: its id (checked when the watch started) and the last
#: snapshot known; an answer that repeats that snapshot's body may come back as the same object.
Query = Callable[[str, Task | None], Awaitable[Task]]

#: Connection and server errors in a row after which a watch ends with the last one: about five
#: minutes of doubling waits (``PollPolicy.error_delay``) instead of polling a dead host for ever.
MAX_CONSECUTIVE_ERRORS = 10
#: A 404 right after a submit may be replication lag; this many in a row mean the task is gone.
#: A malformed answer gets the same short grace: a proxy's hiccup passes, a hostile server does not.
NOT_FOUND_TOLERANCE = 3
# Answers another query cannot change (besides a refused key): the request or the balance is wrong.
_CANNOT_CHANGE = (BadRequestError, InsufficientCreditsError, RequestTooLargeError, ValidationError)
_MAX_SLOWDOWN = 16.0


def gives_up(error: BaseException, in_a_row: int) -> bool:
    """True when a watch ends with ``error``, its ``in_a_row``-th failed query in a row.

    >>> gives_up(NotFoundError("gone", status_code=404), 3)
    True
    """
    if not isinstance(error, EvolinkError):
        return True  # a bug or an unexpected library error: surface it, never loop on it
    if is_fatal_to_batch(error) or isinstance(error, _CANNOT_CHANGE):
        return True
    if isinstance(error, NotFoundError | ResponseFormatError):
        return in_a_row >= NOT_FOUND_TOLERANCE
    if isinstance(error, RateLimitError):
        return False  # the server is there and asks for fewer queries: every query slows down instead
    return in_a_row >= MAX_CONSECUTIVE_ERRORS


class Queries:
    """Queries watched tasks (the scheduler's jobs) and settles every answer."""

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[Task]],
        *,
        query: Query | None = None,
        watches: Watches,
        scheduler: Scheduler[Watch, WatchHandle],
        policy: PollPolicy,
        push_coverage: PushCoverage | None,
        fetch_many: FetchMany | None,
        fetch_many_limit: int,
        batch_window: float,
        rng: random.Random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._query = query
        # ``None`` once the server turned out not to have the endpoint.
        self._fetch_many = fetch_many
        self._fetch_many_limit = fetch_many_limit
        self._batch_window = batch_window
        self._watches = watches
        self._scheduler = scheduler
        scheduler.jobs_per_worker = 1 if fetch_many is None else fetch_many_limit
        self.policy = policy
        # Tasks covered by pushes are queried on the policy's safety-net schedule instead.
        self._push_coverage = push_coverage
        self._push_policy = policy.safety_net()
        self._rng = rng
        self._clock = clock
        #: Multiplies every next delay after a 429; successful requests bring it back to 1.
        self.slowdown = 1.0
        self.queries_sent = 0
        #: Of ``queries_sent``, the ``fetch_many`` requests (each for several tasks).
        self.batch_queries = 0

    @property
    def fetches_many(self) -> bool:
        """True while due queries are answered by ``fetch_many`` requests."""
        return self._fetch_many is not None

    def policy_for(self, task_id: str) -> PollPolicy:
        coverage = self._push_coverage
        return self._push_policy if coverage is not None and coverage.covers(task_id) else self.policy

    # --- querying -----------------------------------------------------------------------------

    async def query_one(self, watch: Watch) -> None:
        """One fetch of one watched task."""
        self.queries_sent += 1
        LOG_TASK_ID.set(watch.task_id)  # this worker's records (a retry's too) name the task
        answer: Task | BaseException
        try:
            query = self._query
            if query is not None:
                answer = await query(watch.task_id, watch.last)
            else:
                answer = await self._fetch(watch.task_id)
        except Exception as exc:
            answer = exc
            self._failed_request(exc, 1)
        else:
            if self.slowdown != 1.0:
                self._answered()
        self.settle(watch, answer)

    async def query_many(self, first: Watch) -> None:
        """One ``fetch_many`` request for ``first`` and every other query due soon."""
        fetch_many = self._fetch_many
        if fetch_many is None:  # the server turned out not to have it
            await self.query_one(first)
            return
        batch = self._scheduler.take_due(first, limit=self._fetch_many_limit, within=self._batch_window)
        if len(batch) == 1:
            # Nothing else due: a plain fetch costs the same request.
            await self.query_one(first)
            return
        self.queries_sent += 1
        self.batch_queries += 1
        try:
            tasks = await fetch_many([watch.task_id for watch in batch])
        except Exception as exc:
            if means_endpoint_missing(exc):
                self._no_bulk_endpoint(batch, exc)
                return
            self._failed_request(exc, len(batch))
            for watch in batch:
                self.settle(watch, exc)
            return
        self._answered()
        by_id = {task.id: task for task in tasks}
        for watch in batch:
            task = by_id.get(watch.task_id)
            if task is None:  # left out of the answer: one "not found" answer
                self.settle(watch, NotFoundError(f"task {watch.task_id} is not in the batch answer", status_code=404))
            else:
                self.settle(watch, task)

    def _no_bulk_endpoint(self, batch: list[Watch], error: BaseException) -> None:
        logger.info("the server cannot fetch many tasks at once (%s): one query per task from now on", error)
        self._fetch_many = None
        self._scheduler.jobs_per_worker = 1
        now = self._clock()
        for watch in batch:
            if self._watches.is_current(watch):
                self.schedule(watch, now)

    def _failed_request(self, error: BaseException, tasks: int) -> None:
        """Once per failed request, whatever number of tasks it asked about."""
        if isinstance(error, RateLimitError):
            # A 429 slows every watched task, not just the ones queried.
            self.slowdown = min(_MAX_SLOWDOWN, self.slowdown * 2)
            logger.warning("task queries slowed down %.0fx after: %s", self.slowdown, error)
        elif not isinstance(error, EvolinkError):
            logger.error("a query of %d task(s) raised unexpectedly", tasks, exc_info=error)

    def _answered(self) -> None:
        """Once per successful request: a slowdown after 429s wears off."""
        self.slowdown = max(1.0, self.slowdown / 1.25)

    # --- outcomes -----------------------------------------------------------------------------

    def settle(self, watch: Watch, answer: Task | BaseException) -> None:
        """What one answer about ``watch`` does: events and the next query, or the end of the watch."""
        if not isinstance(answer, BaseException):
            watch.errors = 0
            coverage = self._push_coverage
            if coverage is not None and answer.is_terminal and coverage.covers(watch.task_id):
                coverage.missed(watch.task_id)
            self.apply(watch, answer, reschedule=True)
            return
        watch.errors += 1
        if gives_up(answer, watch.errors):
            if watch.errors > 1:
                logger.warning("query of %s failed %d times in a row, giving up: %s", watch.task_id, watch.errors,
                               answer, extra={"task_id": watch.task_id})  # fmt: skip
            self._watches.fail(watch, answer)
            return
        logger.info("query of %s failed (%d in a row), retrying: %s", watch.task_id, watch.errors, answer,
                    extra={"task_id": watch.task_id})  # fmt: skip
        # Kept for a deadline that passes before a query succeeds: its TIMED_OUT event says why.
        watch.last_error = answer
        if self._watches.is_current(watch):
            delay = self.policy.error_delay(watch.errors, rng=self._rng) * self.slowdown
            self.schedule(watch, self._clock() + delay)

    def apply(self, watch: Watch, task: Task, *, reschedule: bool) -> None:
        """Take in a new snapshot of the task (a query's answer or a push): events, then the next query."""
        last = watch.last
        if last is not None and last.is_terminal:
            return
        now = self._clock()
        watch.state.observe(at=now, progress=task.progress, estimated=task.task_info.estimated_time)
        if task is not last:  # ``last`` itself: the answer repeated it (``Query``), no event, not terminal
            watch.last = task
            kind = kind_for(task)  # a terminal kind exactly when the task is terminal
            if last is None or changed(last, task):
                self._watches.deliver(watch, kind, now)
            if kind is not EventKind.PROGRESS:
                self._watches.drop(watch)
                return
        if reschedule and self._watches.is_current(watch):
            policy = self.policy_for(watch.task_id)
            when = now + policy.next_delay(watch.state, now=now, rng=self._rng) * self.slowdown
            if watch.cadence is not None:
                # Somebody watches this task's progress: at least one query per cadence, also
                # when callbacks report its end (they carry no progress). A 429 still slows it.
                when = min(when, now + watch.cadence * self.slowdown)
            deadline = earliest_deadline(watch)
            if deadline is not None:
                when = query_before_deadline(when, now=now, deadline=deadline, min_gap=policy.min_interval)
            self.schedule(watch, when)

    def schedule(self, watch: Watch, when: float) -> None:
        """The next query of ``watch`` at ``when`` (replacing any earlier plan)."""
        watch.next_at = when
        self._scheduler.schedule(watch, when)

    def at_least_every(self, watch: Watch, cadence: float) -> None:
        """A new subscriber wants a query per ``cadence``: bring the next query forward if it is later."""
        when = self._clock() + cadence
        if watch.next_at is None or watch.next_at > when:
            self.schedule(watch, when)
