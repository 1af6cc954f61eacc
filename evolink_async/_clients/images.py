"""``client.images``: submit image tasks, or submit and wait."""

from __future__ import annotations

from .._core.checks import check_timeout
from .._core.idempotency import check_idempotency_key, new_idempotency_key
from .._core.logging import LOG_CONTEXT
from .._models.requests import Request
from .._models.task import Task
from .._protocols.task_api import TaskAPI
from .tasks import Tasks

__all__ = ["Images"]


class Images:
    """Submit image-generation and image-edit tasks."""

    def __init__(self, api: TaskAPI, tasks: Tasks) -> None:
        self._api = api
        self._tasks = tasks

    async def submit(self, request: Request, *, idempotency_key: str | None = None) -> Task:
        """Submit one task and return its first snapshot (usually ``pending``).

        The submit carries an ``Idempotency-Key`` (``idempotency_key``, or a fresh one) that is
        reused on every retry. Pass your own key to make a submit safe across process restarts on
        servers that honour it.

        >>> task = await client.images.submit(QwenImageEdit(prompt="...", image_urls=[url]))
        """
        key = check_idempotency_key(idempotency_key) if idempotency_key is not None else new_idempotency_key()
        token = LOG_CONTEXT.set({"model": request.model})  # the submit's records (retries) name the model
        try:
            return await self._api.submit(request, idempotency_key=key)
        finally:
            LOG_CONTEXT.reset(token)

    async def generate(
        self, request: Request, *, timeout: float | None = None, idempotency_key: str | None = None
    ) -> Task:
        """Submit and wait: the completed task, or ``TaskFailedError`` / ``TaskTimeoutError`` / ...

        >>> done = await client.images.generate(RemoveBackground(image_urls=[url]), timeout=600)
        """
        timeout = check_timeout("timeout", timeout)  # before anything is paid for
        task = await self.submit(request, idempotency_key=idempotency_key)
        return await self._tasks.wait(task, timeout=timeout)
