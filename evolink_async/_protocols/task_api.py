"""The seam between one wire protocol and the machinery above it (tracker, streams, fan-out, batch).

A protocol plugs in by implementing :class:`TaskAPI`: submit a request under an idempotency key,
fetch one task, and, where the server can, fetch many tasks in one call and cancel. Everything
above speaks only this interface, so a new protocol touches nothing in the watching layer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from .._models.task import Task

__all__ = ["Cancel", "CallbackURLs", "FetchMany", "Recover", "ReleaseUploads", "TaskAPI"]

#: Fetch several tasks in one request; tasks the server does not know are left out of the answer.
FetchMany = Callable[[Sequence[str]], Awaitable[Sequence[Task]]]
#: Ask the server to cancel one task; the answer is the task as the server now reports it.
Cancel = Callable[[str], Awaitable[Task]]
#: Find the task a submit created when its answer was lost (by idempotency key), waiting at most
#: ``timeout`` seconds; ``None`` when it did not show up (the outcome stays unknown).
Recover = Callable[[str, float], Awaitable[Task | None]]
#: The task has ended (or is no longer watched): let go of the files uploaded for its submit, deleting
#: them when ``delete`` is true. Never raises: a file that cannot be deleted expires on its own.
ReleaseUploads = Callable[[str, bool], Awaitable[None]]


class CallbackURLs(Protocol):
    """Where a protocol asks the server to report a submit's task (a callback or notify hook)."""

    def url_for(self, idempotency_key: str, *, marker: str | None = None) -> str:
        """The callback URL of the submit made under ``idempotency_key``; ``marker`` is what its
        task will carry of the submit (Midjourney's ``state``), so that no other task's body counts."""
        ...

    def submitted(self, idempotency_key: str, task: Task) -> None:
        """The submit's answer arrived: its callbacks belong to ``task``."""
        ...

    async def recover(self, idempotency_key: str, timeout: float) -> Task | None:
        """The task of a submit whose answer was lost, once its first callback arrives."""
        ...


class TaskAPI(Protocol):
    """What the watching layer needs from a protocol. Every method raises ``EvolinkError``s."""

    async def submit(self, request: Any, *, idempotency_key: str) -> Task:
        """Create the task; the same ``idempotency_key`` is reused on every retry of this submit."""
        ...

    async def fetch(self, task_id: str) -> Task:
        """One query of the task's current state."""
        ...

    @property
    def fetch_many(self) -> FetchMany | None:
        """Batch fetch when the server has it (``None`` otherwise)."""
        ...

    @property
    def fetch_many_limit(self) -> int:
        """The most ids one ``fetch_many`` call may carry."""
        ...

    @property
    def cancel(self) -> Cancel | None:
        """Ask the server to cancel a task, when it can (``None`` otherwise)."""
        ...

    @property
    def recover(self) -> Recover | None:
        """Settle a submit whose answer was lost without submitting again (``None``: cannot)."""
        ...

    @property
    def release_uploads(self) -> ReleaseUploads | None:
        """Let go of a task's uploaded files once it ended (``None``: the protocol uploads none)."""
        ...
