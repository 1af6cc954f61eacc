"""``client.images``: submit image tasks to ``POST /v1/images/generations``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._converter import structure_task
from .._idempotency import check_idempotency_key, new_idempotency_key
from .._logging import logger
from .._requests import ImageRequest, QwenImageEdit, RemoveBackground, Request, Retexture
from .._task import Task
from ..errors import ValidationError

if TYPE_CHECKING:
    from .._client import EvolinkClient

__all__ = ["Images"]

_BUILT_IN_REQUESTS = (QwenImageEdit, Retexture, RemoveBackground, ImageRequest)


class Images:
    """Submit image-generation and image-edit tasks."""

    def __init__(self, client: EvolinkClient) -> None:
        self._client = client

    async def submit(self, request: Request, *, idempotency_key: str | None = None) -> Task:
        """Submit one task and return its first snapshot (usually ``pending``).

        The submit carries an ``Idempotency-Key`` (``idempotency_key``, or a fresh one) that is
        reused on every retry, so a retried submit is never billed twice. Pass your own key to
        make a submit safe across process restarts.

        >>> task = await client.images.submit(QwenImageEdit(prompt="...", image_urls=[url]))
        """
        # The concrete types first: a runtime Protocol check alone costs about 10 us per submit.
        if not isinstance(request, _BUILT_IN_REQUESTS) and not isinstance(request, Request):
            raise ValidationError("request", f"must be a request object, got {type(request).__name__}")
        key = check_idempotency_key(idempotency_key) if idempotency_key is not None else new_idempotency_key()
        request = await self._client._resolve_local_images(request)
        response = await self._client._transport.request(
            "POST",
            f"{self._client.base_url}/v1/images/generations",
            json_body=request.to_body(),
            headers={"Idempotency-Key": key},
            retry_safe=True,
        )
        task = structure_task(response.body, request_id=response.request_id)
        logger.info(
            "submitted %s as %s%s", request.model, task.id, " (idempotent replay)" if response.replayed else ""
        )
        return task

    async def generate(
        self, request: Request, *, timeout: float | None = None, idempotency_key: str | None = None
    ) -> Task:
        """Submit and wait: the completed task, or ``TaskFailedError`` / ``TaskTimeoutError`` / ...

        >>> done = await client.images.generate(RemoveBackground(image_urls=[url]), timeout=600)
        """
        task = await self.submit(request, idempotency_key=idempotency_key)
        return await self._client.tasks.wait(task, timeout=timeout)
