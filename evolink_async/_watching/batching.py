"""Batch polling: one ``fetch_many`` request for every watched task whose query falls due soon.

A protocol that can fetch many tasks in one request (a Midjourney proxy's
``task/list-by-condition``) lets the tracker answer a due query together with the other queries
already waiting for a worker and those due within ``batch_window`` seconds. Those are queried a
little early, never late, so detection latency does not suffer, while the requests per task drop
by the batch size. Kept apart from the scheduler: without ``fetch_many`` none of this runs.
(Functions over the tracker's state rather than methods, as ``collect_batch`` always was.)
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._core.logging import logger
from .._models.task import Task
from ..errors import (
    EvolinkError,
    NotFoundError,
    RateLimitError,
    ValidationError,
    is_fatal_to_batch,
    means_endpoint_missing,
)
from .watches import _NOT_FOUND_TOLERANCE

if TYPE_CHECKING:
    from .tracker import Tracker
    from .watches import _Entry, _Watch

__all__ = ["collect_batch", "query_batch", "settle_batch"]


async def query_batch(tracker: Tracker, first: _Watch) -> None:
    """One ``fetch_many`` request for ``first`` and every other query due soon."""
    assert tracker._fetch_many is not None
    batch = collect_batch(tracker, first)
    if len(batch) == 1:
        # Nothing else due: a plain fetch costs the same request and keeps its error handling.
        await tracker._query(first)
        return
    tracker.queries_sent += 1
    tracker.batch_queries += 1
    try:
        tasks = await tracker._fetch_many([watch.task_id for watch in batch])
    except Exception as exc:
        if means_endpoint_missing(exc):
            logger.info("the server cannot fetch many tasks at once (%s): one query per task from now on", exc)
            tracker._fetch_many = None
            now = tracker._clock()
            for watch in batch:
                if tracker._watches.get(watch.task_id) is watch:
                    tracker._schedule(watch, now)
            return
        if isinstance(exc, RateLimitError):  # one 429 slows everything once, as in ``Tracker._query``
            tracker._slow_down(exc)
        else:
            logger.info("batch query of %d tasks failed, retrying: %s", len(batch), exc)
        for watch in batch:
            settle_failed_query(tracker, watch, exc)
        return
    tracker._slowdown = max(1.0, tracker._slowdown / 1.25)  # once per request, as in ``Tracker._query``
    settle_batch(tracker, batch, tasks)


def collect_batch(tracker: Tracker, first: _Watch) -> list[_Watch]:
    """``first`` and up to ``fetch_many_limit - 1`` other watches whose queries are due or nearly due.

    Their heap entries are taken out (as a worker takes a due one); deadlines met on the way stay.
    """
    limit = tracker._fetch_many_limit
    batch = [first]
    seen = {first.task_id}
    while len(batch) < limit:
        queued = tracker._next_ready()
        if queued is None:
            break
        if queued.task_id not in seen:
            seen.add(queued.task_id)
            batch.append(queued)
    heap = tracker._heap
    horizon = tracker._clock() + tracker._batch_window
    held: list[_Entry] = []
    while len(batch) < limit and heap and heap[0][0] <= horizon:
        entry = heapq.heappop(heap)
        _, _, watch, generation, handle = entry
        if handle is not None:
            held.append(entry)  # a subscriber's deadline: the timer expires it when due
        elif (
            generation == watch.generation
            and tracker._watches.get(watch.task_id) is watch
            and watch.task_id not in seen
        ):
            seen.add(watch.task_id)
            batch.append(watch)
    for entry in held:
        # Back where they were; the armed timer is no later than any of them (it was set for the head).
        heapq.heappush(heap, entry)
    return batch


def settle_batch(tracker: Tracker, batch: Sequence[_Watch], tasks: Sequence[Task]) -> None:
    """Apply a ``fetch_many`` answer; a task missing from it counts as one "not found" answer."""
    by_id = {task.id: task for task in tasks}
    for watch in batch:
        task = by_id.get(watch.task_id)
        if task is not None:
            watch.errors = 0  # what ``Tracker._query`` does with a successful fetch
            tracker._apply(watch, task, reschedule=True)
        else:
            missing = NotFoundError(f"task {watch.task_id} is not in the batch answer", status_code=404)
            settle_failed_query(tracker, watch, missing)


def settle_failed_query(tracker: Tracker, watch: _Watch, exc: BaseException) -> None:
    """What ``Tracker._query`` does with a failed fetch, for one task of a failed batch fetch."""
    if is_fatal_to_batch(exc) or isinstance(exc, ValidationError):
        tracker._fail(watch, exc)
    elif isinstance(exc, NotFoundError):
        watch.errors += 1
        if watch.errors >= _NOT_FOUND_TOLERANCE:
            tracker._fail(watch, exc)
        else:
            tracker._retry_later(watch, exc)
    elif isinstance(exc, EvolinkError):
        watch.errors += 1
        tracker._retry_later(watch, exc)
    else:
        logger.error("batch query of %s raised unexpectedly: %r", watch.task_id, exc)
        tracker._fail(watch, exc)

