"""``client.images``: submit image tasks, or submit and wait."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from .._core.checks import check_timeout
from .._models.requests import Request
from .._models.task import Task
from .tasks import Tasks

__all__ = ["Images"]


class _Submit(Protocol):
    def __call__(self, request: Request, *, idempotency_key: str | None = None) -> Awaitable[Task]: ...


class Images:
    """Submit image-generation and image-edit tasks."""

    def __init__(self, submit: _Submit, tasks: Tasks) -> None:
        self._submit = submit  # the client's own ``submit``: one place for keys and log context
        self._tasks = tasks

    async def submit(self, request: Request, *, idempotency_key: str | None = None) -> Task:
        """Submit one task and return its first snapshot (usually ``pending``).

        The submit carries an ``Idempotency-Key`` (``idempotency_key``, or a fresh one) that is
        reused on every retry. Pass your own key to make a submit safe across process restarts on
        servers that honour it.

        >>> task = await client.images.submit(QwenImageEdit(prompt="...", image_urls=[url]))
        """
        return await self._submit(request, idempotency_key=idempotency_key)

    async def generate(
        self, request: Request, *, timeout: float | None = None, idempotency_key: str | None = None
    ) -> Task:
        """Submit and wait: the completed task, or ``TaskFailedError`` / ``TaskTimeoutError`` / ...

        >>> done = await client.images.generate(RemoveBackground(image_urls=[url]), timeout=600)
        """
        timeout = check_timeout("timeout", timeout)  # before anything is paid for
        task = await self._submit(request, idempotency_key=idempotency_key)
        return await self._tasks.wait(task, timeout=timeout)
