"""Batch polling: one ``fetch_many`` request for every watched task whose query falls due soon.

A protocol that can fetch many tasks in one request (a Midjourney proxy's
``task/list-by-condition``) lets the tracker answer a due query together with the other queries
already waiting for a worker and those due within ``batch_window`` seconds. Those are queried a
little early, never late, so detection latency does not suffer, while the requests per task drop
by the batch size. Kept apart from the scheduler: without ``fetch_many`` none of this runs.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._models.task import Task
from ..errors import APIStatusError, NotFoundError, UnsupportedOperationError

if TYPE_CHECKING:
    from .tracker import Tracker, _Entry, _Watch

__all__ = ["collect_batch", "is_missing_endpoint", "settle_batch"]

# Statuses that say the endpoint does not exist (rather than that a task does not).
_MISSING_ENDPOINT_STATUSES = frozenset({404, 405, 501})


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
            tracker._settle_answer(watch, task)
        else:
            missing = NotFoundError(f"task {watch.task_id} is not in the batch answer", status_code=404)
            tracker._settle_failed_query(watch, missing)


def is_missing_endpoint(error: BaseException) -> bool:
    """True when ``error`` says the server has no batch endpoint (so stop trying it)."""
    if isinstance(error, UnsupportedOperationError):
        return True
    return isinstance(error, APIStatusError) and error.status_code in _MISSING_ENDPOINT_STATUSES
