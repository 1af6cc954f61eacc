"""``client.tasks``: query tasks (``GET /v1/tasks/{id}``), and watch them until terminal."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import quote

from .._converter import structure_task
from .._events import EventKind
from .._stream import TaskStream
from .._task import Task
from ..errors import TaskCancelledError, TaskFailedError, TaskTimeoutError, ValidationError

if TYPE_CHECKING:
    from .._client import EvolinkClient

__all__ = ["Tasks", "task_id_of"]

_UNSAFE_IN_ID = re.compile(r"[/?#\x00-\x1f]")


def task_id_of(task_or_id: Task | str) -> str:
    """The id of a task given as a ``Task`` or its id, checked to be a usable path segment."""
    task_id = task_or_id.id if isinstance(task_or_id, Task) else task_or_id
    if not isinstance(task_id, str) or not task_id.strip():
        raise ValidationError("task_id", "must be a non-empty string")
    if _UNSAFE_IN_ID.search(task_id):
        raise ValidationError("task_id", "must not contain '/', '?', '#' or control characters")
    return task_id


class Tasks:
    """Read tasks by id, stream their progress, wait for their end."""

    def __init__(self, client: EvolinkClient) -> None:
        self._client = client

    async def get(self, task_or_id: Task | str) -> Task:
        """One query of the task's current state.

        >>> task = await client.tasks.get("task-unified-1757165031-mjv7")
        """
        task_id = task_id_of(task_or_id)
        response = await self._client._transport.request(
            "GET", f"{self._client.base_url}/v1/tasks/{quote(task_id, safe='')}", retry_safe=True
        )
        return structure_task(response.body, request_id=response.request_id)

    def stream(self, task_or_id: Task | str, *, timeout: float | None = None) -> TaskStream:
        """Events of the task until it is terminal: ``PROGRESS`` on each change, then exactly one of
        ``COMPLETED``, ``FAILED``, ``CANCELLED`` or ``TIMED_OUT`` (after ``timeout`` seconds).

        Pass the ``Task`` from ``submit`` rather than its id: its ``estimated_time`` spares
        queries that could not find the task finished.
        """
        return TaskStream(self._client._tracker, task_or_id, task_id_of(task_or_id), timeout=timeout)

    async def wait(self, task_or_id: Task | str, *, timeout: float | None = None) -> Task:
        """The completed task; raises ``TaskFailedError``, ``TaskCancelledError`` or ``TaskTimeoutError``.

        >>> done = await client.tasks.wait(task, timeout=600)
        >>> done.results
        """
        last: Task | None = task_or_id if isinstance(task_or_id, Task) else None
        async with self.stream(task_or_id, timeout=timeout) as events:
            async for event in events:
                last = event.task or last
                if event.kind is EventKind.COMPLETED and event.task is not None:
                    return event.task
                if event.kind is EventKind.FAILED and event.task is not None:
                    raise TaskFailedError(event.task)
                if event.kind is EventKind.CANCELLED and event.task is not None:
                    raise TaskCancelledError(event.task)
                if event.kind is EventKind.TIMED_OUT:
                    raise TaskTimeoutError(task_id_of(task_or_id), timeout or 0.0, last)
        raise AssertionError("a task stream ended without a terminal event")  # pragma: no cover
