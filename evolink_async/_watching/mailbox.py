"""A bounded, coalescing buffer of one task's events for one consumer.

The tracker must never wait for a slow consumer (one slow chat bot would stall every query),
so delivery is synchronous and never blocks. A progress event that arrives while the consumer
has not yet taken the previous one replaces it: a person (a progress bar, a chat message edited
once a second) wants the latest state, never a backlog of stale ones. Terminal events are never
dropped, and a terminal event replaces a progress event still waiting: the consumer learns the
end at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from .._models.events import EventKind, TaskEvent

__all__ = ["Mailbox"]


class Mailbox:
    """Implements the tracker's ``Sink`` protocol for a single consumer."""

    __slots__ = ("__weakref__", "_error", "_events", "_on_drop", "_waiter")

    def __init__(self, *, on_drop: Callable[[], None] | None = None) -> None:
        self._events: deque[TaskEvent] = deque()
        # Told of each progress event replaced before the consumer took it (a metric).
        self._on_drop = on_drop
        self._error: BaseException | None = None
        # The consumer's parked future, if it waits. A bare future rather than an Event: this runs
        # once per event, and an anyio.Event per wake was a measurable share of a stream's CPU.
        self._waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def deliver(self, event: TaskEvent) -> None:
        events = self._events
        if events and events[-1].kind is EventKind.PROGRESS and (
            event.kind is EventKind.PROGRESS or event.kind.is_terminal
        ):
            # Latest wins: the consumer has not seen the waiting progress yet, and the newer event
            # (a fresher progress, or the end with its final snapshot) says more.
            events[-1] = event
            if self._on_drop is not None:
                self._on_drop()
        else:
            events.append(event)
        self._wake()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._wake()

    def __len__(self) -> int:
        return len(self._events)

    def take(self) -> TaskEvent | None:
        """The next queued event, or None when there is none yet; raises the failure once the
        queued events are drained."""
        if self._events:
            return self._events.popleft()
        if self._error is not None:
            raise self._error
        return None

    def arrival(self) -> asyncio.Future[None]:
        """A future that completes when the next event (or the failure) arrives.

        A future, not a coroutine to await: the consumer's loop is ``take()`` then, only when it
        found nothing, ``await arrival()`` (one coroutine fewer per event on the hot path).
        """
        self._waiter = waiter = asyncio.get_running_loop().create_future()
        return waiter
