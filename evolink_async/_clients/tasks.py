"""``client.tasks``: query tasks, and watch them until terminal through the client's tracker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterable
from typing import Any

from .._models.events import EventKind, requires_action_error
from .._models.task import Task, TaskStatus
from .._models.task_ids import task_id_of
from .._protocols.task_api import TaskAPI
from .._watching.stream import TaskStream
from .._watching.tracker import Tracker
from ..errors import NotFoundError, TaskCancelledError, TaskFailedError, TaskTimeoutError, UnsupportedOperationError

__all__ = ["Tasks"]

# Parallel single queries when the server cannot fetch many at once.
_GET_MANY_CONCURRENCY = 8


class Tasks:
    """Read tasks by id, stream their progress, wait for their end, cancel them where the server can."""

    def __init__(self, api: TaskAPI[Any], tracker: Tracker) -> None:
        # Any request type: reading and watching tasks never submits.
        self._api = api
        self._tracker = tracker

    def get(self, task_or_id: Task | str) -> Coroutine[Any, Any, Task]:
        """One query of the task's current state (a coroutine: await it).

        >>> task = await client.tasks.get("task-unified-1757165031-mjv7")
        """
        # The protocol's ``fetch`` checks the id (every protocol does): checked once, not twice.
        # Its coroutine is handed back as is: no coroutine of ours around it (a frame per query).
        return self._api.fetch(task_or_id.id if isinstance(task_or_id, Task) else task_or_id)

    async def get_many(self, task_ids: Iterable[Task | str]) -> list[Task]:
        """The tasks the server knows, in the order asked (unknown ids are left out).

        One request per ``fetch_many_limit`` ids where the protocol fetches many at once (a
        Midjourney proxy's ``task/list-by-condition``: 50), else one query each, 8 at a time.

        >>> tasks = await mj.tasks.get_many(["1712345678901123", "1712345678901456"])
        """
        ids = list(dict.fromkeys(task_id_of(task) for task in task_ids))
        found: dict[str, Task] = {}
        fetch_many = self._api.fetch_many
        if fetch_many is not None:
            try:
                limit = self._api.fetch_many_limit
                for start in range(0, len(ids), limit):
                    found.update((task.id, task) for task in await fetch_many(ids[start : start + limit]))
            except UnsupportedOperationError:
                fetch_many = None
        if fetch_many is None:
            gate = asyncio.Semaphore(_GET_MANY_CONCURRENCY)

            async def one(task_id: str) -> None:
                async with gate:
                    with contextlib.suppress(NotFoundError):
                        found[task_id] = await self._api.fetch(task_id)

            async with asyncio.TaskGroup() as group:
                for task_id in ids:
                    if task_id not in found:
                        group.create_task(one(task_id))
        return [found[task_id] for task_id in ids if task_id in found]

    async def cancel(self, task_or_id: Task | str) -> Task:
        """Ask the server to cancel the task and return it as it now is.

        Raises ``UnsupportedOperationError`` where the protocol has no cancel (Evolink documents
        none), or the server refuses it (a Midjourney proxy's ``task/{id}/cancel`` is admin-only
        at some).

        >>> task = await mj.tasks.cancel(task)
        """
        cancel = self._api.cancel
        if cancel is None:
            raise UnsupportedOperationError("cancel", "this server has no cancel endpoint")
        return await cancel(task_id_of(task_or_id))

    def stream(
        self,
        task_or_id: Task | str,
        *,
        timeout: float | None = None,
        progress_every: float | None = None,
        min_gap: float | None = None,
    ) -> TaskStream:
        """Events of the task until it is terminal: ``PROGRESS`` on each change, then exactly one of
        ``COMPLETED``, ``FAILED``, ``CANCELLED`` or ``TIMED_OUT`` (after ``timeout`` seconds).

        Pass the ``Task`` from ``submit`` rather than its id: its ``estimated_time`` spares
        queries that could not find the task finished.

        The client's poll policy is built to save queries (a 30 s task yields a few events).
        For a person watching: ``progress_every=s`` queries the task at least every ``s``
        seconds while this stream is open (never more often than the policy's
        ``min_interval``), also when callbacks report its end; the task goes back to the
        economical schedule when the last such stream closes. A slow consumer always gets the
        latest state (stale progress is replaced, never queued). ``min_gap=s`` sends at most
        one PROGRESS event per ``s`` seconds, the latest each time, and the terminal event at
        once: a chat that may edit a message once a second passes ``min_gap=1.0``.

        >>> async for event in client.tasks.stream(task, progress_every=1.0, min_gap=1.0):
        ...     await chat.edit(message, f"{event.progress} %")
        """
        return TaskStream(
            self._tracker,
            task_or_id,
            task_id_of(task_or_id),
            timeout=timeout,
            min_gap=min_gap,
            progress_every=progress_every,
        )

    async def wait(self, task_or_id: Task | str, *, timeout: float | None = None) -> Task:
        """The completed task; raises ``TaskFailedError``, ``TaskCancelledError`` or ``TaskTimeoutError``
        (and ``TaskRequiresActionError`` for a task that waits for the caller: ``TaskNeedsModalError``
        for a Midjourney task that waits for a ``Modal`` submit).

        Files this client uploaded for the task's submit (local images) are deleted once it ended.

        >>> done = await client.tasks.wait(task, timeout=600)
        >>> done.results
        """
        try:
            done = await self._wait(task_or_id, timeout=timeout)
        except (TaskFailedError, TaskCancelledError) as exc:
            await self._ended(exc.task.id)
            raise
        await self._ended(done.id)
        return done

    async def _ended(self, task_id: str) -> None:
        release = self._api.release_uploads
        deletions = release(task_id, True) if release is not None else None
        if deletions is not None:
            await deletions

    async def _wait(self, task_or_id: Task | str, *, timeout: float | None) -> Task:
        last: Task | None = task_or_id if isinstance(task_or_id, Task) else None
        if last is not None and last.status is TaskStatus.REQUIRES_ACTION:
            raise requires_action_error(last)
        async with self.stream(task_or_id, timeout=timeout) as events:
            async for event in events:
                last = event.task or last
                if event.kind is EventKind.COMPLETED and event.task is not None:
                    return event.task
                if event.kind is EventKind.FAILED and event.task is not None:
                    raise TaskFailedError(event.task)
                if event.kind is EventKind.CANCELLED and event.task is not None:
                    raise TaskCancelledError(event.task)
                if event.task is not None and event.task.status is TaskStatus.REQUIRES_ACTION:
                    raise requires_action_error(event.task)  # it would never move on by itself
                if event.kind is EventKind.TIMED_OUT:
                    raise TaskTimeoutError(
                        task_id_of(task_or_id), timeout or 0.0, last, last_error=event.error
                    ) from event.error
        raise AssertionError("a task stream ended without a terminal event")  # pragma: no cover
