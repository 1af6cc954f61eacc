"""``TaskStream``: one task's events as an async iterator, ending with its terminal event."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Self

from .._core.checks import check_number, check_timeout
from .._models.events import EventKind, TaskEvent, snapshot_event
from .._models.task import Task
from .mailbox import Mailbox
from .tracker import Tracker, WatchHandle

__all__ = ["TaskStream"]


class TaskStream:
    """Events of one task until it is terminal (or ``timeout`` seconds pass: ``TIMED_OUT``).

    Use it with ``async for``; wrap it in ``async with`` to stop watching at once when you leave
    early. A stream nobody references any more stops costing queries by itself.

    A consumer slower than the task always gets the latest state: a progress event it has not
    taken yet is replaced by a fresher one. With ``min_gap``, PROGRESS events come at most one
    per ``min_gap`` seconds (the latest state each time) and the terminal event at once. With
    ``progress_every``, the task is queried at least that often while the stream is open.

    >>> async for event in client.tasks.stream(task):
    ...     print(event.kind, event.progress)
    """

    def __init__(
        self,
        tracker: Tracker,
        task_or_id: Task | str,
        task_id: str,
        *,
        timeout: float | None,
        min_gap: float | None = None,
        progress_every: float | None = None,
    ) -> None:
        self._tracker = tracker
        self._snapshot = task_or_id if isinstance(task_or_id, Task) else None
        self._task_id = task_id
        self._timeout = check_timeout("timeout", timeout)
        self._min_gap = None if min_gap is None else check_number("min_gap", min_gap, above=True)
        self._progress_every = (
            None if progress_every is None else check_number("progress_every", progress_every, above=True)
        )
        self._last_progress_at = -float("inf")
        self._mailbox = Mailbox(on_drop=tracker.on_event_dropped)
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
        self._handle = self._tracker.watch(
            self._task_id, self._mailbox, snapshot=snapshot, deadline=deadline, progress_every=self._progress_every
        )

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
            if self._min_gap is not None and event.kind is EventKind.PROGRESS:
                event = await self._hold_for_gap(event, self._min_gap)
        except BaseException:
            self._done = True
            self.close()
            raise
        if event.is_terminal:
            self._done = True
            self.close()
        return event

    async def _hold_for_gap(self, event: TaskEvent, gap: float) -> TaskEvent:
        """``event``, or a fresher one, no sooner than ``gap`` after the previous PROGRESS event;
        anything else that arrives meanwhile (the terminal event) goes out at once."""
        mailbox = self._mailbox
        due = self._last_progress_at + gap
        while (left := due - time.monotonic()) > 0:
            newer = mailbox.take()
            if newer is None:
                try:
                    await asyncio.wait_for(mailbox.arrival(), left)
                except TimeoutError:
                    break
                continue
            event = newer
            if newer.kind is not EventKind.PROGRESS:
                return newer  # the latest progress is stale now: the terminal event says more
        self._last_progress_at = time.monotonic()
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
