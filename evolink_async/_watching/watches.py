"""The watches: which tasks are watched, by whom, and the delivery of their events.

A ``Watch`` is one watched task (its poll state, its last snapshot, its subscribers); a
``WatchHandle`` one subscriber, whose sink is held weakly (a stream nobody holds any more stops
costing queries). ``Watches`` keeps them and delivers events; it never queries and never decides
when to: the scheduler (``scheduler``) and the query-outcome path (``queries``) do.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Hashable
from typing import Protocol

from .._core.logging import logger
from .._models.events import EventKind, TaskEvent, error_for
from .._models.task import Task, TaskStatus
from .poll_policy import PollState

__all__ = [
    "PushCoverage",
    "Sink",
    "Watch",
    "WatchHandle",
    "Watches",
    "changed",
    "earliest_deadline",
    "newer",
    "query_before_deadline",
    "submitted_at",
]


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
    """One subscriber of one watched task; pass it to ``Tracker.unwatch``."""

    __slots__ = ("active", "cadence", "deadline", "key", "sink_ref", "watch")

    def __init__(
        self, watch: Watch, sink: Sink, key: Hashable | None, deadline: float | None, cadence: float | None = None
    ) -> None:
        self.watch = watch
        self.sink_ref: weakref.ref[Sink] = weakref.ref(sink)
        self.key = key
        self.deadline = deadline
        #: Seconds between queries this subscriber asks for while it is subscribed (a person
        #: watching a progress bar), whatever the economical policy would do; None: no wish.
        self.cadence = cadence
        self.active = True


class Watch:
    """One watched task: a scheduler job (``generation``) with its subscribers and what is known."""

    __slots__ = ("cadence", "errors", "generation", "last", "last_error", "next_at", "state", "subscribers", "task_id")

    def __init__(self, task_id: str, state: PollState, last: Task | None) -> None:
        self.task_id = task_id
        self.state = state
        self.last = last
        self.subscribers: list[WatchHandle] = []
        # Bumped whenever the watch is rescheduled or dropped: older scheduler entries are stale.
        self.generation = 0
        # Failed queries in a row, and the latest one's error (meaningful only while ``errors``).
        self.errors = 0
        self.last_error: BaseException | None = None
        #: The shortest cadence any subscriber asks for (None: the poll policy alone decides).
        self.cadence: float | None = None
        #: When the next query is scheduled (None: none is), so a new cadence can bring it forward.
        self.next_at: float | None = None

    def recompute_cadence(self) -> None:
        cadences = [handle.cadence for handle in self.subscribers if handle.cadence is not None]
        self.cadence = min(cadences) if cadences else None


class Watches:
    """The watched tasks by id, and the delivery of their events to subscribers."""

    def __init__(self) -> None:
        self.by_id: dict[str, Watch] = {}

    def __len__(self) -> int:
        return len(self.by_id)

    def is_current(self, watch: Watch) -> bool:
        """True while ``watch`` is the watch of its task (not dropped)."""
        return self.by_id.get(watch.task_id) is watch

    def subscribe(
        self, watch: Watch, sink: Sink, key: Hashable | None, deadline: float | None, cadence: float | None = None
    ) -> WatchHandle:
        handle = WatchHandle(watch, sink, key, deadline, cadence)
        watch.subscribers.append(handle)
        if cadence is not None:
            watch.recompute_cadence()
        return handle

    def unwatch(self, handle: WatchHandle) -> None:
        """Stop delivering to this subscriber; the last one out drops the watch."""
        if not handle.active:
            return
        handle.active = False
        watch = handle.watch
        if handle in watch.subscribers:
            watch.subscribers.remove(handle)
        if not watch.subscribers:
            self.drop(watch)
        elif handle.cadence is not None:
            watch.recompute_cadence()  # the last such watcher gone: back to the economical policy

    def drop(self, watch: Watch) -> None:
        """Forget ``watch``: no more queries (its scheduler entries go stale), no more events."""
        if self.by_id.get(watch.task_id) is watch:
            del self.by_id[watch.task_id]
        watch.generation += 1
        watch.subscribers.clear()

    def deliver(self, watch: Watch, kind: EventKind, now: float) -> None:
        """An event of ``kind`` about ``watch.last`` to every subscriber."""
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
            # ``deliver_to`` written out: this runs once per event.
            event = TaskEvent(kind=kind, task=task, at=now, key=handle.key, error=error)
            try:
                sink.deliver(event)
            except Exception:
                self._sink_raised(handle, event)
        if not subscribers:
            self.drop(watch)

    def deliver_to(self, handle: WatchHandle, sink: Sink, event: TaskEvent) -> None:
        # A sink that raises loses its subscription, not the scheduler: this runs inside the
        # timer callback and the workers, where an exception would stall or end every watch.
        try:
            sink.deliver(event)
        except Exception:
            self._sink_raised(handle, event)

    def _sink_raised(self, handle: WatchHandle, event: TaskEvent) -> None:
        logger.exception("a sink of %s raised on %s; it is no longer subscribed", handle.watch.task_id, event.kind,
                         extra={"task_id": handle.watch.task_id, "key": handle.key})  # fmt: skip
        self.unwatch(handle)

    def expire(self, handle: WatchHandle, now: float) -> None:
        """The subscriber's deadline passed: its TIMED_OUT event, with why queries failed if they did."""
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
            self.deliver_to(handle, sink, event)

    def fail(self, watch: Watch, error: BaseException) -> None:
        """End ``watch`` for every subscriber with ``error``: the task can no longer be watched."""
        handles = list(watch.subscribers)
        self.drop(watch)
        for handle in handles:
            handle.active = False
            sink = handle.sink_ref()
            if sink is not None:
                sink.fail(error)

    def fail_all(self, error: BaseException) -> None:
        for watch in list(self.by_id.values()):
            self.fail(watch, error)


def changed(old: Task, new: Task) -> bool:
    """True when ``new`` is worth an event after ``old`` (status or progress moved)."""
    return old.status != new.status or old.progress != new.progress


def newer(pushed: Task, known: Task) -> bool:
    """True when ``pushed`` is further along than ``known`` (terminal beats running beats waiting)."""

    def rank(task: Task) -> tuple[int, int]:
        return (2 if task.is_terminal else 1 if task.status is TaskStatus.PROCESSING else 0, task.progress)

    return rank(pushed) > rank(known)


def submitted_at(snapshot: Task | None, now: float) -> float:
    """When the task was submitted, on the monotonic clock ``now`` is read from."""
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


def earliest_deadline(watch: Watch) -> float | None:
    """The soonest deadline of the watch's subscribers, if any has one."""
    subscribers = watch.subscribers
    if len(subscribers) == 1:  # the common case, once per answer
        return subscribers[0].deadline
    deadlines = [handle.deadline for handle in subscribers if handle.deadline is not None]
    return min(deadlines) if deadlines else None
