"""A bounded, coalescing buffer of one task's events for one consumer.

The tracker must never wait for a slow consumer (one slow chat bot would stall every query),
so delivery is synchronous and never blocks; when the buffer is full, the newest queued
progress event is replaced by the fresher one. Terminal events are never dropped.
"""

from __future__ import annotations

import asyncio
from collections import deque

from .._models.events import EventKind, TaskEvent

__all__ = ["Mailbox"]


class Mailbox:
    """Implements the tracker's ``Sink`` protocol for a single consumer."""

    __slots__ = ("__weakref__", "_error", "_events", "_limit", "_waiter")

    def __init__(self, *, limit: int = 16) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._events: deque[TaskEvent] = deque()
        self._limit = limit
        self._error: BaseException | None = None
        # The consumer's parked future, if it waits. A bare future rather than an Event: this runs
        # once per event, and an anyio.Event per wake was a measurable share of a stream's CPU.
        self._waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def deliver(self, event: TaskEvent) -> None:
        if len(self._events) >= self._limit and self._events[-1].kind is EventKind.PROGRESS:
            self._events[-1] = event
        else:
            self._events.append(event)
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
