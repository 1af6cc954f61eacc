"""The subscriber side of the tracker: sinks, watch handles, one watched task's state.

Kept apart from the scheduler (``tracker``), which decides when each watched task is queried;
the names here are re-exported from ``tracker``.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Hashable
from typing import Protocol

from .._models.events import TaskEvent
from .._models.task import Task, TaskStatus
from .poll_policy import PollState

__all__ = ["PushCoverage", "Sink", "WatchHandle"]

# A 404 right after a submit may be replication lag; this many in a row mean the task is gone.
# A malformed answer gets the same short grace: a proxy's hiccup passes, a hostile server does not.
_NOT_FOUND_TOLERANCE = 3


class Sink(Protocol):
    """Where a subscriber's events go. Both methods are called on the event loop and must not block."""

    def deliver(self, event: TaskEvent) -> None: ...

    def fail(self, error: BaseException) -> None:
        """The task can no longer be watched (bad key, task gone, client closed)."""
        ...


class PushCoverage(Protocol):
    """Which tasks report their own changes (callbacks), so that polling is only a safety net."""

    def covers(self, task_id: str) -> bool:
        """True while updates of ``task_id`` are expected to be pushed (and pushes arrive at all)."""
        ...

    def missed(self, task_id: str) -> None:
        """A query, not a push, found ``task_id`` ended: evidence that pushes are not arriving."""
        ...

    def latest(self, task_id: str) -> Task | None:
        """The newest snapshot pushed for ``task_id`` so far (it may have come before the watch)."""
        ...


class WatchHandle:
    """One subscriber of one watched task; pass it to :meth:`Tracker.unwatch`."""

    __slots__ = ("active", "deadline", "key", "sink_ref", "watch")

    def __init__(self, watch: _Watch, sink: Sink, key: Hashable | None, deadline: float | None) -> None:
        self.watch = watch
        self.sink_ref: weakref.ref[Sink] = weakref.ref(sink)
        self.key = key
        self.deadline = deadline
        self.active = True


class _Watch:
    __slots__ = ("errors", "generation", "last", "last_error", "state", "subscribers", "task_id")

    def __init__(self, task_id: str, state: PollState, last: Task | None) -> None:
        self.task_id = task_id
        self.state = state
        self.last = last
        self.subscribers: list[WatchHandle] = []
        # Bumped whenever the watch is rescheduled or dropped: older heap entries are stale.
        self.generation = 0
        # Failed queries in a row, and the latest one's error (meaningful only while ``errors``).
        self.errors = 0
        self.last_error: BaseException | None = None


# Heap entries: (when, tie-breaker, watch, generation, handle-or-None). A None handle is a
# query; a handle is that subscriber's deadline.
_Entry = tuple[float, int, _Watch, int, WatchHandle | None]


def _changed(old: Task, new: Task) -> bool:
    return old.status != new.status or old.progress != new.progress


def _newer(pushed: Task, known: Task) -> bool:
    """True when ``pushed`` is further along than ``known`` (terminal beats running beats waiting)."""
    def rank(task: Task) -> tuple[int, int]:
        return (2 if task.is_terminal else 1 if task.status is TaskStatus.PROCESSING else 0, task.progress)

    return rank(pushed) > rank(known)


def _estimate(snapshot: Task | None) -> float | None:
    return snapshot.estimated_time if snapshot is not None else None


def _submitted_at(snapshot: Task | None, now: float) -> float:
    # ``created`` has one-second resolution: only trust it for tasks clearly older than that,
    # such as one a resumed batch re-attaches to.
    if snapshot is not None and snapshot.created is not None:
        age = time.time() - snapshot.created
        if age > 2.0:
            return now - age
    return now


def query_before_deadline(when: float, *, now: float, deadline: float | None, min_gap: float) -> float:
    """``when``, or a last query a little before ``deadline`` when the schedule would skip past it.

    Without it a caller's ``wait(timeout=20)`` on a task whose next query is due in 30 s raises
    ``TaskTimeoutError`` although the server may long have reported the task ended.
    """
    if deadline is None or when < deadline:
        return when
    last_chance = deadline - min(1.0, 0.1 * (deadline - now))
    return last_chance if last_chance > now + min_gap else when


def earliest_deadline(watch: _Watch) -> float | None:
    subscribers = watch.subscribers
    if len(subscribers) == 1:  # the common case, once per answer
        return subscribers[0].deadline
    deadlines = [handle.deadline for handle in subscribers if handle.deadline is not None]
    return min(deadlines) if deadlines else None
