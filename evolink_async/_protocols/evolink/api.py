"""Evolink's task API behind the ``TaskAPI`` seam: submit (``POST /v1/images/generations``) and query.

Local images in a request are uploaded through the Files API first; all of them are checked before
the first upload, so a bad third image leaves no two uploads behind and nothing is spent on a
request that cannot succeed. The uploads go through one :class:`UploadBudget` per client (the key's
file quota, 100 files by default, is a budget of files alive at once) and are remembered by task id:
``release_uploads`` deletes them once the task ended (``fan_out``, ``images.generate`` and
``tasks.wait`` call it). A submit refused by the server deletes its uploads at once; one whose
answer was lost keeps them (the task may exist and need them).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from pathlib import Path, PurePath
from urllib.parse import quote

import anyio

from ..._core.logging import logger
from ..._core.transport import Transport
from ..._files.local_images import check_local_image
from ..._models.converter import structure_task
from ..._models.requests import Request, is_request
from ..._models.task import Task
from ..._models.task_ids import task_id_of
from ...errors import EvolinkError, ModelUnavailableError, ValidationError, may_have_been_billed
from ..task_api import CallbackURLs, Cancel, FetchMany, Recover, ReleaseUploads
from .files import Files
from .uploads import UploadBudget

__all__ = ["EvolinkAPI"]


class EvolinkAPI:
    """One Evolink account's task endpoints, speaking the ``TaskAPI`` seam."""

    #: Evolink documents no batch query and no cancel endpoint (API.md A3).
    fetch_many: FetchMany | None = None
    fetch_many_limit = 1
    cancel: Cancel | None = None

    def __init__(self, transport: Transport, files: Files, *, callbacks: CallbackURLs | None = None) -> None:
        self._transport = transport
        self._files = files
        self._callbacks = callbacks
        self._submit_url = f"{transport.config.base_url}/v1/images/generations"
        self._tasks_url = f"{transport.config.base_url}/v1/tasks/"
        self._budget: UploadBudget | None = None  # made at the first local image
        self._task_uploads: dict[str, tuple[str, ...]] = {}  # task id -> its uploaded file ids

    @property
    def files(self) -> Files:
        """The account's Files API, which uploads this API's local images."""
        return self._files

    async def submit(self, request: Request, *, idempotency_key: str) -> Task:
        """Submit one task under ``idempotency_key`` (sent on every retry) and return its first snapshot."""
        if not is_request(request):
            raise ValidationError("request", f"must be a request object, got {type(request).__name__}")
        # Only a request with a local file needs the upload coroutine (an await per submit).
        uploaded: tuple[str, ...] = ()
        if any(isinstance(image, PurePath) for image in request.image_urls):
            request, uploaded = await self._upload_local(request)
        body = request.to_body()
        callbacks = self._callbacks
        if callbacks is not None and "callback_url" not in body:
            body["callback_url"] = callbacks.url_for(idempotency_key)
        try:
            response = await self._transport.request(
                "POST",
                self._submit_url,
                json_body=body,
                headers={"Idempotency-Key": idempotency_key},
                retry_safe=True,
                # With callbacks, a submit whose answer was lost is settled by its callback (recover),
                # not sent again: a server that ignores the key would bill the retry.
                retry_uncertain=callbacks is None,
                spends=True,
            )
            task = structure_task(response.body, request_id=response.request_id)
        except EvolinkError as exc:
            if isinstance(exc, ModelUnavailableError):  # what a stop gives back: the inputs naming this model
                exc.model = request.model
            # Refused: no task will use them. (A submit that may have created its task keeps them.)
            if uploaded and not may_have_been_billed(exc):
                await self._delete_uploads(uploaded)
            raise
        if uploaded:
            self._task_uploads[task.id] = uploaded
        if callbacks is not None:
            callbacks.submitted(idempotency_key, task)
        if logger.isEnabledFor(logging.INFO):  # its arguments cost a header lookup per submit
            logger.info(
                "submitted %s as %s%s", request.model, task.id, " (idempotent replay)" if response.replayed else ""
            )
        return task

    @property
    def recover(self) -> Recover | None:
        return self._callbacks.recover if self._callbacks is not None else None

    async def fetch(self, task_id: str) -> Task:
        """``GET /v1/tasks/{id}``: the task's current state."""
        task_id = task_id_of(task_id)
        if type(task_id) is not str:  # a str subclass: the plain string, for the comparison below
            task_id = str.__str__(task_id)
        # Of a safe id's alphabet only ":" is not left alone by ``quote`` (an encode and a scan).
        segment = task_id if ":" not in task_id else quote(task_id, safe="")
        _, body, request_id, _ = await self._transport.exchange("GET", self._tasks_url + segment, retry_safe=True)
        return structure_task(body, request_id=request_id, expected_id=task_id)

    async def query(self, task_id: str, last: Task | None) -> Task:
        """``fetch`` for the tracker, which checked ``task_id`` when the watch started (an exact,
        safe ``str``): an answer identical to ``last``'s body is ``last`` itself, not parsed again.

        Most answers while a task runs repeat the previous one; parsing and building a ``Task``
        for each was the larger half of a query's own CPU. The trust checks stand: an answer is
        ``last`` only if it names the task asked for and equals a body that passed every check;
        anything else goes through ``structure_task`` with ``expected_id`` as in ``fetch``.
        """
        segment = task_id if ":" not in task_id else quote(task_id, safe="")
        _, body, request_id, _ = await self._transport.exchange("GET", self._tasks_url + segment, retry_safe=True)
        if (
            last is not None
            and type(body) is dict
            and type(body.get("id")) is str  # exact ``str``: a subclass could answer ``==`` any way
            and body["id"] == task_id  # an answer about another task is never ``last`` (nor taken)
            and body == last.raw
        ):
            return last
        return structure_task(body, request_id=request_id, expected_id=task_id)

    async def upload_local_images(self, request: Request) -> Request:
        """A copy of ``request`` whose local images (checked against the model's rules and the Files
        API's types first) are replaced by the ``file_url``s of their uploads (kept: not tied to a task)."""
        return (await self._upload_local(request))[0]

    @property
    def upload_budget(self) -> UploadBudget:
        """The client's budget of uploaded files alive at once (the key's file quota)."""
        if self._budget is None:
            self._budget = UploadBudget(self._files)
        return self._budget

    async def _upload_local(self, request: Request) -> tuple[Request, tuple[str, ...]]:
        images = request.image_urls
        if not any(isinstance(image, PurePath) for image in images):
            return request, ()
        for index, image in enumerate(images):
            if isinstance(image, PurePath):
                await check_local_image(image, model=request.model, field=f"image_urls[{index}]")
        urls: list[str] = [""] * len(images)
        file_ids: list[str] = []
        budget = self.upload_budget

        async def upload(index: int, image: PurePath) -> None:
            uploaded = await budget.upload(Path(image))
            file_ids.append(uploaded.file_id)
            urls[index] = uploaded.file_url

        try:
            async with anyio.create_task_group() as group:
                for index, image in enumerate(images):
                    if isinstance(image, PurePath):
                        group.start_soon(upload, index, image)
                    else:
                        urls[index] = image
        except BaseException:
            # One image failed: the others are of no use (nothing will be submitted with them).
            with anyio.CancelScope(shield=True), anyio.move_on_after(30):
                await self._delete_uploads(tuple(file_ids))
            raise
        return request.with_image_urls(tuple(urls)), tuple(file_ids)

    @property
    def release_uploads(self) -> ReleaseUploads | None:
        return self._release_uploads

    def _release_uploads(self, task_id: str, delete: bool) -> Awaitable[None] | None:
        # Forgotten at once; only deletions are left to await (most tasks uploaded nothing).
        file_ids = self._task_uploads.pop(task_id, ())
        return self._delete_uploads(file_ids) if file_ids and delete else None

    async def _delete_uploads(self, file_ids: tuple[str, ...]) -> None:
        for file_id in file_ids:
            try:
                await self.upload_budget.delete(file_id)
            except EvolinkError as exc:  # it expires on its own (72 h); the next call may succeed
                logger.warning("could not delete uploaded file %s: %s", file_id, exc)
