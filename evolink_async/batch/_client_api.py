"""What a batch needs from a client: a fan-out, one query of a task, a session for downloads, and
what its protocol says of itself (whether answers carry a cost).

Every ``Client`` fits (``EvolinkClient``, ``MidjourneyClient``, a third protocol's); the batch never
reaches past this. A client that can find a submit whose answer was lost (``find_submitted``, a
Midjourney proxy by its ``state``) is asked to before a run sends anything again.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any, Protocol, runtime_checkable

import aiohttp

from .._models.task import Task
from .._watching.fan_out import FanOut, FanOutItem

__all__ = ["BatchClient", "BatchTasks", "FindsLostSubmits", "ProtocolTraits"]


class BatchTasks(Protocol):
    async def get(self, task_or_id: Task | str) -> Task:
        """One query of the task's current state (fresh result links after they expired)."""
        ...


class ProtocolTraits(Protocol):
    """What a batch reads of the client's protocol (a ``TaskProtocol`` has it)."""

    @property
    def name(self) -> str: ...

    @property
    def reports_cost(self) -> bool:
        """Whether submits answer with their cost: without it, "0 credits reserved" would be false."""
        ...


@runtime_checkable
class FindsLostSubmits(Protocol):
    """A client that can find the task an earlier submit under an idempotency key created."""

    async def find_submitted(self, idempotency_key: str, *, submitted_after: float | None = None) -> Task | None:
        """The task, or None when there is none; raises ``EvolinkError`` when it cannot tell."""
        ...


class BatchClient(Protocol):
    """The client a :class:`~evolink_async.batch.Batch` or a fleet ``Worker`` runs with."""

    @property
    def protocol(self) -> ProtocolTraits: ...

    @property
    def tasks(self) -> BatchTasks: ...

    @property
    def session(self) -> aiohttp.ClientSession: ...

    def fan_out(
        self,
        requests: AsyncIterable[FanOutItem[Any]],
        *,
        max_in_flight: int,
        buffer_size: int = 64,
        timeout: float | None = None,
        max_credits: float | None = None,
        credits_per_task: float | None = None,
    ) -> FanOut[Any]:
        """Submit with at most ``max_in_flight`` unfinished, within ``max_credits``; stream every input's events."""
        ...
