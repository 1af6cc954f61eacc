"""``TaskStream``: one task's events as an async iterator, ending with its terminal event."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Self

from .._core.checks import check_timeout
from .._models.events import TaskEvent, snapshot_event
from .._models.task import Task
from .mailbox import Mailbox
from .tracker import Tracker, WatchHandle

__all__ = ["TaskStream"]


class TaskStream:
    """Events of one task until it is terminal (or ``timeout`` seconds pass: ``TIMED_OUT``).

    Use it with ``async for``; wrap it in ``async with`` to stop watching at once when you leave
    early. A stream nobody references any more stops costing queries by itself.

    >>> async for event in client.tasks.stream(task):
    ...     print(event.kind, event.progress)
    """

    def __init__(self, tracker: Tracker, task_or_id: Task | str, task_id: str, *, timeout: float | None) -> None:
        self._tracker = tracker
        self._snapshot = task_or_id if isinstance(task_or_id, Task) else None
        self._task_id = task_id
        self._timeout = check_timeout("timeout", timeout)
        self._mailbox = Mailbox()
        self._handle: WatchHandle | None = None
        self._done = False

    @property
    def task_id(self) -> str:
        return self._task_id

    def _start(self) -> None:
        snapshot = self._snapshot
        if snapshot is not None and snapshot.is_terminal:
            self._mailbox.deliver(snapshot_event(snapshot, key=None, at=time.monotonic()))
            return
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        self._handle = self._tracker.watch(self._task_id, self._mailbox, snapshot=snapshot, deadline=deadline)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> TaskEvent:
        if self._done:
            raise StopAsyncIteration
        mailbox = self._mailbox
        if self._handle is None and not len(mailbox):
            self._start()
        try:
            # ``Mailbox.get`` written out: a coroutine fewer per event.
            while (event := mailbox.take()) is None:
                await mailbox.arrival()
        except BaseException:
            self._done = True
            self.close()
            raise
        if event.is_terminal:
            self._done = True
            self.close()
        return event

    def close(self) -> None:
        """Stop watching (idempotent)."""
        self._done = True
        if self._handle is not None:
            self._tracker.unwatch(self._handle)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
