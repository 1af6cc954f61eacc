"""A Midjourney proxy behind the ``TaskAPI`` seam: submit, fetch, fetch many, cancel.

Submits are never retried blindly: the proxy has no idempotency key, so a submit whose answer
was lost (connection error, timeout, 5xx) is first looked up by its ``state`` marker in
``task/list``; only where the server can list, and the task is not there, is it sent again.
Refusals the server answers for sure (codes 23 and "queue full" 9) are retried with the client's
``RetryPolicy``; an HTTP 429 by the transport, which has every request of the client take turns
after one.

Why one module of ~400 lines: every call of the proxy's task API and the lost-submit lookup that
guards its submits share one parsing of the proxy's envelopes; the requests are ``requests.py``,
the protocol's seam ``protocol.py``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import anyio

from ..._core.logging import logger
from ..._core.transport import Response, Transport
from ..._models.task import Task, TaskStatus
from ..._models.task_ids import is_safe_task_id, task_id_of
from ...errors import (
    APIStatusError,
    BadRequestError,
    BannedPromptError,
    EvolinkError,
    MidjourneyError,
    NotFoundError,
    QueueFullError,
    RateLimitError,
    ResponseFormatError,
    UnsupportedOperationError,
    ValidationError,
    may_have_been_billed,
    means_endpoint_missing,
)
from ..task_api import CallbackURLs, Cancel, FetchMany, Recover, ReleaseUploads
from .images import encode_images
from .requests import MIDJOURNEY_REQUESTS, MidjourneyRequest, Modal
from .tasks import parse_id, structure_mj_task

__all__ = ["MidjourneyAPI"]

_CREATED = frozenset({1, 22})
_MODAL = 21
_BANNED = 24
_QUEUE_FULL = 23
_QUEUE_FULL_WORDS = ("队列已满", "queue full", "queue is full")
# A caller-chosen ``state`` is matched only against tasks submitted from this long before the
# submit on (client and server clocks differ); the SDK's own marker is unique and needs no window.
_CLOCK_SLACK_MS = 10 * 60 * 1000
# trueai's ``task/list`` holds only the newest 100 tasks (novicezk's holds all): a list of exactly
# that many, every one submitted after (this much before) the lost submit, may have cut that
# submit's task off, and proves nothing.
_TRUNCATED_LIST_LENGTH = 100
_LIST_SKEW_MS = 60 * 1000


#: A route prefix: path segments of letters, digits and ``_ . - ~``, one slash between them (no
#: query, fragment, ``..`` or space: each would make every route's URL another one).
_PREFIX = re.compile(r"(/(?!\.\.?(?:/|\Z))[A-Za-z0-9_.~-]+)*")


def normalize_prefix(path_prefix: str) -> str:
    """``"mj"``, ``"/mj/"`` -> ``"/mj"``; ``""`` or ``"/"`` -> ``""``; anything but path segments is refused.

    >>> normalize_prefix("v1/mj/")
    '/v1/mj'
    """
    if not isinstance(path_prefix, str):
        raise ValidationError("path_prefix", f"must be a string such as '/mj', got {type(path_prefix).__name__}")
    stripped = path_prefix.strip().strip("/")
    normalized = f"/{stripped}" if stripped else ""
    if _PREFIX.fullmatch(normalized) is None:
        rule = "must be a path like '/mj' or '/v1/mj' (letters, digits, _ . - ~)"
        raise ValidationError("path_prefix", f"{rule}, got {path_prefix[:100]!r}")
    return normalized


class MidjourneyAPI:
    """One Midjourney proxy (novicezk, trueai, or a new-api style gateway) at ``base_url + path_prefix``."""

    fetch_many_limit = 50
    #: Images go inline (base64) in the submit: nothing is stored that would need deleting.
    release_uploads: ReleaseUploads | None = None

    def __init__(
        self, transport: Transport, *, path_prefix: str = "/mj", callbacks: CallbackURLs | None = None
    ) -> None:
        self._transport = transport
        self._callbacks = callbacks
        self.path_prefix = normalize_prefix(path_prefix)
        self._base = f"{transport.config.base_url}{self.path_prefix}/"
        # Learned from the server: endpoints it turned out not to have (HTTP 404/405).
        self._can_fetch_many = True
        self._can_cancel = True

    @property
    def base(self) -> str:
        return self._base

    @property
    def fetch_many(self) -> FetchMany | None:
        return self._fetch_many if self._can_fetch_many else None

    @property
    def cancel(self) -> Cancel | None:
        return self._cancel if self._can_cancel else None

    # --- submit -----------------------------------------------------------------------------

    async def submit(self, request: MidjourneyRequest, *, idempotency_key: str) -> Task:
        """Submit under ``idempotency_key``, which travels as the task's ``state`` (unless the
        request sets its own) so a submit whose answer was lost can be found again."""
        if not isinstance(request, MIDJOURNEY_REQUESTS):
            raise ValidationError(
                "request", f"must be a Midjourney request (Imagine, ...), got {type(request).__name__}"
            )
        images = await encode_images(request.images)
        body = request.body(images)
        marker = request.state if request.state is not None else idempotency_key
        body["state"] = marker
        if request.notify_hook is not None:
            body["notifyHook"] = request.notify_hook
        # A modal confirmation goes to a task that exists already (and keeps its first ``state``):
        # when its answer is lost, that task says whether it went through.
        confirms = request.task if isinstance(request, Modal) else None
        if request.notify_hook is None and self._callbacks is not None:
            # A new task carries ``state``: its hook refuses bodies with another submit's marker.
            body["notifyHook"] = self._callbacks.url_for(idempotency_key, marker=marker if confirms is None else None)
        task = await self._submit(
            request.endpoint, body, marker, own_marker=request.state is None, confirms=confirms
        )
        if not is_safe_task_id(task.id):
            # Its id goes into every query's URL path: this input fails alone (its task may exist:
            # answered as created, so never sent again here), not the first query of a whole batch.
            raise ResponseFormatError(f"submit answered a task id that is not one URL path segment: {task.id[:100]!r}")
        if self._callbacks is not None and request.notify_hook is None:
            self._callbacks.submitted(idempotency_key, task)
        return task

    @property
    def recover(self) -> Recover | None:
        """Lost answers are settled inside ``submit`` (by ``state``); a notify hook settles the rest."""
        return self._callbacks.recover if self._callbacks is not None else None

    async def _submit(
        self, endpoint: str, body: dict[str, Any], marker: str, *, own_marker: bool, confirms: str | None = None
    ) -> Task:
        policy = self._transport.config.retry
        started_ms = int(time.time() * 1000)
        attempt = 0
        while True:
            try:
                response = await self._transport.request(
                    "POST", self._base + endpoint, json_body=body, retry_safe=False, spends=True
                )
                task = self._created_task(response, marker)
            except QueueFullError as exc:
                # Refused for sure, nothing created: safe to send again after a pause.
                error: EvolinkError = exc
            except RateLimitError:
                # The transport retried the 429s already, in turn with the client's other requests
                # (its rate gate): what reaches here is past the retry policy's bounds.
                raise
            except EvolinkError as exc:
                if not may_have_been_billed(exc):
                    if isinstance(exc, APIStatusError):  # refused for sure: as its MJ code where it has one
                        raise _refusal(exc, endpoint) from None
                    raise
                # The proxy may have created the task anyway: look for it before sending again.
                if confirms is not None:
                    found = await self._confirmed(confirms, cause=exc)
                else:
                    found = await self._find_by_state(
                        marker, since_ms=None if own_marker else started_ms, started_ms=started_ms, cause=exc
                    )
                if found is not None:
                    logger.info("submit to %s: answer lost, found task %s", endpoint, found.id)
                    return found
                error = exc
            else:
                logger.info("submitted %s as %s", endpoint, task.id)
                return task
            if attempt >= policy.max_retries:
                raise error
            delay = policy.backoff(attempt)
            logger.info("resubmitting to %s in %.2f s after: %s", endpoint, delay, error)
            await anyio.sleep(delay)
            attempt += 1

    def _created_task(self, response: Response, marker: str) -> Task:
        """The task a 2xx submit answer created, or the error its code stands for."""
        body = response.body
        if not isinstance(body, Mapping):
            raise ResponseFormatError(
                f"submit answered {type(body).__name__} instead of a result object", request_id=response.request_id
            )
        code = body.get("code")
        if body.get("success") is False or code == -1:  # trueai's LogicException shape
            message = str(body.get("message") or body.get("description") or "the proxy refused the submit")
            raise MidjourneyError(message, code=_int(code), status_code=response.status, request_id=response.request_id)
        properties = body.get("properties") if isinstance(body.get("properties"), Mapping) else {}
        assert isinstance(properties, Mapping)
        code = _int(code)
        if code in _CREATED or code == _MODAL:
            task_id = parse_id(body.get("result"))
            if task_id is None:
                if code == _MODAL:
                    raise _submit_error(body, response)
                raise ResponseFormatError(
                    f"submit answered code {code} without a task id", request_id=response.request_id
                )

            status = "NOT_START"
            if code == _MODAL:
                # trueai: the task waits for ``submit/modal``; novicezk: "already exists", with its status.
                existing = properties.get("status")
                status = existing if isinstance(existing, str) and existing else "MODAL"
            snapshot = {
                "id": task_id,
                "status": status,
                "progress": None,
                "state": marker,
                "imageUrl": properties.get("imageUrl") if code == _MODAL else None,
                "properties": dict(properties),
                "submitResult": {"code": code, "description": body.get("description")},
            }
            return structure_mj_task(snapshot, request_id=response.request_id)
        raise _submit_error(body, response)

    async def _confirmed(self, task_id: str, *, cause: EvolinkError) -> Task | None:
        """The task a lost ``submit/modal`` answer was for, if it left ``MODAL`` (the confirmation
        went through); None while it still waits (sending again is safe); raises ``cause`` when
        the task cannot be read."""
        try:
            task = await self.fetch(task_id)
        except EvolinkError as exc:
            logger.warning("a modal submit's answer was lost and its task cannot be read (%s): not resubmitting", exc)
            raise cause from None
        return None if task.status is TaskStatus.REQUIRES_ACTION else task

    async def _find_by_state(
        self, marker: str, *, since_ms: int | None, started_ms: int, cause: EvolinkError
    ) -> Task | None:
        """The task whose ``state`` is ``marker``, from ``task/list``; raises ``cause`` when the
        server cannot list, or lists only tasks newer than the submit (trueai's newest 100 on a
        busy server): then nothing may be sent again, the task may exist."""
        try:
            response = await self._transport.request("GET", self._base + "task/list", retry_safe=True)
        except EvolinkError as exc:
            logger.warning("a submit's answer was lost and its task cannot be looked up (%s): not resubmitting", exc)
            raise cause from None
        items = response.body
        if isinstance(items, Mapping):  # tolerate {"data": [...]} / {"list": [...]} wrappers
            items = items.get("data") or items.get("list")
        if not isinstance(items, list):
            logger.warning("task/list answered no list: a submit's outcome is unknown, not resubmitting")
            raise cause
        candidates: list[tuple[int, Task]] = []
        oldest_ms: int | None = None
        for item in items:
            if not isinstance(item, Mapping):
                continue
            submitted = item.get("submitTime")
            submitted_ms = submitted if isinstance(submitted, int) and not isinstance(submitted, bool) else 0
            if submitted_ms:
                oldest_ms = submitted_ms if oldest_ms is None else min(oldest_ms, submitted_ms)
            if item.get("state") != marker:
                continue
            if since_ms is not None and submitted_ms and submitted_ms < since_ms - _CLOCK_SLACK_MS:
                continue
            try:
                candidates.append((submitted_ms, structure_mj_task(item)))
            except ResponseFormatError:
                continue
        if not candidates:
            truncated = len(items) == _TRUNCATED_LIST_LENGTH
            if truncated and oldest_ms is not None and oldest_ms > started_ms - _LIST_SKEW_MS:
                logger.warning(
                    "a submit's answer was lost and task/list holds only newer tasks: its outcome is unknown,"
                    " not resubmitting"
                )
                raise cause
            return None
        return max(candidates, key=lambda pair: pair[0])[1]

    # --- queries ----------------------------------------------------------------------------

    async def fetch(self, task_id: str) -> Task:
        """``GET task/{id}/fetch``; an unknown id (empty body, 204, ``null``, 404, code-4
        ``task_no_found``) raises ``NotFoundError``."""
        task_id = task_id_of(task_id)
        url = f"{self._base}task/{quote(task_id, safe='')}/fetch"
        try:
            response = await self._transport.request("GET", url, retry_safe=True)
        except BadRequestError as exc:
            if _says_not_found(exc.body) or "task_no_found" in exc.message:
                raise NotFoundError(
                    f"task {task_id} not found",
                    status_code=exc.status_code,
                    code="task_no_found",
                    request_id=exc.request_id,
                    body=exc.body,
                ) from None
            raise
        if response.body is None or response.body == "":
            raise NotFoundError(
                f"task {task_id} not found", status_code=response.status, request_id=response.request_id
            )
        task = structure_mj_task(response.body, request_id=response.request_id)
        if task.id != task_id:  # another task's state (its images included) is not this one's
            raise ResponseFormatError(
                f"the answer to a query of task {task_id} is about another task ({task.id})",
                request_id=response.request_id,
            )
        return task

    async def _fetch_many(self, task_ids: Sequence[str]) -> Sequence[Task]:
        """``POST task/list-by-condition``; unknown ids are left out of the answer."""
        ids = [task_id_of(task_id) for task_id in task_ids]
        tasks: list[Task] = []
        for start in range(0, len(ids), self.fetch_many_limit):
            tasks.extend(await self._fetch_chunk(ids[start : start + self.fetch_many_limit]))
        return tasks

    async def _fetch_chunk(self, ids: list[str]) -> list[Task]:
        if not ids:
            return []
        try:
            response = await self._transport.request(
                "POST", self._base + "task/list-by-condition", json_body={"ids": ids}, retry_safe=True
            )
        except APIStatusError as exc:
            if means_endpoint_missing(exc):
                self._can_fetch_many = False
                raise UnsupportedOperationError(
                    "fetch_many", f"the server has no task/list-by-condition ({exc})"
                ) from None
            raise
        if not isinstance(response.body, list):
            self._can_fetch_many = False
            raise UnsupportedOperationError(
                "fetch_many", f"task/list-by-condition answered {type(response.body).__name__}, not a list"
            )
        tasks = []
        for item in response.body:
            try:
                tasks.append(structure_mj_task(item, request_id=response.request_id))
            except ResponseFormatError as exc:
                logger.info("skipping a malformed task in a list-by-condition answer: %s", exc)
        return tasks

    async def _cancel(self, task_id: str) -> Task:
        """``POST task/{id}/cancel`` (trueai, admin keys only), then the task as it now is."""
        task_id = task_id_of(task_id)
        url = f"{self._base}task/{quote(task_id, safe='')}/cancel"
        try:
            await self._transport.request("POST", url, retry_safe=True)
        except APIStatusError as exc:
            if means_endpoint_missing(exc):
                self._can_cancel = False
                raise UnsupportedOperationError("cancel", f"the server has no task/{{id}}/cancel ({exc})") from None
            if exc.status_code == 400 and "禁止操作" in exc.message:
                raise UnsupportedOperationError(
                    "cancel", f"the proxy refused (only admin keys may cancel): {exc}"
                ) from None
            raise
        return await self.fetch(task_id)


# --- helpers ------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _submit_error(
    body: Mapping[str, Any], response: Response | None = None, *, status: int | None = None
) -> MidjourneyError:
    code = _int(body.get("code"))
    description = str(body.get("description") or body.get("message") or f"result code {code}").strip()
    properties = body.get("properties") if isinstance(body.get("properties"), Mapping) else None
    status_code = status if status is not None else (response.status if response is not None else 200)
    request_id = response.request_id if response is not None else None
    kind: type[MidjourneyError] = MidjourneyError
    if code == _BANNED:
        kind = BannedPromptError
    elif code == _QUEUE_FULL or (code == 9 and any(word in description.lower() for word in _QUEUE_FULL_WORDS)):
        kind = QueueFullError
    return kind(description, code=code, properties=properties, status_code=status_code, request_id=request_id)


def _refusal(exc: APIStatusError, endpoint: str) -> EvolinkError:
    """A non-2xx submit answer as the most useful error: its MJ code where the body has one."""
    body = exc.body
    has_code = isinstance(body, Mapping) and "code" in body and ("description" in body or "message" in body)
    if has_code and exc.status_code not in (401, 403):
        assert isinstance(body, Mapping)
        error = _submit_error(body, status=exc.status_code)
        error.request_id = exc.request_id
        return error
    if means_endpoint_missing(exc):
        return UnsupportedOperationError(endpoint, f"the server has no {endpoint} endpoint ({exc})")
    return exc


def _says_not_found(body: object) -> bool:
    if not isinstance(body, Mapping):
        return False
    text = str(body.get("description") or body.get("message") or "")
    return "task_no_found" in text or "not found" in text.lower()
