"""The fan-out's event buffer: a FIFO with a soft capacity that coalesces a key's queued progress.

Bare asyncio futures rather than anyio Events: this runs once per event, on the hot path.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable

from .._models.events import EventKind, TaskEvent

__all__ = ["EventBuffer"]


class EventBuffer:
    """FIFO of events with a soft capacity; a queued progress event of a key is coalesced."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._queue: deque[list[TaskEvent]] = deque()  # one-element lists: replaceable in place
        self._pending_progress: dict[Hashable, list[TaskEvent]] = {}
        # Futures of the coroutines parked in ``_wait`` (the consumer, the feeder waiting for room).
        # Bare futures rather than anyio Events: this runs once per event, on the hot path.
        self._waiters: list[asyncio.Future[None]] = []
        self.error: BaseException | None = None
        self.finished = False

    def __len__(self) -> int:
        return len(self._queue)

    def _notify(self) -> None:
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._waiters:  # cancelled before it was woken
                self._waiters.remove(waiter)

    def put(self, event: TaskEvent) -> None:
        slot = self._pending_progress.get(event.key) if event.kind is EventKind.PROGRESS else None
        if slot is not None:
            slot[0] = event
            return
        slot = [event]
        self._queue.append(slot)
        if event.kind is EventKind.PROGRESS:
            self._pending_progress[event.key] = slot
        self._notify()

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self._notify()

    def finish(self) -> None:
        self.finished = True
        self._notify()

    async def wait_for_room(self) -> None:
        while len(self._queue) >= self.capacity and self.error is None:
            await self._wait()

    async def get(self) -> TaskEvent:
        while True:
            # Events already made are read before an error that stopped the fan-out: a task it
            # submitted (a SUBMITTED event waiting here) must reach a consumer that records it, or
            # a journal would know only that its submit began (``uncertain``), not its id.
            if self._queue:
                (event,) = slot = self._queue.popleft()
                if self._pending_progress.get(event.key) is slot:
                    del self._pending_progress[event.key]
                self._notify()
                return event
            if self.error is not None:
                raise self.error
            if self.finished:
                raise StopAsyncIteration
            await self._wait()
