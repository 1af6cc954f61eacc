"""What a batch needs from a client: a fan-out, one query of a task, and a session for downloads.

``EvolinkClient`` and ``MidjourneyClient`` both fit; the batch never reaches past this.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any, Protocol

import aiohttp

from .._models.task import Task
from .._watching.fan_out import FanOut, FanOutItem

__all__ = ["BatchClient", "BatchTasks"]


class BatchTasks(Protocol):
    async def get(self, task_or_id: Task | str) -> Task:
        """One query of the task's current state (fresh result links after they expired)."""
        ...


class BatchClient(Protocol):
    """The client a :class:`~evolink_async.batch.Batch` runs with."""

    @property
    def tasks(self) -> BatchTasks: ...

    @property
    def session(self) -> aiohttp.ClientSession: ...

    def fan_out(
        self,
        requests: AsyncIterable[FanOutItem[Any]],
        *,
        max_in_flight: int,
        timeout: float | None,
        max_credits: float | None = None,
        credits_per_task: float | None = None,
    ) -> FanOut[Any]:
        """Submit with at most ``max_in_flight`` unfinished, within ``max_credits``; stream every input's events."""
        ...
